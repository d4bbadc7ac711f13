"""Synthetic free-text PET/CT reports in several house styles, with the exact truth of what each states.

``render_report(study, rng, style)`` writes the report a nuclear-medicine department would write for one
synthetic study (``tasks.synth.raw.RawStudy``) and returns, next to the text, one ``ReportFindingTruth`` per
finding statement: what a perfect extractor returns, with the character span it reads it from.

House styles (``HOUSE_STYLES``):

* ``numbered`` — header block, CLINICAL INDICATION, TECHNIQUE, COMPARISON, FINDINGS by region
  (HEAD AND NECK / CHEST / ABDOMEN AND PELVIS / MUSCULOSKELETAL) with numbered findings, numbered IMPRESSION;
* ``prose`` — flowing paragraphs hard-wrapped at 68-80 columns (line breaks fall inside sentences);
* ``terse`` — abbreviated notes: RUL, LN, Rt/Lt, R/L, SUVmax=, FDG-avid, "c/w mets", short lines;
* ``impression_first`` — IMPRESSION before FINDINGS, findings as "Region: sentences." paragraphs;
* ``caption`` — figure-caption style ("Fig. 2: Intensely PSMA-avid sclerotic lesion in the right 7th rib
  (SUVmax 12.3).") ordered by SUVmax, then other findings and a summary.

What a statement is (the ground truth's rules):

* Only truth lesions with ``reported=True`` are described; each by exactly one FINDINGS statement.
* Lesions with the same taxonomy location and CT finding form one statement; two or more read
  "multiple/two/several … the largest …"; the stated size is the *representative's* (the largest lesion; for
  findings without a CT correlate, which have no size, the one with the highest SUVmax), the stated SUVmax
  and uptake grade are the group's hottest lesion's (a "mild" cluster never hides an SUV 20 node). ``instances`` lists every lesion the statement describes, mask or not (join with
  the truth table's ``in_mask`` to know which have a mask). Grouping is by exact location, never by a coarser
  group, so each instance's canonical caption equals its statement's caption.
* A statement at a paired location whose mirror location has a statement with the same CT finding and
  grade may be written as one "bilateral" sentence; that sentence yields two findings, one per side, each with
  its own instances, values and the same span.
* SUVmax is written as the truth rounded to 0.1 (``suv_max`` = the written value), sizes as the long axis
  rounded to the mm, in mm or cm (``size_mm`` = the written value in mm); a value not written is ``None``.
* Spans cover the sentence (or the clause, in terse lists) that states the finding, list markers and
  "Fig. n:" labels excluded; ``finding_index`` runs 0..n-1 in text order.
* Consistency with the study (``ReportContext``): the indication is the patient's disease, the technique
  states the range the images cover (``imaged_range``), interpretations speak the disease's terms, and a
  follow-up appends comparison wording to every statement ("increased ... compared with the prior study",
  "new since the prior study").
* Only the FINDINGS section (the key-image captions in ``caption``) carries ground truth. Header, indication,
  technique, physiological-uptake, reference-region, incidental and negative sentences state no finding.
* **Impression repetitions.** An IMPRESSION / "Imp:" / "Summary:" item may restate a finding. It is a
  repetition, not a new finding, when its (location_id, laterality, ct_finding) equals that of a FINDINGS
  statement. Each such key is stated exactly once in FINDINGS (lesions sharing it are one statement), so the
  match is unambiguous; a restatement's SUVmax, when given, equals the original's, though its words differ
  (other synonyms, "-avid" for "uptake", an interpretation appended). An extractor deduplicates by dropping
  impression findings whose key matches a findings-section finding (in ``impression_first`` the impression
  comes first; the rule is the same). Other impression items name no location and CT finding together.

Deterministic per ``rng`` state: all choices draw from ``rng`` and iterate in fixed orders.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from data_contracts import taxonomy
from data_contracts.findings import CTFinding, Tracer
from data_contracts.records import LesionTruth, PetFinding, StructuredFinding, TextSpan
from data_contracts.tables import ReportFindingTruth
from data_contracts.taxonomy import Laterality, Location, Region, System
from tasks.synth import report_styles as st
from tasks.synth.raw import RawStudy
from tasks.synth.report_styles import Said, chance, decap, pick

HOUSE_STYLES: tuple[str, ...] = ("numbered", "prose", "terse", "impression_first", "caption")

SECTIONS = ("head_neck", "chest", "abdomen_pelvis", "msk")


@dataclass(frozen=True)
class RenderedReport:
    """A report as the hospital would deliver it, and what a perfect extractor reads from it."""

    text: str  # contains the patient's name, MRN and birth date (PHI), like a real report
    style: str  # one of HOUSE_STYLES
    findings: list[ReportFindingTruth]  # text order; spans index ``text``


@dataclass(frozen=True)
class ReportContext:
    """What the reading physician knows beyond the images: the patient's disease and history.

    ``disease``: the generator's scenario (``tasks.synth.lesions.SCENARIOS``: "lymphoma", "lung_cancer", ...);
    "" infers it from the reported lesions. ``prior_sites``: for a follow-up, the sites with disease at the
    baseline (None: a baseline study, no comparison). ``response``: the follow-up's response ("progression",
    "partial", "stable", "complete"; "" unknown).
    """

    disease: str = ""
    prior_sites: frozenset[str] | None = None
    response: str = ""


def infer_disease(study: RawStudy) -> str:
    """The scenario the study's lesions fit best, when the generator did not say."""
    if study.tracer is Tracer.psma:
        return "prostate_cancer" if study.sex == "M" else ""  # PSMA in women: renal / hepatocellular cancer
    locs = [t.location_id for t in study.truth]
    for disease, prefix in (("breast_cancer", "breast_"), ("nasopharyngeal", "nasopharynx"),
                            ("lung_cancer", "lung_")):
        if any(x.startswith(prefix) for x in locs):
            return disease
    if locs and sum(x.startswith("liver_") for x in locs) * 2 >= len(locs):
        return "liver_cancer"
    return "lymphoma"


_TOP_WORDS = {"vertex": ("from the vertex", "from vertex"), "skull_base": ("from the skull base",
              "from the base of the skull"), "neck_or_lower": ("from the neck",)}
_BOTTOM_WORDS = {"mid_thigh": ("to the mid-thigh", "to mid-thigh"), "knee_or_below": ("to the feet", "to the toes"),
                 "pelvis_or_higher": ("to the pelvis",)}


def imaged_range(study: RawStudy) -> tuple[str, str] | None:
    """(top, bottom) the images cover, read off the segmenter map as the realism check reads it (z extents of
    skull, C1 and femurs only: one pass over the map, so a clinical-size study costs well under a second)."""
    from data_contracts import segmentation
    from tasks.landmarks import Extent, Landmarks
    from tasks.realism.position import scan_bottom, scan_top

    step = max(1, int(round(4.0 / min(study.anatomy.spacing[:2]))))  # these bones span >= 1 cm in-plane
    anat = np.asarray(study.anatomy.array)[:, step // 2::step, step // 2::step]
    if anat.size == 0:
        return None
    names = ("skull", "vertebrae_C1", "femur_left", "femur_right")
    keep = [segmentation.label_of()[n] for n in names]
    direction = np.asarray(study.anatomy.direction, dtype=float).reshape(3, 3)
    z_of = lambda k: float(study.anatomy.origin[2] + direction[2, 2] * study.anatomy.spacing[2] * k)  # noqa: E731
    lut = np.zeros(max(int(anat.max()), *keep) + 1, bool)
    lut[keep] = True
    slices = np.flatnonzero(lut[anat].reshape(anat.shape[0], -1).any(axis=1))
    marks = Landmarks(scan_z=tuple(sorted((z_of(0), z_of(anat.shape[0] - 1)))))
    for name, label in zip(names, keep):
        ks = [int(k) for k in slices if (anat[k] == label).any()]
        if ks:
            zs = sorted((z_of(ks[0]), z_of(ks[-1])))
            marks.classes[name] = Extent(len(ks), np.array([0.0, 0.0, zs[0]]), np.array([0.0, 0.0, zs[1]]),
                                         np.array([0.0, 0.0, (zs[0] + zs[1]) / 2]))
    return scan_top(marks), scan_bottom(marks)


# ------------------------------------------------------------------------------------------ planning


@dataclass(frozen=True)
class _Statement:
    """One finding statement: the lesions it describes (representative first) and what it writes."""

    lesions: tuple[LesionTruth, ...]
    said: Said

    @property
    def key(self) -> tuple[str, CTFinding]:  # location_id implies laterality
        return self.said.location.id, self.said.ct


@dataclass(frozen=True)
class _Item:
    """One sentence of the FINDINGS: one statement, or a bilateral pair in the order the sentence names them."""

    statements: tuple[_Statement, ...]
    section: str

    @property
    def suv_max(self) -> float:
        return max((float(s.said.suv) for s in self.statements if s.said.suv), default=-1.0)


_LOBE_MIRRORS = {"lung_rul": "lung_lul", "lung_lul": "lung_rul", "lung_rll": "lung_lll", "lung_lll": "lung_rll"}


def _mirror(loc: Location) -> str | None:
    """The same structure on the other side (``rib_7_r`` ↔ ``rib_7_l``, right ↔ left upper lobe)."""
    if loc.id in _LOBE_MIRRORS:
        return _LOBE_MIRRORS[loc.id]
    for a, b in (("_r", "_l"), ("_l", "_r")):
        if loc.id.endswith(a) and (loc.id[: -len(a)] + b) in taxonomy.by_id():
            return loc.id[: -len(a)] + b
    return None


def _section(loc: Location) -> str:
    if loc.system is System.bone or loc.region is Region.extremity:
        return "msk"
    return {Region.head_neck: "head_neck", Region.chest: "chest"}.get(loc.region, "abdomen_pelvis")


def _suv_written(suv: float) -> str:
    tenths = math.floor(suv * 10 + 0.5)
    return f"{tenths // 10}.{tenths % 10}"


def _axes(lesion: LesionTruth, rng: np.random.Generator) -> tuple[int, int]:
    """(long, short) axis in whole mm; the short axis is invented, consistent with the node's CT finding."""
    long = max(1, math.floor(lesion.size_mm + 0.5))
    short = round(long * rng.uniform(0.55, 0.9))
    if lesion.ct_finding is CTFinding.enlarged_lymph_node:
        short = max(short, 11)
    elif lesion.ct_finding is CTFinding.non_enlarged_lymph_node:
        short = min(short, 9)
    return long, min(max(short, 1), long)


def _peak_grade(lesions: list[LesionTruth]):
    return max(lesions, key=lambda t: (t.suv_max, -t.instance)).pet_finding.grade


def _plan(study: RawStudy, rng: np.random.Generator, terse: bool) -> list[_Item]:
    """Group the reported truth lesions into statements, pair mirrored ones, decide which values are written."""
    reported = [t for t in study.truth if t.reported]
    for t in reported:
        if t.pet_finding.tracer is not study.tracer:
            raise ValueError(f"study {study.study_key}: lesion {t.instance} has {t.pet_finding.tracer.value} uptake "
                             f"but the study tracer is {study.tracer.value}")
    reported.sort(key=lambda t: (taxonomy.index_of(t.location_id), t.instance))
    groups: dict[tuple[str, CTFinding], list[LesionTruth]] = {}
    for t in reported:
        groups.setdefault((t.location_id, t.ct_finding), []).append(t)

    def representative(lesions: list[LesionTruth]) -> list[LesionTruth]:
        if lesions[0].ct_finding is CTFinding.no_ct_correlate:
            key = lambda t: (-t.suv_max, -t.size_mm, t.instance)  # noqa: E731
        else:
            key = lambda t: (-t.size_mm, -t.suv_max, t.instance)  # noqa: E731
        return sorted(lesions, key=key)

    ordered = {k: representative(v) for k, v in groups.items()}
    used: set[tuple[str, CTFinding]] = set()
    plans: list[list[tuple[str, CTFinding]]] = []
    for key, lesions in ordered.items():
        if key in used:
            continue
        loc = taxonomy.get(key[0])
        mate = (_mirror(loc), key[1])
        pair = (mate in ordered and mate not in used and key[1] is not CTFinding.no_ct_correlate
                and _peak_grade(ordered[mate]) is _peak_grade(lesions) and chance(rng, 0.8))
        if pair:
            keys = sorted([key, mate], key=lambda k: taxonomy.get(k[0]).laterality is not Laterality.right)
            plans.append(keys if chance(rng, 0.7) else keys[::-1])
            used.update(keys)
        else:
            plans.append([key])
            used.add(key)

    items = []
    for keys in plans:
        omit_suv = chance(rng, 0.04)
        many = any(len(ordered[k]) > 1 for k in keys)
        omit_size = not many and chance(rng, 0.15 if terse else 0.08)
        statements = []
        for k in keys:
            lesions = ordered[k]
            rep = lesions[0]
            sized = k[1] is not CTFinding.no_ct_correlate and not omit_size
            hottest = max(lesions, key=lambda t: (t.suv_max, -t.instance))  # grade and SUVmax: the group's peak
            said = Said(location=taxonomy.get(k[0]), ct=k[1], grade=hottest.pet_finding.grade, tracer=study.tracer,
                        count=len(lesions), suv=None if omit_suv else _suv_written(hottest.suv_max),
                        size=_axes(rep, rng) if sized else None)
            statements.append(_Statement(tuple(lesions), said))
        items.append(_Item(tuple(statements), _section(statements[0].said.location)))
    return items


# ------------------------------------------------------------------------------------------ the text


class _Doc:
    """Accumulates the report text and where each finding item's statement lies in it."""

    def __init__(self) -> None:
        self._chunks: list[str] = []
        self._len = 0
        self.spans: dict[int, tuple[int, int]] = {}  # item index → (start, end)

    def line(self, text: str = "") -> None:
        self.para([(text, None)])

    def para(self, pieces: list[tuple[str, int | None]], width: int | None = None, indent: str = "") -> None:
        """One paragraph from pieces (text, item index or None), optionally hard-wrapped with ``indent``."""
        text, ranges, pos = "", [], 0
        for piece, tag in pieces:
            if tag is not None:
                ranges.append((tag, pos, pos + len(piece)))
            text += piece
            pos += len(piece)
        if width:
            text, where = _wrap(text, width, indent)
            ranges = [(tag, where[a], where[b - 1] + 1) for tag, a, b in ranges]
        for tag, a, b in ranges:
            if tag in self.spans:
                raise RuntimeError(f"finding item {tag} written twice in the findings")
            self.spans[tag] = (self._len + a, self._len + b)
        self._chunks.append(text + "\n")
        self._len += len(text) + 1

    @property
    def text(self) -> str:
        return "".join(self._chunks)


def _wrap(text: str, width: int, indent: str = "") -> tuple[str, list[int]]:
    """Greedy hard wrap at ``width`` columns; returns the text and, per input index, its output index."""
    out: list[str] = []
    where = [0] * (len(text) + 1)
    n = col = 0
    for m in re.finditer(r"(\s*)(\S+)", text):
        gap, word = m.group(1), m.group(2)
        if col > len(indent) and col + len(gap) + len(word) > width:
            for k in range(m.start(1), m.end(1)):
                where[k] = n
            out.append("\n" + indent)
            n += 1 + len(indent)
            col = len(indent)
        else:
            for k in range(m.start(1), m.end(1)):
                where[k] = n + (k - m.start(1))
            out.append(gap)
            n += len(gap)
            col += len(gap)
        for k in range(m.start(2), m.end(2)):
            where[k] = n + (k - m.start(2))
        out.append(word)
        n += len(word)
        col += len(word)
    where[len(text)] = n
    return "".join(out), where


# -------------------------------------------------------------------------------------- shared parts


@dataclass
class _Ctx:
    study: RawStudy
    rng: np.random.Generator
    items: list[_Item]
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


@dataclass(frozen=True)
class _Header:
    family: str
    given: str
    mrn: str
    dob: date
    exam: datetime
    tracer_label: str
    dose: str
    uptake_min: int
    glucose: str | None
    weight: str
    height: str
    scanner: str
    indication: tuple[str, str]  # (full, terse)
    reader: str
    scan_range: tuple[str, str] | None = None  # (top, bottom) the images cover (``imaged_range``)


def _header(study: RawStudy, rng: np.random.Generator, disease: str = "",
            scan_range: tuple[str, str] | None = None) -> _Header:
    parts = study.patient_name.split("^")
    family, given = parts[0], (parts[1] if len(parts) > 1 else "")
    if not family:
        raise ValueError(f"study {study.study_key}: empty patient family name in {study.patient_name!r}")
    try:
        dob = datetime.strptime(study.birth_date, "%Y%m%d").date()
    except ValueError:
        raise ValueError(f"study {study.study_key}: birth date {study.birth_date!r} is not YYYYMMDD") from None
    uptake = round((study.acquisition_time - study.injection_time).total_seconds() / 60)
    if uptake <= 0:
        raise ValueError(f"study {study.study_key}: acquisition at or before injection ({uptake} min)")
    glucose = None
    if study.tracer is Tracer.fdg:
        glucose = f"{rng.integers(75, 141)} mg/dL" if chance(rng, 0.5) else f"{rng.uniform(4.2, 7.8):.1f} mmol/L"
    dose = f"{study.injected_dose_mbq:.0f} MBq"
    if chance(rng, 0.2):
        dose += f" ({study.injected_dose_mbq / 37:.1f} mCi)"
    psa = f"{rng.uniform(0.2, 25):.1f}"
    options = st.DISEASE_INDICATIONS.get(disease) or st.indications(study.tracer, study.sex)
    full, short = options[int(rng.integers(len(options)))]
    return _Header(
        family=family, given=given, mrn=study.patient_id, dob=dob, exam=study.acquisition_time,
        tracer_label=pick(rng, st.TRACER_LABELS[study.tracer]), dose=dose, uptake_min=uptake, glucose=glucose,
        weight=f"{study.weight_kg:.0f} kg", height=f"{study.height_m * 100:.0f} cm",
        scanner=pick(rng, st.SCANNERS[study.vendor.value]), indication=(full.format(psa=psa), short.format(psa=psa)),
        reader=pick(rng, st.READERS), scan_range=scan_range,
    )


def _name(h: _Header, rng: np.random.Generator) -> str:
    given = h.given.title()
    return pick(rng, (f"{h.family.upper()}, {given}", f"{given} {h.family.title()}", f"{h.family}^{h.given}",
                      f"{h.family.title()}, {given}")).strip(", ")


def _date(d: date | datetime, rng: np.random.Generator) -> str:
    return d.strftime(pick(rng, ("%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d %b %Y")))


def _technique(h: _Header, rng: np.random.Generator) -> str:
    if h.scan_range is not None:
        extent = f"{pick(rng, _TOP_WORDS[h.scan_range[0]])} {pick(rng, _BOTTOM_WORDS[h.scan_range[1]])}"
    else:
        extent = "over the whole body"
    text = (f"Whole-body PET/CT was acquired {extent} on a {h.scanner}, {h.uptake_min} minutes after intravenous "
            f"injection of {h.dose} {h.tracer_label}. Low-dose CT was performed for attenuation correction and "
            f"anatomical localisation.")
    if h.glucose:
        text += f" Blood glucose before injection: {h.glucose}."
    return text


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


def _numbered(doc: _Doc, c: _Ctx, h: _Header) -> None:
    rng = c.rng
    doc.line(pick(rng, (f"PET/CT WHOLE BODY ({c.tracer.value})", f"{h.tracer_label} PET/CT REPORT")))
    doc.line(f"Patient: {_name(h, rng)}    MRN: {h.mrn}    DOB: {_date(h.dob, rng)}")
    doc.line(f"Exam date: {_date(h.exam, rng)}    Weight: {h.weight}    Height: {h.height}")
    tracer = f"Radiopharmaceutical: {h.tracer_label} {h.dose} i.v.; uptake time {h.uptake_min} min"
    doc.line(tracer + (f"; blood glucose {h.glucose}" if h.glucose else ""))
    doc.line()
    doc.line("CLINICAL INDICATION:")
    doc.line(h.indication[0])
    doc.line()
    doc.line("TECHNIQUE:")
    doc.para([(_technique(h, rng), None)], width=pick(rng, (None, 80)))
    doc.line()
    prior = h.exam - timedelta(days=int(rng.integers(60, 400)))
    doc.line(f"COMPARISON: {pick(rng, ('None.', 'None available.', f'CT of {_date(prior, rng)}.'))}")
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
        negs = c.negatives(section, 1 if idx else int(rng.integers(1, 3)), False)
        if idx and chance(rng, 0.4):
            negs.append(c.other_negative(False))
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
    doc.line(f"Electronically signed by {h.reader}, Nuclear Medicine, {_date(h.exam, rng)}")


def _prose(doc: _Doc, c: _Ctx, h: _Header) -> None:
    rng = c.rng
    width = int(rng.integers(68, 81))
    doc.para([(f"{pick(rng, ('PET/CT report for', 'Patient:'))} {_name(h, rng)}, MRN {h.mrn}, born "
               f"{_date(h.dob, rng)}. Examination performed on {_date(h.exam, rng)}.", None)], width=width)
    doc.line()
    doc.para([(f"Clinical history: {h.indication[0]}", None)], width=width)
    doc.line()
    doc.para([(f"Technique: {_technique(h, rng)}", None)], width=width)
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
        negs = c.negatives(section, 1 if idx else int(rng.integers(1, 3)), False)
        if idx and chance(rng, 0.4):
            negs.append(c.other_negative(False))
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


def _terse(doc: _Doc, c: _Ctx, h: _Header) -> None:
    rng = c.rng
    doc.line(f"PET/CT {c.tracer.value} {_date(h.exam, rng)}")
    doc.line(f"Pt: {_name(h, rng)} | MRN {h.mrn} | DOB {_date(h.dob, rng)} | {c.study.sex}")
    doc.line(f"Ind: {h.indication[1]}")
    tech = f"Tech: {h.tracer_label} {h.dose.split(' (')[0]} iv, uptake {h.uptake_min} min"
    doc.line(tech + (f", BG {h.glucose}" if h.glucose else "") + f". {c.study.vendor.value}. Skull base-mid thigh.")
    doc.line("Findings:")
    doc.line(c.physiological(True))
    one_line = chance(rng, 0.5)
    for section in SECTIONS:
        idx = c.by_section(section)
        label = pick(rng, _HEADINGS["terse"][section])
        negs = c.negatives(section, 1 if idx else int(rng.integers(1, 3)), True)
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


def _impression_first(doc: _Doc, c: _Ctx, h: _Header) -> None:
    rng = c.rng
    doc.line(f"{c.tracer.value} PET/CT")
    doc.line(f"Name: {_name(h, rng)}")
    doc.line(f"Patient ID: {h.mrn}")
    doc.line(f"Date of birth: {_date(h.dob, rng)}")
    doc.line(f"Study date: {_date(h.exam, rng)}")
    doc.line(f"Indication: {h.indication[0]}")
    doc.line()
    doc.line(pick(rng, ("IMPRESSION:", "CONCLUSION:")))
    for j, item in enumerate(c.impression(False), start=1):
        doc.line(f"{j}. {item}" if chance(rng, 0.9) else f"- {item}")
    doc.line()
    doc.line("FINDINGS:")
    doc.para([(f"Technique: {_technique(h, rng)}", None)], width=pick(rng, (None, 100)))
    doc.line(c.physiological(False))
    for section in SECTIONS:
        idx = c.by_section(section)
        pieces: list[tuple[str, int | None]] = [(pick(rng, _HEADINGS["impression_first"][section]) + " ", None)]
        for k, i in enumerate(idx):
            pieces += [(" " if k else "", None), (c.sentence(i, "full"), i)]
        negs = c.negatives(section, 1 if idx else int(rng.integers(1, 3)), False)
        if negs:
            pieces.append(((" " if idx else "") + " ".join(negs), None))
        doc.para(pieces)
    if (x := c.incidental(False)) is not None:
        doc.line(f"Other: {x}")
    doc.line()
    doc.line(f"Reported by {h.reader}")


def _caption(doc: _Doc, c: _Ctx, h: _Header) -> None:
    rng = c.rng
    doc.line(f"{h.tracer_label} PET/CT - key images")
    doc.line(f"Patient: {_name(h, rng)}; ID {h.mrn}; DOB {_date(h.dob, rng)}; exam {_date(h.exam, rng)}")
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


_LAYOUTS = {"numbered": _numbered, "prose": _prose, "terse": _terse, "impression_first": _impression_first,
            "caption": _caption}


# ---------------------------------------------------------------------------------------- public API


def render_report(study: RawStudy, rng: np.random.Generator, style: str | None = None,
                  context: ReportContext | None = None) -> RenderedReport:
    """The free-text report of ``study`` in a house style (drawn from ``rng`` when None) and its ground truth.

    The report agrees with its study: the indication is the patient's disease (``context.disease``, else
    inferred from the lesions), the stated scan range is the one the images cover, a group's uptake grade and
    SUVmax are its hottest lesion's, and a follow-up (``context.prior_sites``) compares every statement with
    the prior study.

    Raises ValueError naming the study for a style that does not exist or header facts that cannot be written.
    """
    if style is None:
        style = pick(rng, HOUSE_STYLES)
    if style not in _LAYOUTS:
        raise ValueError(f"study {study.study_key}: unknown report style {style!r}; choose from {HOUSE_STYLES}")
    terse = style == "terse"
    context = context or ReportContext()
    if not context.disease:
        context = ReportContext(infer_disease(study), context.prior_sites, context.response)
    header = _header(study, rng, context.disease, imaged_range(study))
    ctx = _Ctx(study, rng, _plan(study, rng, terse), context)
    doc = _Doc()
    _LAYOUTS[style](doc, ctx, header)
    text = doc.text
    missing = [i for i in range(len(ctx.items)) if i not in doc.spans]
    if missing:
        raise RuntimeError(f"study {study.study_key}: {style} layout dropped finding items {missing}")
    findings: list[ReportFindingTruth] = []
    for i in sorted(doc.spans, key=lambda i: doc.spans[i]):
        start, end = doc.spans[i]
        span = TextSpan(start=start, end=end, text=text[start:end])
        for s in ctx.items[i].statements:
            said = s.said
            finding = StructuredFinding(
                location_id=said.location.id, laterality=said.location.laterality, ct_finding=said.ct,
                pet_finding=PetFinding(tracer=said.tracer, grade=said.grade),
                suv_max=float(said.suv) if said.suv else None,
                size_mm=float(said.size[0]) if said.size else None, span=span)
            findings.append(ReportFindingTruth(
                study_key=study.study_key, style=style, finding_index=len(findings), finding=finding,
                instances=tuple(sorted(t.instance for t in s.lesions))))
    return RenderedReport(text=text, style=style, findings=findings)


__all__ = ["HOUSE_STYLES", "RenderedReport", "ReportContext", "render_report"]
