"""Negation, uncertainty and history scoping by medSpaCy (ConText + sectionizer), the alternative to the
rules extractor's hand-written scoping (``rules.extract(..., scoping="medspacy")``).

The rules extractor finds the findings without its own negation cues; this module then runs medSpaCy's
default ConText rules (negated, historical, hypothetical, family) with each finding's location words as the
target, and its default sectionizer (a finding in a history, indication or comparison section is dropped).
``benchmarks/prose_scoping.py`` measures both scopings on the real-prose dev set; the default stays the one
that measures better (README, "Location hierarchy").
"""

from __future__ import annotations

from functools import cache

from data_contracts.structured_report import StructuredReport
from tasks.structure import lexicon as lx

_DROP_SECTIONS = {"past_medical_history", "history_of_present_illness", "indication", "reason_for_examination",
                  "family_history", "social_history", "medications", "allergies", "past_surgical_history",
                  "chief_complaint", "comparison", "technique"}


@cache
def _nlp():
    import medspacy  # optional dependency (extra "medspacy"): only this scoping needs it

    try:  # PyRuSH logs every sentence split at DEBUG through loguru
        from loguru import logger

        logger.disable("PyRuSH")
    except ImportError:
        pass

    nlp = medspacy.load(medspacy_enable=["medspacy_pyrush", "medspacy_context"])
    nlp.add_pipe("medspacy_sectionizer")
    return nlp


def _target(text: str, start: int, end: int) -> tuple[int, int]:
    """Character range of the location words inside a finding's evidence span (the span when none)."""
    hits = lx.find_locations(text[start:end])
    if not hits:
        return start, end
    return start + hits[0].start, start + hits[0].end


def medspacy_scope(text: str, report: StructuredReport) -> StructuredReport:
    """The report without the findings medSpaCy reads as negated, historical, hypothetical or family, or that
    lie in a history-like section of ``text`` (the text the spans point into)."""
    if not report.findings:
        return report
    nlp = _nlp()
    doc = nlp.make_doc(text)
    for name, proc in nlp.pipeline:
        if name != "medspacy_context":
            doc = proc(doc)
    spans, owner = [], {}
    for i, f in enumerate(report.findings):
        if f.span is None:
            continue
        a, b = _target(text, f.span.start, f.span.end)
        span = doc.char_span(a, b, label="FINDING", alignment_mode="expand")
        if span is None:
            continue
        key = (span.start, span.end)
        if key not in owner:
            spans.append(span)
        owner.setdefault(key, []).append(i)
    spans = sorted(spans, key=lambda s: (s.start, -s.end))
    kept_spans, last_end = [], -1
    for s in spans:  # entities may not overlap
        if s.start >= last_end:
            kept_spans.append(s)
            last_end = s.end
    doc.ents = kept_spans
    doc = nlp.get_pipe("medspacy_context")(doc)
    drop: set[int] = set()
    for ent in doc.ents:
        section = getattr(ent._, "section_category", None)
        if (ent._.is_negated or ent._.is_historical or ent._.is_hypothetical or ent._.is_family
                or section in _DROP_SECTIONS):
            drop.update(owner.get((ent.start, ent.end), []))
    findings = tuple(f for i, f in enumerate(report.findings) if i not in drop)
    return report.model_copy(update={"findings": findings})
