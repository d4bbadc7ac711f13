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

Parts: ``report_context`` (disease, history, imaged range), ``report_plan`` (statements and their values),
``report_header`` (header facts, technique), ``report_layouts`` (the house styles), ``report_text`` (text
with statement spans), ``report_styles`` (the wording tables).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_contracts.records import PetFinding, StructuredFinding, TextSpan
from data_contracts.tables import ReportFindingTruth
from tasks.synth.raw import RawStudy
from tasks.synth.report_context import ReportContext, imaged_range, infer_disease
from tasks.synth.report_header import draw_header
from tasks.synth.report_layouts import LAYOUTS, ReportWriter
from tasks.synth.report_plan import plan_items
from tasks.synth.report_styles import pick
from tasks.synth.report_text import ReportDoc

HOUSE_STYLES: tuple[str, ...] = ("numbered", "prose", "terse", "impression_first", "caption")


@dataclass(frozen=True)
class RenderedReport:
    """A report as the hospital would deliver it, and what a perfect extractor reads from it."""

    text: str  # contains the patient's name, MRN and birth date (PHI), like a real report
    style: str  # one of HOUSE_STYLES
    findings: list[ReportFindingTruth]  # text order; spans index ``text``


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
    if style not in LAYOUTS:
        raise ValueError(f"study {study.study_key}: unknown report style {style!r}; choose from {HOUSE_STYLES}")
    terse = style == "terse"
    context = context or ReportContext()
    if not context.disease:
        context = ReportContext(infer_disease(study), context.prior_sites, context.response)
    header = draw_header(study, rng, context.disease, imaged_range(study))
    ctx = ReportWriter(study, rng, plan_items(study, rng, terse), context)
    doc = ReportDoc()
    LAYOUTS[style](doc, ctx, header)
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
