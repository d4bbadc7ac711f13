"""Report layouts: the five house styles, each writing one study's statements into a ``ReportDoc``.

``ReportWriter`` holds what every layout shares (the study, its planned statements, the history) and
writes finding sentences (with comparison wording on a follow-up), denials, physiological uptake, reference
regions, incidentals and the impression; ``LAYOUTS`` maps a style name to its layout function.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from data_contracts.findings import Tracer
from data_contracts.taxonomy import System
from tasks.synth import report_styles as st
from tasks.synth.raw import RawStudy
from tasks.synth.report_context import ReportContext
from tasks.synth.report_header import Header, technique_sentence, terse_extent, written_date, written_name
from tasks.synth.report_plan import SECTIONS, Item
from tasks.synth.report_styles import chance, decap, pick
from tasks.synth.report_text import ReportDoc


@dataclass
class ReportWriter:
    study: RawStudy
    rng: np.random.Generator
    items: list[Item]
    context: ReportContext = ReportContext()

    @property
    def tracer(self) -> Tracer:
        return self.study.tracer

    def by_section(self, section: str) -> list[int]:
        return [i for i, it in enumerate(self.items) if it.section == section]

    def sentence(self, i: int, register: str, lead: str = "") -> str:
        statements = self.items[i].statements
        if len(statements) == 2:
            text = st.bilateral_sentence((statements[0].said, statements[1].said), self.rng, register, lead)
        else:
            text = st.finding_sentence(statements[0].said, self.rng, register, lead)
        prior = self.context.prior_sites
        if prior is None:
            return text
        known = any(s.said.location.id in prior for s in statements)
        key = (self.context.response if self.context.response in st.COMPARISONS else "") if known else "new"
        full, terse = st.COMPARISONS[key]
        return st.comparison_clause(terse if register == "terse" else full, text)

    def negatives(self, section: str, k: int, terse: bool) -> list[str]:
        locs = [s.said.location for it in self.items for s in it.statements]

        def denied(prefix: str) -> bool:
            if prefix.startswith("system:"):
                return any(loc.system.value == prefix[7:] for loc in locs)
            return any(loc.id.startswith(prefix) for loc in locs)

        allowed = [n for n in st.NEGATIVES if n.section == section and n.tracer in (None, self.tracer)
                   and n.sex in (None, self.study.sex) and not any(denied(p) for p in n.forbids)]
        chosen = sorted(self.rng.permutation(len(allowed))[:k]) if allowed else []
        return [(allowed[j].terse if terse else allowed[j].full).format(T=self.tracer.value) for j in chosen]

    def other_negative(self, terse: bool) -> str:
        return pick(self.rng, st.OTHER_NEGATIVES["terse" if terse else "full"]).format(T=self.tracer.value)

    def section_denials(self, section: str, has_findings: bool, terse: bool, other_chance: float = 0.0
                        ) -> list[str]:
        """A section's denials: one beside findings, one or two (drawn) in a section without; beside findings,
        with chance ``other_chance``, an "otherwise unremarkable" sentence after them."""
        negs = self.negatives(section, 1 if has_findings else int(self.rng.integers(1, 3)), terse)
        if has_findings and other_chance and chance(self.rng, other_chance):
            negs.append(self.other_negative(terse))
        return negs

    def physiological(self, terse: bool) -> str:
        full, short = st.PHYSIOLOGICAL[self.tracer][int(self.rng.integers(len(st.PHYSIOLOGICAL[self.tracer])))]
        return short if terse else full

    def reference(self) -> str:
        liver, pool = self.rng.uniform(1.6, 2.6), self.rng.uniform(1.2, 1.9)
        return pick(self.rng, st.REFERENCE_REGIONS).format(liver=f"{liver:.1f}", pool=f"{pool:.1f}",
                                                          pool_max=f"{pool * 1.3:.1f}")

    def incidental(self, terse: bool) -> str | None:
        locs = [s.said.location.id for it in self.items for s in it.statements]
        ok = [x for x in st.INCIDENTALS if not any(loc.startswith(p) for p in x[2] for loc in locs)]
        if not ok or not chance(self.rng, 0.5):
            return None
        full, short, _ = ok[int(self.rng.integers(len(ok)))]
        return short if terse else full

    def impression(self, terse: bool) -> list[str]:
        """Restatements of the one to three most avid findings, then general conclusions."""
        keys = [s.key for it in self.items for s in it.statements]
        if len(set(keys)) != len(keys):  # _plan groups by key; a repeat would make restatements ambiguous
            raise RuntimeError(f"study {self.study.study_key}: a (location, CT finding) is stated twice")
        ranked = sorted(range(len(self.items)), key=lambda i: (-self.items[i].suv_max, i))
        k = min(len(ranked), int(self.rng.integers(1, 4)))
        out = [st.impression_restatement(tuple(s.said for s in self.items[i].statements), self.rng, terse,
                                         self.context.disease)
               for i in ranked[:k]]
        if not self.items:
            out.append(f"No evidence of {self.tracer.value}-avid malignancy." if not terse else
                       f"No {self.tracer.value}-avid disease.")
        elif len(self.items) > k:
            out.append("Further findings as described above." if not terse else "Other findings as above.")
        if not any(s.said.location.system is System.bone for it in self.items for s in it.statements):
            out.append("No evidence of osseous metastatic disease." if not terse else "No bone mets.")
        if not terse and chance(self.rng, 0.5):
            out.append(pick(self.rng, st.GENERAL_IMPRESSIONS))
        return out


_HEADINGS = {
    "numbered": {"head_neck": ("HEAD AND NECK:", "NECK:"), "chest": ("CHEST:", "THORAX:"),
                 "abdomen_pelvis": ("ABDOMEN AND PELVIS:", "ABDOMEN/PELVIS:"), "msk": ("MUSCULOSKELETAL:", "BONES:")},
    "terse": {"head_neck": ("H&N:", "Neck:"), "chest": ("Chest:", "Thorax:"), "abdomen_pelvis": ("Abd/pelvis:", "A/P:"),
              "msk": ("MSK:", "Bones:")},
    "impression_first": {"head_neck": ("Head/neck:",), "chest": ("Thorax:", "Chest:"),
                         "abdomen_pelvis": ("Abdomen/pelvis:",), "msk": ("Skeleton:", "Bones:")},
}
_LEADS = {"head_neck": ("In the neck, ", "In the head and neck region, "),
          "chest": ("In the chest, ", "In the thorax, ", "Within the chest, "),
          "abdomen_pelvis": ("In the abdomen and pelvis, ", "Within the abdomen and pelvis, "),
          "msk": ("In the skeleton, ", "Regarding the skeleton, ")}


# ------------------------------------------------------------------------------------- house styles


def _numbered(doc: ReportDoc, c: ReportWriter, h: Header) -> None:
    rng = c.rng
    doc.line(pick(rng, (f"PET/CT WHOLE BODY ({c.tracer.value})", f"{h.tracer_label} PET/CT REPORT")))
    doc.line(f"Patient: {written_name(h, rng)}    MRN: {h.mrn}    DOB: {written_date(h.dob, rng)}")
    doc.line(f"Exam date: {written_date(h.exam, rng)}    Weight: {h.weight}    Height: {h.height}")
    tracer = f"Radiopharmaceutical: {h.tracer_label} {h.dose} i.v.; uptake time {h.uptake_min} min"
    doc.line(tracer + (f"; blood glucose {h.glucose}" if h.glucose else ""))
    doc.line()
    doc.line("CLINICAL INDICATION:")
    doc.line(h.indication[0])
    doc.line()
    doc.line("TECHNIQUE:")
    doc.para([(technique_sentence(h, rng), None)], width=pick(rng, (None, 80)))
    doc.line()
    prior = h.exam - timedelta(days=int(rng.integers(60, 400)))
    doc.line(f"COMPARISON: {pick(rng, ('None.', 'None available.', f'CT of {written_date(prior, rng)}.'))}")
    doc.line()
    doc.line("FINDINGS:")
    doc.line(c.physiological(False) + (" " + c.reference() if chance(rng, 0.3) else ""))
    wrap = pick(rng, (None, 80))
    restart = chance(rng, 0.3)
    n = 0
    for section in SECTIONS:
        doc.line()
        doc.line(pick(rng, _HEADINGS["numbered"][section]))
        idx = c.by_section(section)
        n = 0 if restart else n
        for i in idx:
            n += 1
            doc.para([(f"{n}. ", None), (c.sentence(i, "full"), i)], width=wrap, indent="   ")
        negs = c.section_denials(section, bool(idx), False, other_chance=0.4)
        if negs or not idx:
            doc.line(" ".join(negs) or "Unremarkable.")
    if (x := c.incidental(False)) is not None:
        doc.line()
        doc.line(f"OTHER: {x}")
    doc.line()
    doc.line("IMPRESSION:")
    for j, item in enumerate(c.impression(False), start=1):
        doc.para([(f"{j}. {item}", None)], width=wrap, indent="   ")
    doc.line()
    doc.line(f"Electronically signed by {h.reader}, Nuclear Medicine, {written_date(h.exam, rng)}")


def _prose(doc: ReportDoc, c: ReportWriter, h: Header) -> None:
    rng = c.rng
    width = int(rng.integers(68, 81))
    doc.para([(f"{pick(rng, ('PET/CT report for', 'Patient:'))} {written_name(h, rng)}, MRN {h.mrn}, born "
               f"{written_date(h.dob, rng)}. Examination performed on {written_date(h.exam, rng)}.", None)], width=width)
    doc.line()
    doc.para([(f"Clinical history: {h.indication[0]}", None)], width=width)
    doc.line()
    doc.para([(f"Technique: {technique_sentence(h, rng)}", None)], width=width)
    doc.line()
    intro = "Findings: " + c.physiological(False)
    if chance(rng, 0.3):
        intro += " " + c.reference()
    doc.para([(intro, None)], width=width)
    for section in SECTIONS:
        idx = c.by_section(section)
        lead = pick(rng, _LEADS[section])
        pieces: list[tuple[str, int | None]] = []
        for k, i in enumerate(idx):
            pieces += [(" " if pieces else "", None), (c.sentence(i, "full", lead if k == 0 else ""), i)]
        negs = c.section_denials(section, bool(idx), False, other_chance=0.4)
        for neg in negs:
            text = lead + decap(neg) if not pieces else neg
            pieces += [(" " if pieces else "", None), (text, None)]
        if pieces:
            doc.line()
            doc.para(pieces, width=width)
    if (x := c.incidental(False)) is not None:
        doc.line()
        doc.para([(f"Incidentally, {decap(x)}", None)], width=width)
    doc.line()
    doc.para([("Impression: " + " ".join(c.impression(False)), None)], width=width)
    doc.line()
    doc.line(f"{h.reader}")


def _terse(doc: ReportDoc, c: ReportWriter, h: Header) -> None:
    rng = c.rng
    doc.line(f"PET/CT {c.tracer.value} {written_date(h.exam, rng)}")
    doc.line(f"Pt: {written_name(h, rng)} | MRN {h.mrn} | DOB {written_date(h.dob, rng)} | {c.study.sex}")
    doc.line(f"Ind: {h.indication[1]}")
    tech = f"Tech: {h.tracer_label} {h.dose.split(' (')[0]} iv, uptake {h.uptake_min} min"
    doc.line(tech + (f", BG {h.glucose}" if h.glucose else "") + f". {c.study.vendor.value}. {terse_extent(h)}.")
    doc.line("Findings:")
    doc.line(c.physiological(True))
    one_line = chance(rng, 0.5)
    for section in SECTIONS:
        idx = c.by_section(section)
        label = pick(rng, _HEADINGS["terse"][section])
        negs = c.section_denials(section, bool(idx), True)
        if one_line or not idx:
            pieces: list[tuple[str, int | None]] = [(label, None)]
            for i in idx:
                pieces += [(" " if len(pieces) == 1 else "; ", None), (c.sentence(i, "terse"), i)]
            rest = ". ".join(n.rstrip(".") for n in negs)
            if rest:
                pieces.append((("; " if idx else " ") + rest + ".", None))
            elif idx:
                pieces.append((".", None))
            doc.para(pieces, width=pick(rng, (None, 72)), indent="  ")
        else:
            doc.line(label)
            for i in idx:
                doc.para([("- ", None), (c.sentence(i, "terse"), i)])
            for neg in negs:
                doc.line(f"- {neg}")
    if (x := c.incidental(True)) is not None:
        doc.line(f"Other: {x}")
    doc.line("Imp:")
    for item in c.impression(True):
        doc.line(f"- {item}")
    doc.line(pick(rng, (h.reader, h.reader.replace("Dr. ", ""))))


def _impression_first(doc: ReportDoc, c: ReportWriter, h: Header) -> None:
    rng = c.rng
    doc.line(f"{c.tracer.value} PET/CT")
    doc.line(f"Name: {written_name(h, rng)}")
    doc.line(f"Patient ID: {h.mrn}")
    doc.line(f"Date of birth: {written_date(h.dob, rng)}")
    doc.line(f"Study date: {written_date(h.exam, rng)}")
    doc.line(f"Indication: {h.indication[0]}")
    doc.line()
    doc.line(pick(rng, ("IMPRESSION:", "CONCLUSION:")))
    for j, item in enumerate(c.impression(False), start=1):
        doc.line(f"{j}. {item}" if chance(rng, 0.9) else f"- {item}")
    doc.line()
    doc.line("FINDINGS:")
    doc.para([(f"Technique: {technique_sentence(h, rng)}", None)], width=pick(rng, (None, 100)))
    doc.line(c.physiological(False))
    for section in SECTIONS:
        idx = c.by_section(section)
        pieces: list[tuple[str, int | None]] = [(pick(rng, _HEADINGS["impression_first"][section]) + " ", None)]
        for k, i in enumerate(idx):
            pieces += [(" " if k else "", None), (c.sentence(i, "full"), i)]
        negs = c.section_denials(section, bool(idx), False)
        if negs:
            pieces.append(((" " if idx else "") + " ".join(negs), None))
        doc.para(pieces)
    if (x := c.incidental(False)) is not None:
        doc.line(f"Other: {x}")
    doc.line()
    doc.line(f"Reported by {h.reader}")


def _caption(doc: ReportDoc, c: ReportWriter, h: Header) -> None:
    rng = c.rng
    doc.line(f"{h.tracer_label} PET/CT - key images")
    doc.line(f"Patient: {written_name(h, rng)}; ID {h.mrn}; DOB {written_date(h.dob, rng)}; exam {written_date(h.exam, rng)}")
    doc.line(f"History: {h.indication[0]}")
    doc.line(f"Acquisition: {h.dose} {h.tracer_label}, {h.uptake_min} min p.i., {h.scanner}."
             + (f" Glucose {h.glucose}." if h.glucose else ""))
    doc.line()
    order = sorted(range(len(c.items)), key=lambda i: (-c.items[i].suv_max, i))
    label = pick(rng, ("Fig. {n}: ", "Figure {n}. ", "Fig. {n} - "))
    for n, i in enumerate(order, start=1):
        doc.para([(label.format(n=n), None), (c.sentence(i, "caption"), i)])
    doc.line()
    others = [c.physiological(False)]
    for section in SECTIONS:  # a denial for each region without findings, sometimes one more
        others += c.negatives(section, int(rng.integers(0, 2)) if c.by_section(section) else 1, False)
    for section in SECTIONS:  # disease in every region: still deny what the study does not show
        if len(others) > 1:
            break
        others += c.negatives(section, 1, False)
    doc.para([("Other findings: " + " ".join(others), None)], width=pick(rng, (None, 90)))
    doc.line()
    doc.line("Summary: " + " ".join(c.impression(False)))


LAYOUTS = {"numbered": _numbered, "prose": _prose, "terse": _terse, "impression_first": _impression_first,
            "caption": _caption}
