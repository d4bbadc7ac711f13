"""One entry to report structuring, whichever backend settings choose.

Every report is PHI-scrubbed first (``phi_scrubber.scrub``) for both backends, so the spans stored downstream hold no
names, dates or identifiers; the rules backend runs on the machine, the ``openai`` backend (vLLM inside the
hospital, or a hosted API where allowed) only ever sees scrubbed text. For scoring against ground truth the
spans are mapped back onto the original text.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from data_contracts.findings import Tracer
from data_contracts.records import TextSpan
from data_contracts.settings import RawLayout, Settings
from data_contracts.structured_report import StructuredReport
from tasks.structure import evaluate, rules
from tasks.structure.phi_scrubber import scrub, scrub_detailed
from tasks.structure.llm import StructureResult, structure_reports
from tasks.structure.llm_errors import failure
from tasks.structure.prompts import PROMPT_VERSION


def _backend(settings: Settings, backend: str | None) -> str:
    return backend or settings.llm.backend


def structure_texts(
    texts: Sequence[str],
    settings: Settings,
    backend: str | None = None,
    tracers: Sequence[Tracer | None] | None = None,
    items: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
) -> list[StructureResult]:
    """Structure many reports; one result (a report or a quarantine record) per text, in order."""
    if _backend(settings, backend) == "openai":  # scrubs every text itself before anything is sent
        return structure_reports(list(texts), settings, items=items, sources=sources)
    tracers = tracers or [None] * len(texts)
    return [StructureResult(report=rules.extract(scrub(t), tracer)) for t, tracer in zip(texts, tracers)]


def structure_text(text: str, settings: Settings, backend: str | None = None,
                   tracer: Tracer | None = None) -> StructuredReport:
    """One report; a report the LLM could not structure raises the ``llm_errors`` class of its quarantine
    reason (a ``PetcapError``: ``LLMUnavailable``, ``LLMRejected``, ``LLMInvalidOutput``)."""
    (result,) = structure_texts([text], settings, backend, [tracer])
    if result.report is None:
        raise failure(result.quarantine)
    return result.report


def _on_original(report: StructuredReport, original: str) -> StructuredReport:
    """The report with every span moved from the scrubbed text back onto ``original``."""
    mapping = scrub_detailed(original)
    findings = []
    for f in report.findings:
        if f.span is not None:
            start, end = mapping.to_original(f.span.start, f.span.end)
            f = f.model_copy(update={"span": TextSpan(start=start, end=end, text=original[start:end])})
        findings.append(f)
    return report.model_copy(update={"findings": tuple(findings)})


def evaluate_backend(settings: Settings, backend: str | None = None,
                     raw_dir: Path | None = None) -> evaluate.FieldScores:
    """Precision and recall per field, overall and per house style, on a synthetic drop folder's truth."""
    cases = evaluate.load_cases(RawLayout(raw_dir or settings.raw_dir))
    results = structure_texts([c.text for c in cases], settings, backend, [c.tracer for c in cases],
                              items=[c.key for c in cases])
    # a quarantined report predicts nothing: its true findings count as misses
    nothing = StructuredReport(backend="openai", model=settings.llm.model, prompt_version=PROMPT_VERSION,
                               extractor_version="quarantined")
    predicted = [_on_original(r.report, c.text) if r.report else nothing for r, c in zip(results, cases)]
    return evaluate.score(predicted, [list(c.truth) for c in cases], [c.style for c in cases])
