"""Score a report-structuring backend on real, published PET/CT prose (issue 13 acceptance figures).

    python benchmarks/real_prose.py [--excerpts FILE] [--backend rules|openai] [--misses] [--json OUT]

Runs the project's public structuring entry (``tasks.structure.backend.structure_texts``, one text at a time so
one failure does not hide the rest) over every excerpt twice — with the tracer the annotation names (FDG or
PSMA; ``other``/none passes no tracer) and with no tracer at all — and prints one table per run:

* **location precision / recall**: predicted findings matched one-to-one with annotated lesions of the same
  text (``scipy.optimize.linear_sum_assignment``). A prediction is right for a lesion when its node equals the
  annotated node (or one in ``also_accept``) or is coarser along the hierarchy, *without* dropping a stated
  side (the annotated node is sided and the prediction is not, or has the other side) or a stated
  level/number (vertebra, rib number, liver segment, lobe, nodal level or station). ``other`` (a finding on
  the hierarchy's open nodes ``body``/``region_*`` with the report's words) matches ``other`` in the same body
  region.
* **SUVmax recall**: annotated SUVmax values found within 0.05 — on the matched finding (``on lesion``), and
  anywhere among the text's findings (``in text``, one value used once).
* **negatives**: an annotated negative statement is *respected* when no finding that matches no annotated
  lesion is read from text overlapping its span ("no FDG uptake in the right inguinal region" must not give
  an inguinal finding; "avid adrenal nodules but no extra-adrenal disease" may give the adrenal ones);
  *detected* when the report contract carries negatives and one matches: both whole-body, one node within the
  other, or for an ``other`` negative a negative on the open node of its region (until then: n/a).
* **crashed**: texts whose structuring raised; **quarantined**: texts the backend declined.

The ancestor check goes through ``is_within(node_id, ancestor_id)``: the hierarchy module of engineer "prose"
(``data_contracts.hierarchy.is_within``) when present, else ids are equal or not.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

from benchmarks.real_prose_format import DEFAULT_EXCERPTS, OTHER, Excerpt, GoldLesion, load_excerpts  # noqa: E402

SUV_TOLERANCE = 0.05
# ids whose last part states a level or number: a coarser prediction drops it
_LEVELLED = re.compile(r"^(vertebra_[ctl]\d+|rib_\d+_[rl]|liver_s\d|lung_(rul|rml|rll|lul|lll)|"
                       r"ln_cervical_(i|ii|iii|iv|v|vi)_[rl]|ln_mediastinal_\w+)$")


# ------------------------------------------------------------------------------------------- hierarchy
def _equal_only(node_id: str, ancestor_id: str) -> bool:
    return node_id == ancestor_id


def hierarchy_is_within() -> Callable[[str, str], bool]:
    """``is_within(node_id, ancestor_id)``: True when ``ancestor_id`` is ``node_id`` or one of its ancestors.

    ``data_contracts.hierarchy.is_within`` (engineer "prose", issue 13 item 1: parent links) once it is merged;
    until then ids are equal or not.
    """
    try:
        from data_contracts import hierarchy  # type: ignore[attr-defined]
    except ImportError:
        return _equal_only
    fn = getattr(hierarchy, "is_within", None)
    return fn if callable(fn) else _equal_only


def side_of(node_id: str, laterality: str | None = None) -> str | None:
    """The side a node states: its laterality when given, else an ``_r``/``_l`` suffix."""
    if laterality in ("left", "right"):
        return laterality
    if node_id.endswith("_r"):
        return "right"
    if node_id.endswith("_l"):
        return "left"
    return None


# ------------------------------------------------------------------------------------------- predictions
@dataclass(frozen=True)
class Predicted:
    """What the scorer reads of one structured finding."""

    location: str
    side: str | None
    suv_max: float | None
    region: str | None = None  # for an "other" finding
    start: int | None = None  # span on the original text
    end: int | None = None


def _is_open_node(loc: str) -> bool:
    """The hierarchy's open nodes, where an "other site" finding sits: ``body`` and ``region_<region>``."""
    return loc == "body" or loc.startswith("region_")


def _open_region(loc: str) -> str | None:
    """The body region an open node names (``region_chest`` → ``chest``); None for ``body`` and other nodes."""
    return loc.removeprefix("region_") if loc.startswith("region_") else None


def predicted_view(finding, text: str) -> Predicted:
    """One ``StructuredFinding`` as the scorer sees it.

    An "other site" finding (location on an open node, the report's words in ``other_site``) becomes
    ``other`` with the region of ``other_site.region``, else the one its ``region_<region>`` node names.
    """
    loc = getattr(finding, "location_id", None) or OTHER
    lat = getattr(finding, "laterality", None)
    lat = getattr(lat, "value", lat)
    region = None
    if _is_open_node(loc) or loc == OTHER:
        site = getattr(finding, "other_site", None)
        value = getattr(site, "region", None) if site is not None else None
        region = getattr(value, "value", value) or _open_region(loc)
        loc = OTHER
    site = getattr(finding, "other_site", None)  # data_contracts.records.OtherSite: an open-node finding
    if site is not None:
        loc, region = OTHER, getattr(site.region, "value", site.region)
    span = getattr(finding, "span", None)
    start, end = (span.start, span.end) if span is not None else (None, None)
    if span is not None and text[start:end] != span.text:  # the span is on the PHI-scrubbed text: find it
        pos = text.find(span.text)
        start, end = (pos, pos + len(span.text)) if pos >= 0 else (None, None)
    return Predicted(loc, side_of(loc, lat), getattr(finding, "suv_max", None), region, start, end)


# ------------------------------------------------------------------------------------------- matching
def location_correct(pred: Predicted, gold: GoldLesion, is_within: Callable[[str, str], bool]) -> bool:
    """Equal to the annotated node (or an ``also_accept`` one) or coarser, keeping stated side and level."""
    if pred.location == OTHER:
        return gold.location == OTHER and _same_region(pred.region, gold.region)
    targets = gold.also_accept if gold.location == OTHER else (gold.location, *gold.also_accept)
    for target in targets:
        if pred.location == target:
            return True
        if not is_within(target, pred.location):
            continue
        if _LEVELLED.match(target):
            continue  # a coarser node drops the stated level or number
        gold_side = side_of(target)
        if gold_side is not None and pred.side != gold_side:
            continue
        return True
    return False


def _same_region(pred: str | None, gold: str | None) -> bool:
    if pred is None or gold is None:
        return False
    return pred == gold or (gold == "abdomen_pelvis" and pred in ("abdomen", "pelvis"))


def _suv_equal(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and abs(a - b) <= SUV_TOLERANCE + 1e-9


def match(preds: Sequence[Predicted], golds: Sequence[GoldLesion],
          is_within: Callable[[str, str], bool], text: str | None = None) -> list[tuple[int, int]]:
    """One-to-one (prediction, lesion) pairs, as many as possible.

    Ties are broken by SUV agreement, then by the prediction being read from the lesion's own words (so a
    history sentence that names the same site does not take the pairing from the finding sentence).
    """
    if not preds or not golds:
        return []
    spans = [_where(text, g.span) for g in golds]
    w = np.zeros((len(preds), len(golds)))
    for i, p in enumerate(preds):
        for j, g in enumerate(golds):
            if location_correct(p, g, is_within):
                w[i, j] = 1.0 + (0.01 if _suv_equal(p.suv_max, g.suv_max) else 0.0)
                lo, hi = spans[j]
                if p.start is not None and lo is not None and p.start < hi and p.end > lo:
                    w[i, j] += 0.005
    rows, cols = linear_sum_assignment(w, maximize=True)
    return [(int(i), int(j)) for i, j in zip(rows, cols) if w[i, j] > 0]


def _where(text: str | None, span: str) -> tuple[int | None, int | None]:
    pos = text.find(span) if text else -1
    return (pos, pos + len(span)) if pos >= 0 else (None, None)


def suv_in_text(preds: Sequence[Predicted], golds: Sequence[GoldLesion]) -> int:
    """How many annotated SUVmax values occur among the predicted values (each predicted value used once)."""
    pool = [p.suv_max for p in preds if p.suv_max is not None]
    found = 0
    for g in golds:
        if g.suv_max is None:
            continue
        for k, v in enumerate(pool):
            if _suv_equal(v, g.suv_max):
                found += 1
                del pool[k]
                break
    return found


# ------------------------------------------------------------------------------------------- scoring
@dataclass
class Scores:
    texts: int = 0
    lesions: int = 0
    predicted: int = 0
    matched: int = 0
    suv_gold: int = 0
    suv_on_lesion: int = 0
    suv_in_text: int = 0
    negatives: int = 0
    negatives_respected: int = 0
    negatives_detected: int | None = None  # None: the report contract carries no negatives
    crashed: int = 0
    quarantined: int = 0
    misses: list[str] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.matched / self.predicted if self.predicted else 0.0

    @property
    def recall(self) -> float:
        return self.matched / self.lesions if self.lesions else 0.0

    @staticmethod
    def _ratio(a: int | None, b: int) -> str:
        return "n/a" if a is None else f"{a / b:.3f} ({a}/{b})" if b else "-"

    def row(self) -> dict[str, str]:
        return {
            "texts": str(self.texts),
            "loc precision": self._ratio(self.matched, self.predicted),
            "loc recall": self._ratio(self.matched, self.lesions),
            "SUVmax on lesion": self._ratio(self.suv_on_lesion, self.suv_gold),
            "SUVmax in text": self._ratio(self.suv_in_text, self.suv_gold),
            "negatives respected": self._ratio(self.negatives_respected, self.negatives),
            "negatives detected": self._ratio(self.negatives_detected, self.negatives),
            "crashed": str(self.crashed),
            "quarantined": str(self.quarantined),
        }


def score_one(excerpt: Excerpt, preds: Sequence[Predicted], scores: Scores,
              is_within: Callable[[str, str], bool], predicted_negatives: Sequence[str | None] | None = None) -> None:
    """Add one text's predictions to ``scores``."""
    golds = excerpt.lesions
    pairs = match(preds, golds, is_within, excerpt.text)
    scores.lesions += len(golds)
    scores.predicted += len(preds)
    scores.matched += len(pairs)
    by_gold = {j: i for i, j in pairs}
    for j, g in enumerate(golds):
        if g.suv_max is not None:
            scores.suv_gold += 1
            if j in by_gold and _suv_equal(preds[by_gold[j]].suv_max, g.suv_max):
                scores.suv_on_lesion += 1
            elif j in by_gold:
                scores.misses.append(f"{excerpt.id} SUV {g.suv_max} not on {g.location} "
                                     f"(got {preds[by_gold[j]].suv_max})")
        if j not in by_gold:
            scores.misses.append(f"{excerpt.id} missed {g.location}: {g.span[:70]!r}")
    matched_preds = {i for i, _ in pairs}
    for i, p in enumerate(preds):
        if i not in matched_preds:
            scores.misses.append(f"{excerpt.id} extra {p.location} ({p.side or '-'}, SUV {p.suv_max})")
    scores.suv_in_text += suv_in_text(preds, golds)
    for neg in excerpt.negatives:
        scores.negatives += 1
        lo = excerpt.text.find(neg.span)
        hi = lo + len(neg.span)
        # a finding read from the negated words that matches no stated lesion is what the negation forbids;
        # a matched finding whose (sentence-long) span also covers the negation is a lesion stated beside it
        inside = [i for i, p in enumerate(preds)
                  if p.start is not None and p.start < hi and p.end > lo and i not in matched_preds]
        if not inside:
            scores.negatives_respected += 1
        else:
            scores.misses.append(f"{excerpt.id} finding read inside negative {neg.span[:60]!r}")
        if predicted_negatives is not None:
            hit = any(negative_matches(n, neg, is_within) for n in predicted_negatives)
            scores.negatives_detected = (scores.negatives_detected or 0) + hit
            if not hit:
                scores.misses.append(f"{excerpt.id} negative not detected {neg.location}: {neg.span[:60]!r} "
                                     f"(read {list(predicted_negatives)})")


def negative_matches(pred: str | None, gold, is_within: Callable[[str, str], bool]) -> bool:
    """A predicted negative (a node id, None for the whole body) states the annotated one: both whole-body, one
    node within the other, or an ``other`` negative's region stated on the hierarchy's open node of it
    (``region_abdomen`` for "no metastasis within the abdomen or pelvis")."""
    if pred is None or gold.location is None:
        return pred is None and gold.location is None
    if gold.location == OTHER:
        return _same_region(_open_region(pred), gold.region)
    return is_within(gold.location, pred) or is_within(pred, gold.location)


def _tracer(name: str | None):
    from data_contracts.findings import Tracer

    return Tracer(name) if name in ("FDG", "PSMA") else None


def run_backend(excerpts: Sequence[Excerpt], backend: str = "rules", use_tracer: bool = True,
                settings=None) -> Scores:
    """Structure every excerpt with ``backend`` and score it."""
    from data_contracts.settings import get_settings
    from tasks.structure.backend import structure_texts

    settings = settings or get_settings()
    is_within = hierarchy_is_within()
    scores = Scores()
    for ex in excerpts:
        scores.texts += 1
        tracer = _tracer(ex.tracer) if use_tracer else None
        try:
            (result,) = structure_texts([ex.text], settings, backend=backend, tracers=[tracer], items=[ex.id])
        except Exception as e:  # noqa: BLE001 - a crash is what this benchmark counts
            scores.crashed += 1
            last = traceback.extract_tb(e.__traceback__)[-1]
            scores.misses.append(f"{ex.id} CRASH {type(e).__name__}: {str(e)[:80]} "
                                 f"({Path(last.filename).name}:{last.lineno})")
            score_one(ex, [], scores, is_within)
            continue
        if result.report is None:
            scores.quarantined += 1
            score_one(ex, [], scores, is_within)
            continue
        preds = [predicted_view(f, ex.text) for f in result.report.findings]
        negs = getattr(result.report, "negatives", None)
        neg_ids = None if negs is None else [getattr(n, "location_id", None) for n in negs]
        score_one(ex, preds, scores, is_within, neg_ids)
    return scores


def table(rows: dict[str, dict[str, str]]) -> str:
    """A plain-text table: one row per run, one column per figure."""
    cols = list(next(iter(rows.values())).keys())
    widths = {c: max(len(c), *(len(r[c]) for r in rows.values())) for c in cols}
    name_w = max(len("run"), *(len(n) for n in rows))
    lines = ["  ".join(["run".ljust(name_w)] + [c.ljust(widths[c]) for c in cols])]
    for name, r in rows.items():
        lines.append("  ".join([name.ljust(name_w)] + [r[c].ljust(widths[c]) for c in cols]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--excerpts", type=Path, default=DEFAULT_EXCERPTS, help="annotated JSON Lines file")
    ap.add_argument("--backend", default="rules", choices=("rules", "openai"))
    ap.add_argument("--misses", action="store_true", help="list every missed lesion, extra finding and crash")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)

    excerpts = load_excerpts(args.excerpts)
    n_les = sum(len(e.lesions) for e in excerpts)
    print(f"{len(excerpts)} excerpts, {n_les} lesions, "
          f"{sum(les.suv_max is not None for e in excerpts for les in e.lesions)} SUVmax values, "
          f"{sum(len(e.negatives) for e in excerpts)} negatives ({args.excerpts}); backend {args.backend}; "
          f"hierarchy: {'data_contracts.hierarchy' if hierarchy_is_within() is not _equal_only else 'ids equal'}")
    runs = {"tracer from annotation": run_backend(excerpts, args.backend, use_tracer=True),
            "no tracer": run_backend(excerpts, args.backend, use_tracer=False)}
    print(table({name: s.row() for name, s in runs.items()}))
    if args.misses:
        for name, s in runs.items():
            print(f"\n# {name}")
            print("\n".join(s.misses))
    if args.json:
        out = {name: {**{k: v for k, v in asdict(s).items() if k != "misses"},
                      "precision": s.precision, "recall": s.recall} for name, s in runs.items()}
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
