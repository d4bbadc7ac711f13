"""Evaluate configurations' predictions: every metric overall, by vendor and by tracer; Tables 1 and 2; report.

Input: one predictions table per configuration (``models.training.predict`` output), one row per lesion:

    sample_id, vendor ("Siemens" | "GE" | "United Imaging"), tracer ("FDG" | "PSMA"), location_id, ct_finding,
    reference (caption), generated (caption); optional: patient_id, study_id (pseudonyms), row (patch store row),
    top_ids / top_confidences or top_conf (the localizer's top-5, lists), window (lung | bone | soft_tissue) or
    window_level / window_width (the CT window applied, HU)

Configurations are compared on the same lesions (the inner join of their sample ids), so per-lesion scores are
paired. Known names lay out the paper's tables: baselines "LSTM", "Transformer", "X-Transformer" (Table 1, with
"B+W+P" as ours) and the ablation "B", "B+W", "B+P", "B+W+P" (Table 2). "Location prior" is the trivial baseline
(``location_prior``: the most frequent training caption of the predicted location and the tracer); ours is
tested against it on the Table 2 metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts import taxonomy
from data_contracts.findings import Tracer, Vendor
from data_contracts.patch_store import read_patch_samples
from data_contracts.settings import Settings
from data_contracts.tables import FINDINGS
from tasks.evaluate.baseline import location_baseline
from tasks.evaluate.matching import ct_finding_correct, location_correct, location_correct_at_level
from tasks.evaluate.metrics import (
    CAPTION_METRICS,
    CaptionScorer,
    shared_scorer,
    tokenize,
)
from tasks.evaluate.names import LABELS, OURS, POSITION_PRIOR, PRIOR  # noqa: F401 - the report's names, used here too
from tasks.evaluate.stats import PairedTest, bootstrap_ci, paired_ttest

REQUIRED = ("sample_id", "vendor", "tracer", "location_id", "ct_finding", "reference", "generated")
ACCURACY_METRICS = ("localization", "ct_finding")
METRICS = (*CAPTION_METRICS, *ACCURACY_METRICS)
BASELINES = ("LSTM", "Transformer", "X-Transformer")
ABLATION = ("B", "B+W", "B+P", "B+W+P")
TABLE1_METRICS = ("bleu3", "bleu4", "meteor", "rouge_l", "cider", "spice")
TABLE2_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "localization", "ct_finding")


def location_prior(settings: Settings, predictions: pd.DataFrame) -> pd.DataFrame | None:
    """The trivial baseline on the same lesions as ``predictions`` (a ``predict`` table): each lesion gets the most
    frequent training caption of its predicted top-1 location and its tracer (``location_baseline``). None when
    ``settings`` has no training samples to count."""
    samples = read_patch_samples(settings, with_split=True)
    train = samples[samples["split"] == "train"] if len(samples) else samples
    if len(train) == 0:
        return None
    generated = location_baseline(train, predictions["top1_location"].tolist(), predictions["tracer"].tolist())
    return predictions.assign(generated=generated)


def position_prior(settings: Settings, predictions: pd.DataFrame) -> pd.DataFrame | None:
    """The position-only caption baseline: the location from the scan position alone (``tasks.evaluate.position``,
    no image), then the most frequent training caption of that location and the tracer. None without
    training samples or positions."""
    from tasks.evaluate.position import position_baseline_top

    top = position_baseline_top(settings, predictions["sample_id"].tolist())
    samples = read_patch_samples(settings, with_split=True) if top is not None else []
    train = samples[samples["split"] == "train"] if len(samples) else samples
    if top is None or len(train) == 0:
        return None
    top1 = [t[0] if t else "" for t in top]
    generated = location_baseline(train, top1, predictions["tracer"].tolist())
    return predictions.assign(generated=generated, top1_location=top1)


def with_location_prior(settings: Settings, predictions: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``predictions`` plus the trivial baseline row (``PRIOR``) on ours' lesions, guided by the same localizer,
    and the position-only row (``POSITION_PRIOR``: location from the scan position alone); unchanged when ours
    is absent or there are no training samples to count."""
    out = dict(predictions)
    if OURS in predictions:
        prior = location_prior(settings, predictions[OURS])
        if prior is not None:
            out[PRIOR] = prior
        pos = position_prior(settings, predictions[OURS])
        if pos is not None:
            out[POSITION_PRIOR] = pos
    return out


class EvaluationError(ValueError):
    """Prediction tables that cannot be evaluated; the message names the configuration and the problem."""


def vendor_slug(value: str) -> str:
    return Vendor(value).slug


def tracer_slug(value: str) -> str:
    return Tracer(value).value.lower()


@dataclass
class ConfigEvaluation:
    """One configuration's scores. Scales: pycocoevalcap's (0..1, CIDEr 0..10); accuracies 0..1."""

    name: str
    overall: dict[str, float | None]  # corpus metrics + accuracies; None = unavailable (SPICE without jars)
    by_vendor: pd.DataFrame  # index vendor slug; columns METRICS + n
    by_tracer: pd.DataFrame  # index tracer slug; columns METRICS + n
    per_sample: pd.DataFrame  # index sample_id; columns METRICS (per lesion) + vendor, tracer
    ci: dict[str, tuple[float, float]]  # bootstrap CI of the per-lesion mean of each metric
    notes: list[str] = field(default_factory=list)

    def flat_metrics(self) -> dict[str, float]:
        """MLflow metric names: ``bleu4``, ``bleu4/siemens``, ``bleu4/fdg`` (unavailable metrics left out)."""
        out = {k: float(v) for k, v in self.overall.items() if v is not None}
        for table in (self.by_vendor, self.by_tracer):
            for group, row in table.iterrows():
                for k in METRICS:
                    if k in row and pd.notna(row[k]):
                        out[f"{k}/{group}"] = float(row[k])
        return out


@dataclass
class EvaluationResult:
    configs: dict[str, ConfigEvaluation]
    overall: pd.DataFrame  # configs x METRICS
    table1: pd.DataFrame | None  # the paper's Table 1 layout (strings, with '*' marks)
    table2: pd.DataFrame | None  # the paper's Table 2 layout
    tests: pd.DataFrame  # every paired t-test behind the marks
    localizer: LocalizerEvaluation | None
    html_path: Path | None = None
    markdown_path: Path | None = None
    figures: dict[str, Path] = field(default_factory=dict)


@dataclass
class LocalizerEvaluation:
    per_sample: pd.DataFrame  # sample_id, location_id, region, top1, top1_conf, top1_correct, top5_correct
    by_region: pd.DataFrame  # index region; n, top1_accuracy, top5_accuracy, mean_confidence
    reliability: pd.DataFrame  # bin_lo, bin_hi, n, mean_confidence, accuracy
    ece: float  # expected calibration error of the top-1 confidence
    threshold: float
    above_threshold: dict[str, float]  # fraction of lesions, and top-1 accuracy, at confidence >= threshold
    below_threshold: dict[str, float]
    position_only: dict[str, float] | None = None  # top1 / top5 of the position-only baseline, the localizer's gain


# ------------------------------------------------------------------------------------------------ checks
def check_predictions(name: str, df: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise EvaluationError(f"predictions of {name!r} lack columns {missing}")
    if df["sample_id"].duplicated().any():
        raise EvaluationError(f"predictions of {name!r} repeat sample ids "
                              f"{df.loc[df['sample_id'].duplicated(), 'sample_id'].head(3).tolist()}")
    if len(df) == 0:
        raise EvaluationError(f"predictions of {name!r} are empty")
    if "top_conf" in df.columns and "top_confidences" not in df.columns:  # predict()'s spelling
        df = df.rename(columns={"top_conf": "top_confidences"})
    for col, ok in (("vendor", lambda v: v in {x.value for x in Vendor}),
                    ("tracer", lambda v: v in {x.value for x in Tracer})):
        bad = sorted({v for v in df[col].astype(str) if not ok(v)})
        if bad:
            raise EvaluationError(f"predictions of {name!r}: unknown {col} values {bad}")
    return df.set_index("sample_id", drop=False)


def paired_predictions(predictions: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every configuration restricted to the lesions all of them captioned, in one order."""
    checked = {n: check_predictions(n, df) for n, df in predictions.items()}
    common = None
    for df in checked.values():
        common = df.index if common is None else common.intersection(df.index)
    if common is None or len(common) == 0:
        raise EvaluationError("the configurations share no sample ids")
    common = common.sort_values()
    return {n: df.loc[common] for n, df in checked.items()}


# ------------------------------------------------------------------------------------------- scoring
def _group_scores(scorer: CaptionScorer, gts, res, per: pd.DataFrame, labels: pd.Series) -> pd.DataFrame:
    rows = {}
    for group, idx in labels.groupby(labels).groups.items():
        keys = list(idx)
        sc = scorer.score_tokenized({k: gts[k] for k in keys}, {k: res[k] for k in keys})
        row = {k: sc.corpus[k] for k in CAPTION_METRICS}
        row.update({k: float(per.loc[keys, k].mean()) for k in ACCURACY_METRICS})
        row["n"] = len(keys)
        rows[group] = row
    return pd.DataFrame.from_dict(rows, orient="index")


def stated_locations(df: pd.DataFrame, settings: Settings) -> list[str]:
    """The node each sample's report finding stated (``findings`` table, by study and finding index): coarser
    than the sample's location when linking decided the class. Without the table or those columns, the sample's
    own location."""
    own = [str(x) for x in df["location_id"]]
    path = settings.table_path("findings")
    if not {"study_id", "finding_index"} <= set(df.columns) or not Path(path).exists():
        return own
    table = FINDINGS.read(path)
    stated = {(r.study_id, int(r.finding_index)): r.finding__location_id
              for r in table[["study_id", "finding_index", "finding__location_id"]].itertuples()}
    return [stated.get((sid, int(fi)), loc) for sid, fi, loc in zip(df["study_id"], df["finding_index"], own)]


def evaluate_config(name: str, df: pd.DataFrame, settings: Settings, scorer: CaptionScorer | None = None
                    ) -> ConfigEvaluation:
    """Every metric of one configuration: corpus scores overall / per vendor / per tracer, per-lesion scores."""
    cfg = settings.evaluation
    scorer = scorer or shared_scorer(cfg.spice_jar_dir)
    df = check_predictions(name, df) if df.index.name != "sample_id" else df
    keys = [str(k) for k in df["sample_id"]]
    tok = tokenize({**{f"r{k}": r for k, r in zip(keys, df["reference"])},
                    **{f"h{k}": g for k, g in zip(keys, df["generated"])}})
    gts, res = {k: tok[f"r{k}"] for k in keys}, {k: tok[f"h{k}"] for k in keys}
    scores = scorer.score_tokenized(gts, res)
    per = scores.per_sample.copy()
    per["localization"] = [float(location_correct(g, loc)) for g, loc in zip(df["generated"], df["location_id"])]
    # Correct at the level the sample states: its location may be a coarse node (a report finding that no
    # mask decided); exact-leaf accuracy stays "localization".
    per["localization_stated"] = [float(location_correct_at_level(g, loc))
                                  for g, loc in zip(df["generated"], stated_locations(df, settings))]
    per["ct_finding"] = [float(ct_finding_correct(g, f)) for g, f in zip(df["generated"], df["ct_finding"])]
    per["vendor"] = [vendor_slug(v) for v in df["vendor"]]
    per["tracer"] = [tracer_slug(t) for t in df["tracer"]]
    per.index.name = "sample_id"
    overall = dict(scores.corpus)
    overall.update({k: float(per[k].mean()) for k in ACCURACY_METRICS})
    overall["localization_stated"] = float(per["localization_stated"].mean())
    ci = {k: bootstrap_ci(per[k], cfg.bootstrap_samples, cfg.confidence_level, cfg.bootstrap_seed)
          for k in METRICS if overall.get(k) is not None}
    return ConfigEvaluation(
        name=name, overall=overall,
        by_vendor=_group_scores(scorer, gts, res, per, per["vendor"]),
        by_tracer=_group_scores(scorer, gts, res, per, per["tracer"]),
        per_sample=per, ci=ci, notes=list(scores.notes))


# -------------------------------------------------------------------------------------------- tables
def _fmt(metric: str, value: float | None, mark: str = "") -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    return (f"{value:.3f}" if metric == "cider" else f"{100 * value:.1f}") + mark


def _test(a: ConfigEvaluation, b: ConfigEvaluation, metric: str) -> PairedTest | None:
    if a.overall.get(metric) is None or b.overall.get(metric) is None:
        return None
    return paired_ttest(a.per_sample[metric].to_numpy(), b.per_sample[metric].to_numpy())


def _record(tests: list[dict], configs: dict[str, ConfigEvaluation], a: str, b: str, metric: str,
            alpha: float) -> PairedTest | None:
    """Paired test of configuration a against b on ``metric``, appended to ``tests`` (None: a metric missing)."""
    t = _test(configs[a], configs[b], metric)
    if t is not None:
        tests.append({"config": a, "versus": b, "metric": metric, "mean_diff": t.mean_diff, "t": t.statistic,
                      "p_value": t.p_value, "n": t.n, "significant": t.better(alpha)})
    return t


def _table(configs: dict[str, ConfigEvaluation], rows: tuple[str, ...], metrics: tuple[str, ...],
           compare: Callable[[str, str], str | None], alpha: float, label: Callable[[str], str],
           tests: list[dict]) -> pd.DataFrame | None:
    """Rows present in ``configs``; a cell gets '*' when ``compare(row, metric)`` names a configuration the
    row beats significantly (paired t-test at ``alpha``) on that metric."""
    present = [r for r in rows if r in configs]
    if len(present) < 2:
        return None
    out = {}
    for r in present:
        cells = {}
        for m in metrics:
            mark, other = "", compare(r, m)
            if other is not None:
                t = _record(tests, configs, r, other, m, alpha)
                mark = "*" if t is not None and t.better(alpha) else ""
            cells[LABELS[m]] = _fmt(m, configs[r].overall.get(m), mark)
        out[label(r)] = cells
    table = pd.DataFrame.from_dict(out, orient="index")
    table.index.name = "Method"
    return table


def paper_tables(configs: dict[str, ConfigEvaluation], alpha: float
                 ) -> tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame]:
    """Table 1 (baselines + ours; '*': ours significantly better than the second-best on that metric) and
    Table 2 (ablation; '*': significantly better than B), plus every test behind a mark."""
    tests: list[dict] = []

    def second_best(row: str, metric: str) -> str | None:
        if row != OURS:
            return None
        others = [c for c in BASELINES if c in configs and configs[c].overall.get(metric) is not None]
        return max(others, key=lambda c: configs[c].overall[metric]) if others else None

    t1 = _table(configs, (*BASELINES, OURS), TABLE1_METRICS, second_best, alpha,
                lambda r: "Ours (B+W+P)" if r == OURS else r, tests)
    t2 = _table(configs, ABLATION, TABLE2_METRICS, lambda r, m: "B" if r != "B" else None, alpha,
                lambda r: r, tests)
    if OURS in configs and PRIOR in configs:  # does the model beat the trivial baseline?
        for m in TABLE2_METRICS:
            _record(tests, configs, OURS, PRIOR, m, alpha)
    return t1, t2, pd.DataFrame(tests, columns=["config", "versus", "metric", "mean_diff", "t", "p_value", "n",
                                                "significant"])


# ---------------------------------------------------------------------------------------- localizer
def _top_lists(df: pd.DataFrame) -> tuple[list[list[str]], list[list[float]]]:
    conf = "top_confidences" if "top_confidences" in df.columns else "top_conf"
    if "top_ids" in df.columns and conf in df.columns:
        return [list(x) for x in df["top_ids"]], [list(map(float, x)) for x in df[conf]]
    raise EvaluationError("localizer predictions need top_ids and top_confidences / top_conf (lists, best first)")


def evaluate_localizer(df: pd.DataFrame, threshold: float, bins: int = 10) -> LocalizerEvaluation:
    """Top-1 / top-5 accuracy by body region and calibration of the top-1 confidence (reliability bins)."""
    ids, conf = _top_lists(df)
    truth = df["location_id"].astype(str).tolist()
    per = pd.DataFrame({
        "sample_id": df["sample_id"].to_numpy(), "location_id": truth,
        "region": [taxonomy.get(t).region.value for t in truth],
        "top1": [i[0] for i in ids], "top1_conf": [c[0] for c in conf],
        "top1_correct": [float(i[0] == t) for i, t in zip(ids, truth)],
        "top5_correct": [float(t in i[:5]) for i, t in zip(ids, truth)],
    })
    by_region = per.groupby("region").agg(n=("top1_correct", "size"), top1_accuracy=("top1_correct", "mean"),
                                          top5_accuracy=("top5_correct", "mean"),
                                          mean_confidence=("top1_conf", "mean"))
    # Equal-width bins, with the threshold as an extra edge so the diagram separates the two CGLP/DWS cases.
    edges = np.unique(np.r_[np.linspace(0, 1, bins + 1), threshold])
    which = np.clip(np.digitize(per["top1_conf"], edges[1:-1]), 0, len(edges) - 2)
    rel = []
    for b in range(len(edges) - 1):
        sel = per[which == b]
        rel.append({"bin_lo": edges[b], "bin_hi": edges[b + 1], "n": len(sel),
                    "mean_confidence": sel["top1_conf"].mean() if len(sel) else np.nan,
                    "accuracy": sel["top1_correct"].mean() if len(sel) else np.nan})
    rel = pd.DataFrame(rel)
    filled = rel[rel["n"] > 0]
    ece = float((filled["n"] * (filled["accuracy"] - filled["mean_confidence"]).abs()).sum() / len(per))
    hi = per["top1_conf"] >= threshold

    def side(sel):
        return {"fraction": float(sel.mean()),
                "top1_accuracy": float(per.loc[sel, "top1_correct"].mean()) if sel.any() else float("nan")}

    return LocalizerEvaluation(per, by_region, rel, ece, threshold, side(hi), side(~hi))


def position_only_accuracy(settings: Settings, loc: LocalizerEvaluation) -> dict[str, float] | None:
    """Top-1 / top-5 of the position-only baseline on the localizer's lesions, and the localizer's top-1 gain
    over it (percentage points / 100): what the image adds beyond where the lesion lies in the scan."""
    from tasks.evaluate.position import position_baseline_top

    per = loc.per_sample
    top = position_baseline_top(settings, per["sample_id"].tolist())
    if top is None:
        return None
    truth = per["location_id"].tolist()
    top1 = float(np.mean([bool(t) and t[0] == y for t, y in zip(top, truth)]))
    top5 = float(np.mean([y in t[:5] for t, y in zip(top, truth)]))
    return {"top1": top1, "top5": top5, "localizer_gain_top1": float(per["top1_correct"].mean()) - top1}


# ------------------------------------------------------------------------------------------------ run
def evaluate_run(settings: Settings, predictions: dict[str, pd.DataFrame],
                 localizer_predictions: pd.DataFrame | None = None, out_dir: Path | None = None,
                 patch_loader: Callable[[pd.DataFrame], np.ndarray] | None = None,
                 scorer: CaptionScorer | None = None) -> EvaluationResult:
    """Score every configuration, build the paper's tables and write the report to ``out_dir``.

    ``localizer_predictions`` defaults to the top-5 columns of B+W+P's predictions (or of any configuration
    that has them). ``patch_loader(rows) -> (n, 3, z, y, x)`` (CT HU, PET SUV, mask) supplies the example
    panels; by default the patch store's captioner patches for the rows' ``row`` column.
    ``out_dir`` None: ``settings.reports_dir``.
    """
    from tasks.evaluate.report import write_report

    if not predictions:
        raise EvaluationError("no predictions to evaluate")
    paired = paired_predictions(predictions)
    scorer = scorer or shared_scorer(settings.evaluation.spice_jar_dir)
    configs = {n: evaluate_config(n, df, settings, scorer) for n, df in paired.items()}
    overall = pd.DataFrame({n: c.overall for n, c in configs.items()}).T[list(METRICS)]
    overall.index.name = "config"
    t1, t2, tests = paper_tables(configs, settings.evaluation.significance_alpha)
    if localizer_predictions is None:
        for name in (OURS, *paired):
            if name in paired and {"top_ids", "top_confidences"} <= set(paired[name].columns):
                localizer_predictions = paired[name]
                break
    loc = None
    if localizer_predictions is not None:
        loc = evaluate_localizer(localizer_predictions.reset_index(drop=True), settings.dws_threshold,
                                 settings.evaluation.reliability_bins)
        loc.position_only = position_only_accuracy(settings, loc)
    result = EvaluationResult(configs, overall, t1, t2, tests, loc)
    out_dir = Path(out_dir) if out_dir is not None else settings.reports_dir
    write_report(settings, result, paired, out_dir, patch_loader)
    return result
