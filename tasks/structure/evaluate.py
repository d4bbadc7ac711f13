"""Score a structuring backend against ground-truth findings: precision and recall per field.

Per report, predicted and true findings are paired one-to-one (Hungarian, ``linear_sum_assignment``):
a pair must share the location or overlap in source text; among the possible pairings the one with the
most shared locations, then the most overlapping evidence spans, then the most agreeing values wins.
Then, per field, a pair is correct when the field agrees:

* ``finding``: the pair exists at all (detection);
* ``location``, ``laterality``, ``ct_finding``: equal; ``pet_finding``: tracer and grade equal;
* ``suv_max``: both given and equal to 0.1 (|difference| <= 0.05: the same value written with one decimal);
* ``size_mm``: both given and within 1 mm.

precision = correct / predicted findings, recall = correct / true findings; for SUVmax and size only
findings that state a value are counted (a prediction with a value where the truth has none is a false
positive, a true value the prediction misses a false negative). Scores are given overall and per house
style. ``FieldScores.table`` is the pandas table ``petcap structure-eval`` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from data_contracts.findings import Tracer
from data_contracts.records import StructuredFinding, TextSpan
from data_contracts.settings import RawLayout
from data_contracts.structured_report import StructuredReport
from data_contracts.tables import MANIFEST, REPORT_TRUTH
from tasks.ingest.report_text import read_report_text

FIELDS = ("finding", "location", "laterality", "ct_finding", "pet_finding", "suv_max", "size_mm")
OVERALL = "overall"
SUV_TOLERANCE = 0.05  # "exact to 0.1": equal when written with one decimal
SIZE_TOLERANCE_MM = 1.0


@dataclass(frozen=True)
class FieldScores:
    """Counts and rates per (style, field); ``style == "overall"`` pools every report."""

    table: pd.DataFrame  # columns: style, field, correct, predicted, true, precision, recall

    def get(self, field: str, style: str = OVERALL) -> pd.Series:
        rows = self.table[(self.table["style"] == style) & (self.table["field"] == field)]
        if rows.empty:
            raise KeyError(f"no scores for field {field!r}, style {style!r}")
        return rows.iloc[0]

    def precision(self, field: str, style: str = OVERALL) -> float:
        return float(self.get(field, style)["precision"])

    def recall(self, field: str, style: str = OVERALL) -> float:
        return float(self.get(field, style)["recall"])

    def __str__(self) -> str:
        wide = self.table.pivot(index="field", columns="style", values=["precision", "recall"])
        return wide.reindex(list(FIELDS)).to_string(float_format=lambda v: f"{v:.3f}")


@dataclass(frozen=True)
class EvalCase:
    """One report with its ground truth: what ``evaluate`` runs a backend on."""

    key: str
    text: str
    tracer: Tracer | None
    truth: tuple[StructuredFinding, ...]
    style: str


# ----------------------------------------------------------------------------------------------- match
def _overlap(a: TextSpan | None, b: TextSpan | None) -> float:
    """Shared characters over the shorter span: 1.0 when one span lies inside the other."""
    if a is None or b is None:
        return 0.0
    shared = min(a.end, b.end) - max(a.start, b.start)
    shortest = min(a.end - a.start, b.end - b.start)
    return max(shared, 0) / shortest if shortest > 0 else 0.0


def _suv_ok(p: float | None, t: float | None) -> bool:
    return p is not None and t is not None and abs(p - t) <= SUV_TOLERANCE + 1e-9


def _size_ok(p: float | None, t: float | None) -> bool:
    return p is not None and t is not None and abs(p - t) <= SIZE_TOLERANCE_MM + 1e-9


def match(predicted: Sequence[StructuredFinding], truth: Sequence[StructuredFinding]) -> list[tuple[int, int]]:
    """One-to-one pairs (predicted index, true index): location first, then span overlap, then values."""
    if not predicted or not truth:
        return []
    score = np.full((len(predicted), len(truth)), -1.0)
    for i, p in enumerate(predicted):
        for j, t in enumerate(truth):
            same_loc = p.location_id == t.location_id
            overlap = _overlap(p.span, t.span)
            if not same_loc and overlap <= 0:
                continue  # nothing links them: never paired
            agree = (p.ct_finding == t.ct_finding) + _suv_ok(p.suv_max, t.suv_max) + _size_ok(p.size_mm, t.size_mm)
            score[i, j] = 100.0 * same_loc + 10.0 * overlap + agree
    rows, cols = linear_sum_assignment(-np.where(score < 0, -1e6, score))
    return [(int(r), int(c)) for r, c in zip(rows, cols) if score[r, c] >= 0]


def _correct(field: str, p: StructuredFinding, t: StructuredFinding) -> bool:
    if field == "finding":
        return True
    if field == "location":
        return p.location_id == t.location_id
    if field == "laterality":
        return p.laterality == t.laterality
    if field == "ct_finding":
        return p.ct_finding == t.ct_finding
    if field == "pet_finding":
        return p.pet_finding == t.pet_finding
    if field == "suv_max":
        return _suv_ok(p.suv_max, t.suv_max)
    if field == "size_mm":
        return _size_ok(p.size_mm, t.size_mm)
    raise KeyError(field)


def _counted(field: str, f: StructuredFinding) -> bool:
    """Whether a finding enters the field's denominators (SUV/size only when a value is stated)."""
    if field == "suv_max":
        return f.suv_max is not None
    if field == "size_mm":
        return f.size_mm is not None
    return True


# ----------------------------------------------------------------------------------------------- score
def score(predicted: list[StructuredReport], truth: list[list[StructuredFinding]], styles: list[str]) -> FieldScores:
    """Precision and recall per field, overall and per house style; one entry per report in each list."""
    if not (len(predicted) == len(truth) == len(styles)):
        raise ValueError(f"score needs one prediction, truth list and style per report: got {len(predicted)}, "
                         f"{len(truth)}, {len(styles)}")
    counts: dict[tuple[str, str], list[int]] = {}
    for report, true, style in zip(predicted, truth, styles):
        pred = list(report.findings)
        pairs = match(pred, true)
        for field in FIELDS:
            correct = sum(_correct(field, pred[i], true[j]) and _counted(field, pred[i]) and _counted(field, true[j])
                          for i, j in pairs)
            n_pred = sum(_counted(field, f) for f in pred)
            n_true = sum(_counted(field, f) for f in true)
            for s in (OVERALL, style):
                c = counts.setdefault((s, field), [0, 0, 0])
                c[0] += correct
                c[1] += n_pred
                c[2] += n_true
    rows = []
    for style in [OVERALL, *sorted(set(styles) - {OVERALL})]:
        for field in FIELDS:
            correct, n_pred, n_true = counts.get((style, field), (0, 0, 0))
            rows.append({"style": style, "field": field, "correct": correct, "predicted": n_pred, "true": n_true,
                         "precision": correct / n_pred if n_pred else float("nan"),
                         "recall": correct / n_true if n_true else float("nan")})
    table = pd.DataFrame(rows, columns=["style", "field", "correct", "predicted", "true", "precision", "recall"])
    return FieldScores(table)


def evaluate(cases: Iterable[EvalCase],
             extract: Callable[[str, Tracer | None], StructuredReport]) -> FieldScores:
    """Run a backend (``rules.extract`` or the LLM backend's equivalent) on every case and score it."""
    cases = list(cases)
    predicted = [extract(c.text, c.tracer) for c in cases]
    return score(predicted, [list(c.truth) for c in cases], [c.style for c in cases])


def load_cases(raw: RawLayout) -> list[EvalCase]:
    """The synthetic ground truth of a raw drop folder: every report in the manifest with its true findings.

    Reports whose truth lists no finding are included (they test precision); their style is the one the
    truth table records for them, else "unknown".
    """
    manifest = MANIFEST.read(raw.manifest)
    if manifest.empty:
        raise FileNotFoundError(f"{raw.manifest}: no manifest (run `petcap synth` or point raw_dir at a delivery)")
    if not Path(raw.truth_report_findings).exists():
        raise FileNotFoundError(f"{raw.truth_report_findings}: no report ground truth in this drop folder")
    truth_rows = REPORT_TRUTH.records(REPORT_TRUTH.read(raw.truth_report_findings),
                                      source=str(raw.truth_report_findings))
    by_key: dict[str, list] = {}
    for row in truth_rows:
        by_key.setdefault(row.study_key, []).append(row)
    cases = []
    for row in MANIFEST.records(manifest, source=str(raw.manifest)):
        if not row.report_path:
            continue
        path = raw.root / row.report_path
        if not path.exists():
            raise FileNotFoundError(f"{path}: report named in the manifest is missing")
        rows = sorted(by_key.get(row.study_key, []), key=lambda r: r.finding_index)
        style = rows[0].style if rows else "unknown"
        cases.append(EvalCase(row.study_key, read_report_text(path, row.report_path), row.tracer,
                              tuple(r.finding for r in rows), style))
    return cases
