"""The benchmark over several training seeds: each seed's per-lesion scores kept on disk, then mean ± SD per
configuration and paired tests per seed and pooled over seeds.

A seed's run (``petcap benchmark --seeds 3``) trains every configuration with that seed on the same cohort and
split, predicts the test split and evaluates it (``tasks.evaluate.run``). What the summary needs of it is saved
as one long table, ``<out>/seed_<s>/scores.parquet`` (``save_seed_scores``): one row per (configuration, lesion)
with the per-lesion metrics, plus the seed's corpus scores (``corpus_scores.csv``, with a ``seed`` column; the
seed's evaluation report beside them keeps its own ``overall.csv``), and what produced them (``recipe.json``:
``seed_recipe``). A seed whose table exists is done: a rerun after a stop skips it, so the benchmark resumes
where it was cut off; a rerun asking for another recipe (another preset, other overrides or rows) is refused
rather than reusing scores it did not produce, and a seed saved before the record is recomputed (its checkpoints,
when they match, are reused by training's own resume).

Statistics (``seed_summary``), for each comparison of ``COMPARISONS`` and each metric of ``TESTED_METRICS``:
- per seed: scipy's paired t-test over the test lesions (``tasks.evaluate.stats.paired_ttest``);
- pooled: each lesion's difference averaged over the seeds, then a paired t-test over lesions (the lesion is
  the unit that repeats across seeds, so seeds are not counted as independent samples), and how many seeds
  have the difference's sign.
Corpus scores (BLEU by pycocoevalcap over the whole test split) are reported as mean ± SD over seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts.atomic import SHARED, atomic_open
from data_contracts.errors import PetcapError, UsageError
from tasks.evaluate.names import LABELS, OURS, POSITION_PRIOR, PRIOR
from tasks.evaluate.report import md_table, write_text
from tasks.evaluate.run import METRICS, EvaluationResult
from tasks.evaluate.stats import StatsError, paired_ttest

SCORES_FILE = "scores.parquet"
CORPUS_FILE = "corpus_scores.csv"
RECIPE_FILE = "recipe.json"
# Homes written before CORPUS_FILE kept the corpus scores (with the seed column) in the report's overall.csv.
LEGACY_CORPUS_FILE = "overall.csv"
LOCALIZER_FILE = "localizer.csv"
# (configuration, versus): the questions the paper's tables ask (B is the X-Transformer row, one model), and
# whether the model beats the trivial rows.
COMPARISONS: tuple[tuple[str, str], ...] = (
    ("B+W", "B"), ("B+P", "B"), (OURS, "B"), (OURS, "B+P"),
    (OURS, "LSTM"), (OURS, "Transformer"), (OURS, PRIOR), (OURS, POSITION_PRIOR),
)
TESTED_METRICS = ("bleu4", "meteor", "rouge_l", "localization", "ct_finding")


class SeedResultError(PetcapError):
    """A seed's saved scores that cannot be read or do not match the other seeds."""


def seed_dir(out_dir: Path | str, seed: int) -> Path:
    return Path(out_dir) / f"seed_{seed}"


def seed_recipe(preset: str, overrides: dict | None, configs: dict[str, str]) -> dict:
    """What makes a seed's scores besides the cohort (``cohort_ready`` checks that): the training preset, the
    overrides on its loops (the seed's loop seeds included) and the rows with their training configs; as JSON
    reads it back."""
    return json.loads(json.dumps({"preset": preset, "overrides": overrides or {}, "configs": configs}))


def seed_done(out_dir: Path | str, seed: int, recipe: dict | None = None) -> bool:
    """The seed's scores are saved (a rerun skips it). With ``recipe`` (``seed_recipe``), only scores that
    recipe produced count: a seed saved before the record is not done (recomputed), another recipe's scores
    are a usage error (they would be reported under this run's preset)."""
    d = seed_dir(out_dir, seed)
    if not (d / SCORES_FILE).is_file():
        return False
    if recipe is None:
        return True
    if not (d / RECIPE_FILE).is_file():
        return False
    held = json.loads((d / RECIPE_FILE).read_text())
    if held != recipe:
        diff = "; ".join(f"{k} {held.get(k)!r}, asked for {recipe.get(k)!r}"
                         for k in sorted(held.keys() | recipe.keys()) if held.get(k) != recipe.get(k))
        raise UsageError(f"seed {seed}'s saved scores come from another recipe: {diff}", path=str(d / RECIPE_FILE),
                         hint="give the benchmark another --home, or delete this seed's folder to recompute it")
    return True


def save_seed_scores(evaluation: EvaluationResult, out_dir: Path | str, seed: int, recipe: dict) -> Path:
    """The seed's per-lesion scores of every configuration (long table), its corpus scores, its localizer
    figures and the recipe that produced them (``seed_recipe``), written atomically; the scores table last,
    since its presence marks the seed as done."""
    d = seed_dir(out_dir, seed)
    write_text(d / RECIPE_FILE, json.dumps(recipe, sort_keys=True))
    overall = evaluation.overall.copy()
    overall.insert(0, "seed", seed)
    write_text(d / CORPUS_FILE, overall.to_csv())
    loc = evaluation.localizer
    if loc is not None:
        row = {"seed": seed, "top1": float(loc.per_sample["top1_correct"].mean()),
               "top5": float(loc.per_sample["top5_correct"].mean()), "ece": float(loc.ece),
               "above_threshold": float(loc.above_threshold.get("fraction", np.nan))}
        if loc.position_only:
            row.update({"position_top1": loc.position_only.get("top1"),
                        "position_top5": loc.position_only.get("top5")})
        write_text(d / LOCALIZER_FILE, pd.DataFrame([row]).to_csv(index=False))
    long = []
    for name, c in evaluation.configs.items():
        per = c.per_sample[[m for m in METRICS if m in c.per_sample.columns] + ["vendor", "tracer"]].copy()
        per.index = per.index.astype(str)
        per = per.rename_axis("sample_id").reset_index()
        per.insert(0, "config", name)
        long.append(per)
    table = pd.concat(long, ignore_index=True)
    table.insert(0, "seed", seed)
    d.mkdir(parents=True, exist_ok=True)
    with atomic_open(d / SCORES_FILE, SHARED) as f:
        f.write(table.to_parquet(index=False))
    return d / SCORES_FILE


@dataclass(frozen=True)
class SeedSummary:
    seeds: tuple[int, ...]
    overall_mean: pd.DataFrame  # config x METRICS: mean over seeds of the corpus scores
    overall_sd: pd.DataFrame  # config x METRICS: sample SD over seeds (n-1; NaN with one seed)
    by_seed: pd.DataFrame  # seed, config, METRICS: every seed's corpus scores
    tests_by_seed: pd.DataFrame  # seed, config, versus, metric, mean_diff, t, p_value, n
    tests_pooled: pd.DataFrame  # config, versus, metric, mean_diff, t, p_value, n, seeds_same_sign, seeds
    localizer: pd.DataFrame  # seed, top1, top5, ece, above_threshold, position_top1, position_top5
    lesions: int  # test lesions every seed scored
    report: Path | None = None  # summary.md, once written (summarize_seeds)


def load_seed_scores(out_dir: Path | str, seeds: list[int] | tuple[int, ...]
                     ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(per-lesion long table, corpus scores, localizer figures) of the given seeds, all of them done."""
    scores, overall, loc = [], [], []
    for s in seeds:
        d = seed_dir(out_dir, s)
        if not seed_done(out_dir, s):
            raise SeedResultError(f"seed {s} has no saved scores", path=d / SCORES_FILE,
                                  hint="run the benchmark for that seed first (a rerun resumes)")
        scores.append(pd.read_parquet(d / SCORES_FILE))
        overall.append(_corpus_scores(d, s))
        if (d / LOCALIZER_FILE).is_file():
            loc.append(pd.read_csv(d / LOCALIZER_FILE))
    return (pd.concat(scores, ignore_index=True), pd.concat(overall, ignore_index=True),
            pd.concat(loc, ignore_index=True) if loc else pd.DataFrame(columns=["seed"]))


def _corpus_scores(d: Path, seed: int) -> pd.DataFrame:
    """The seed's corpus scores (seed, config, metrics): its own file, or in a home from before it the report's
    overall.csv (then rewritten with a seed column; a plain report table gets the column here)."""
    path = d / CORPUS_FILE if (d / CORPUS_FILE).is_file() else d / LEGACY_CORPUS_FILE
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise SeedResultError(f"seed {seed}'s corpus scores cannot be read: {exc}", path=str(path),
                              hint="delete this seed's folder and rerun the benchmark (it recomputes that seed)"
                              ) from exc
    if "seed" not in table:
        table.insert(0, "seed", seed)
    return table


def seed_summary(long: pd.DataFrame, overall: pd.DataFrame, localizer: pd.DataFrame) -> SeedSummary:
    """Mean ± SD of the corpus scores over seeds, and the paired tests of ``COMPARISONS`` per seed and pooled."""
    seeds = tuple(sorted(int(s) for s in long["seed"].unique()))
    per_seed_lesions = long.groupby(["seed", "config"])["sample_id"].nunique()
    metrics = [m for m in METRICS if m in overall.columns]
    by_seed = overall[["seed", "config", *metrics]]
    grouped = by_seed.groupby("config", sort=False)[metrics]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    per_test, pooled = [], []
    for a, b in COMPARISONS:
        for m in TESTED_METRICS:
            if m not in long.columns:
                continue
            rows = long[long["config"].isin((a, b))]
            wide = rows.pivot_table(index=["seed", "sample_id"], columns="config", values=m, aggfunc="first")
            if a not in wide or b not in wide:
                continue
            diff = (wide[a] - wide[b]).dropna()  # index (seed, sample_id)
            for s in seeds:
                if s not in diff.index.get_level_values("seed"):
                    continue
                d = diff.xs(s, level="seed").to_numpy(float)
                try:
                    t = paired_ttest(d, np.zeros(len(d)))
                except StatsError:
                    continue
                per_test.append({"seed": s, "config": a, "versus": b, "metric": m, "mean_diff": t.mean_diff,
                                 "t": t.statistic, "p_value": t.p_value, "n": t.n})
            by_lesion = diff.groupby(level="sample_id").mean()
            try:
                t = paired_ttest(by_lesion.to_numpy(float), np.zeros(len(by_lesion)))
            except StatsError:
                continue
            seed_means = diff.groupby(level="seed").mean()
            same = int((np.sign(seed_means) == np.sign(t.mean_diff)).sum()) if t.mean_diff != 0 else 0
            pooled.append({"config": a, "versus": b, "metric": m, "mean_diff": t.mean_diff, "t": t.statistic,
                           "p_value": t.p_value, "n": t.n, "seeds_same_sign": same, "seeds": len(seed_means)})
    cols = ["seed", "config", "versus", "metric", "mean_diff", "t", "p_value", "n"]
    return SeedSummary(seeds, mean, sd, by_seed, pd.DataFrame(per_test, columns=cols),
                       pd.DataFrame(pooled, columns=[*cols[1:], "seeds_same_sign", "seeds"]), localizer,
                       int(per_seed_lesions.min()) if len(per_seed_lesions) else 0)


# ------------------------------------------------------------------------------------------------ report
def _mean_sd(metric: str, mean: float, sd: float) -> str:
    if pd.isna(mean):
        return "n/a"
    scale, fmt = (1.0, "{:.3f}") if metric == "cider" else (100.0, "{:.1f}")
    if pd.isna(sd):
        return fmt.format(scale * mean)
    return f"{fmt.format(scale * mean)} ± {fmt.format(scale * sd)}"


def mean_sd_table(summary: SeedSummary, metrics: tuple[str, ...]) -> pd.DataFrame:
    """config x metric strings "mean ± SD" (percent; CIDEr raw)."""
    out = pd.DataFrame({LABELS[m]: [_mean_sd(m, summary.overall_mean.loc[c, m], summary.overall_sd.loc[c, m])
                                    for c in summary.overall_mean.index]
                        for m in metrics if m in summary.overall_mean.columns},
                       index=summary.overall_mean.index)
    out.index.name = "config"
    return out


def _tests_md(summary: SeedSummary, alpha: float) -> str:
    lines = ["| comparison | metric | pooled mean diff | pooled p | seeds with that sign | p per seed |",
             "|---|---|---|---|---|---|"]
    for _, r in summary.tests_pooled.iterrows():
        per = summary.tests_by_seed[(summary.tests_by_seed["config"] == r["config"])
                                    & (summary.tests_by_seed["versus"] == r["versus"])
                                    & (summary.tests_by_seed["metric"] == r["metric"])]
        scale = 1.0 if r["metric"] == "cider" else 100.0
        mark = "*" if r["p_value"] < alpha else ""
        lines.append(f"| {r['config']} vs {r['versus']} | {LABELS[r['metric']]} | {scale * r['mean_diff']:+.1f} | "
                     f"{r['p_value']:.2g}{mark} | {r['seeds_same_sign']}/{r['seeds']} | "
                     + ", ".join(f"{p:.2g}" for p in per["p_value"]) + " |")
    return "\n".join(lines)


def _bleu4_figure(summary: SeedSummary, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    configs = list(summary.overall_mean.index)
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(configs)), 3.6))
    x = np.arange(len(configs))
    ax.bar(x, 100 * summary.overall_mean["bleu4"].to_numpy(), yerr=100 * summary.overall_sd["bleu4"].fillna(0),
           color="#9cb8d9", capsize=4, label="mean ± SD over seeds")
    for i, c in enumerate(configs):
        vals = summary.by_seed.loc[summary.by_seed["config"] == c, "bleu4"].to_numpy()
        ax.scatter(np.full(len(vals), i), 100 * vals, color="#1f3b63", s=12, zorder=3)
    ax.set_xticks(x, configs, rotation=30, ha="right")
    ax.set_ylabel("BLEU-4 (test split)")
    ax.set_title(f"BLEU-4 over {len(summary.seeds)} training seeds (dots: seeds)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_seed_report(summary: SeedSummary, out_dir: Path | str, alpha: float, context: dict | None = None
                      ) -> Path:
    """``<out>/summary.md`` (mean ± SD tables, tests, localizer), the CSVs behind it and a BLEU-4 figure."""
    out = Path(out_dir)
    mean_sd = mean_sd_table(summary, tuple(METRICS))
    write_text(out / "overall_by_seed.csv", summary.by_seed.to_csv(index=False))
    write_text(out / "overall_mean_sd.csv", mean_sd.to_csv())
    write_text(out / "tests_by_seed.csv", summary.tests_by_seed.to_csv(index=False))
    write_text(out / "tests_pooled.csv", summary.tests_pooled.to_csv(index=False))
    fig = _bleu4_figure(summary, out / "figures" / "bleu4_seeds.png")
    loc = summary.localizer
    lines = [f"# petcap benchmark over {len(summary.seeds)} training seeds", ""]
    if context:
        lines += ["- " + ", ".join(f"{k}: {v}" for k, v in context.items())]
    lines += [(f"- seeds {', '.join(map(str, summary.seeds))}; {summary.lesions} test lesions, the same for every "
               "seed and configuration (one cohort, one patient split; a seed changes initialisation, sampling "
               "and augmentation)."),
              f"- corpus scores (pycocoevalcap) as mean ± SD over seeds; tests: '*' p < {alpha:g}.", ""]
    if len(loc) and "top1" in loc:
        def ms(col: str) -> str:
            v = loc[col].astype(float)
            return f"{100 * v.mean():.1f} ± {100 * v.std(ddof=1):.1f} %" if len(v) > 1 else f"{100 * v.mean():.1f} %"
        lines += [f"- Localizer test top-1 {ms('top1')}, top-5 {ms('top5')}"
                  + (f"; position-only baseline top-1 {ms('position_top1')}, top-5 {ms('position_top5')}"
                     if "position_top1" in loc and loc["position_top1"].notna().all() else "") + ".", ""]
    lines += ["## Corpus scores, mean ± SD over seeds", "", md_table(mean_sd), "",
              "## Paired tests (per seed over lesions; pooled: per-lesion difference averaged over seeds)", "",
              _tests_md(summary, alpha), "", f"![BLEU-4 over seeds](figures/{fig.name})", ""]
    return write_text(out / "summary.md", "\n".join(lines))


def summarize_seeds(out_dir: Path | str, seeds: list[int] | tuple[int, ...], alpha: float,
                    context: dict | None = None) -> SeedSummary:
    """Read every seed's saved scores under ``out_dir``, test and tabulate them, write the report there
    (``SeedSummary.report``)."""
    long, overall, loc = load_seed_scores(out_dir, seeds)
    summary = seed_summary(long, overall, loc)
    return replace(summary, report=write_seed_report(summary, out_dir, alpha, context))


__all__ = [
    "COMPARISONS",
    "SeedSummary",
    "load_seed_scores",
    "mean_sd_table",
    "save_seed_scores",
    "seed_dir",
    "seed_done",
    "seed_recipe",
    "seed_summary",
    "summarize_seeds",
    "write_seed_report",
]
