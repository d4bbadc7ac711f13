"""Pair precision and recall of the caption samples against the synthetic ground truth (``petcap link-eval``).

Evaluation only: production steps never read a drop folder's ``truth/``. The samples and lesions come from
the home's tables; the truth from every registered drop folder that has one (``truth/lesions.parquet``).

Each ingested lesion is identified with the truth lesion whose centre is nearest its centroid (within half the
truth lesion's size, at least 5 mm). A sample is a correct pair when that truth lesion is reported and the
sample's location and CT finding are the truth's. Recall counts the truth lesions that have a mask and a
report statement: those a perfect pipeline turns into samples.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from data_contracts.errors import PrerequisiteError
from data_contracts.records import CaptionSample, Lesion, LesionTruth
from data_contracts.settings import RawLayout, Settings
from data_contracts.tables import CAPTION_SAMPLES, LESIONS, TRUTH
from tasks import deliveries
from tasks.ingest.pseudonym import study_pseudonym


@dataclass(frozen=True)
class LinkScores:
    samples: int
    linkable: int  # truth lesions with a mask and a report statement, in studies that have samples' truth
    correct: int
    precision: float
    recall: float

    def __str__(self) -> str:
        return (f"link-eval: {self.samples} samples, {self.linkable} linkable truth lesions, {self.correct} correct "
                f"pairs: precision {self.precision:.3f}, recall {self.recall:.3f}")


def truth_by_study(settings: Settings) -> dict[str, list[LesionTruth]]:
    """Ground-truth lesions per study pseudonym, from every registered drop (else ``settings.raw_dir``)."""
    drops = {r.drop for r in deliveries.active(settings)} or {str(settings.raw_dir)}
    by_study: dict[str, list[LesionTruth]] = {}
    for drop in sorted(drops):
        path = RawLayout(drop).truth_lesions
        if path.exists():
            for t in TRUTH.records(TRUTH.read(path), source=str(path)):
                by_study.setdefault(study_pseudonym(t.study_key, settings.pseudonym_key), []).append(t)
    return by_study


def pair_scores(samples: list[CaptionSample], lesions: list[Lesion],
                truth: dict[str, list[LesionTruth]]) -> LinkScores:
    """Score ``samples`` (linked from ``lesions``) against ``truth`` (per study pseudonym)."""

    def truth_of(study_id: str, lesion: Lesion) -> LesionTruth | None:
        best, best_d = None, float("inf")
        for t in truth.get(study_id, []):
            d = math.dist(t.center_mm, lesion.centroid_mm)
            if d < best_d and d <= max(5.0, t.size_mm / 2):
                best, best_d = t, d
        return best

    lesion_at = {(l.study_id, l.instance): l for l in lesions}
    correct = 0
    for s in samples:
        t = truth_of(s.study_id, lesion_at[(s.study_id, s.instance)])
        correct += bool(t and t.reported and (t.location_id, t.ct_finding) == (s.location_id, s.ct_finding))
    studies = {l.study_id for l in lesions}
    linkable = sum(t.in_mask and t.reported for sid in studies for t in truth.get(sid, []))
    return LinkScores(samples=len(samples), linkable=linkable, correct=correct,
                      precision=correct / len(samples) if samples else float("nan"),
                      recall=correct / linkable if linkable else float("nan"))


def evaluate_links(settings: Settings) -> LinkScores:
    """``pair_scores`` of the home's caption samples against the registered drops' ground truth."""
    source = settings.table_path("caption_samples")
    if not source.exists():
        raise PrerequisiteError("no caption-sample table", path=str(source), reason="not_linked",
                                hint="run `petcap link` or `petcap refresh` first")
    truth = truth_by_study(settings)
    if not truth:
        raise PrerequisiteError("no registered drop folder has synthetic ground truth (truth/lesions.parquet)",
                                reason="no_truth", hint="link-eval scores synthetic cohorts (`petcap synth`) only")
    samples = CAPTION_SAMPLES.records(CAPTION_SAMPLES.read(source), source=str(source))
    lesions = LESIONS.records(LESIONS.read(settings.table_path("lesions")))
    return pair_scores(samples, lesions, truth)
