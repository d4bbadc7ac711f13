"""The evaluation report: HTML with PNG figures, and a Markdown summary, from an ``EvaluationResult``.

Sections (each an ``<h2>`` with a stable id, so tests and readers can find them): summary, overall metrics,
by vendor, by tracer, Table 1 (baselines), Table 2 (ablation), significance tests, localizer accuracy by
region, localizer reliability (is 0.95 a sensible CGLP/DWS threshold?), example panels like the paper's
Fig. 3, notes. Tables show BLEU / METEOR / ROUGE-L / SPICE / accuracies in percent and CIDEr raw, as the paper
does; '*' marks a paired t-test at ``EvalSettings.significance_alpha``.

Only pseudonymous sample ids, scanner vendor and tracer appear; patient ids are never written.
"""

from __future__ import annotations

import html
import itertools
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from data_contracts import taxonomy
from data_contracts.atomic import SHARED, atomic_open
from data_contracts.settings import Settings
from data_contracts.taxonomy import WINDOWS, WindowGroup
from tasks.evaluate.names import LABELS, OURS, POSITION_PRIOR, PRIOR

SECTIONS = {
    "summary": "Summary",
    "overall": "Overall metrics",
    "by-vendor": "By vendor",
    "by-tracer": "By tracer",
    "table1": "Table 1: comparison with baselines",
    "table2": "Table 2: ablation",
    "tests": "Significance tests",
    "localizer-regions": "Localizer accuracy by region",
    "reliability": "Localizer reliability",
    "examples": "Example panels",
    "notes": "Notes",
}
PANEL_CONFIGS = ("B+W+P", "B", "X-Transformer")  # generated captions shown in the example panels, if present


# --------------------------------------------------------------------------------------------- helpers
def _pct(df: pd.DataFrame) -> pd.DataFrame:
    """Metric columns as the paper prints them (percent with one decimal, CIDEr raw with three), with the
    paper's column names."""
    out = pd.DataFrame(index=df.index)
    for c in df.columns:
        if c == "n":
            out[c] = df[c].astype(int)
        elif c == "cider":
            out[c] = [f"{v:.3f}" if pd.notna(v) else "n/a" for v in df[c]]
        else:
            out[c] = [f"{100 * v:.1f}" if v is not None and pd.notna(v) else "n/a" for v in df[c]]
    return out.rename(columns=LABELS)


def _save(fig, path: Path) -> Path:
    try:
        with atomic_open(path, SHARED) as f:
            fig.savefig(f, dpi=110, bbox_inches="tight", format="png")
    finally:
        plt.close(fig)
    return path


def write_text(path: Path, text: str) -> Path:
    """``text`` written atomically, readable by everyone (a document people read)."""
    with atomic_open(path, SHARED) as f:
        f.write(text.encode("utf-8"))
    return path


# --------------------------------------------------------------------------------------------- figures
def group_bar_figure(result, group: str, metric: str, path: Path) -> Path:
    """``metric`` of every configuration per vendor (``group="vendor"``) or tracer."""
    tables = {n: (c.by_vendor if group == "vendor" else c.by_tracer) for n, c in result.configs.items()}
    groups = sorted(set().union(*[t.index for t in tables.values()]))
    fig, ax = plt.subplots(figsize=(1.5 + 1.3 * len(groups) * max(1, len(tables)) / 3, 3.2))
    width = 0.8 / len(tables)
    for i, (name, t) in enumerate(tables.items()):
        vals = [100 * t.loc[g, metric] if g in t.index else np.nan for g in groups]
        ax.bar(np.arange(len(groups)) + i * width - 0.4 + width / 2, vals, width, label=name)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylabel(f"{LABELS.get(metric, metric)} (%)")
    ax.set_title(f"{LABELS.get(metric, metric)} by {group}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def region_figure(loc, path: Path) -> Path:
    t = loc.by_region
    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    x = np.arange(len(t))
    ax.bar(x - 0.2, 100 * t["top1_accuracy"], 0.4, label="top-1")
    ax.bar(x + 0.2, 100 * t["top5_accuracy"], 0.4, label="top-5")
    ax.set_xticks(x, [f"{r}\n(n={n})" for r, n in zip(t.index, t["n"])], fontsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Localizer accuracy by region")
    ax.legend(fontsize=8)
    return _save(fig, path)


def reliability_figure(loc, path: Path) -> Path:
    """Reliability diagram of the top-1 confidence, the CGLP/DWS threshold marked."""
    r = loc.reliability
    fig, (ax, axh) = plt.subplots(2, 1, figsize=(4.8, 5.4), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    centres = (r["bin_lo"] + r["bin_hi"]) / 2
    width = (r["bin_hi"] - r["bin_lo"]).to_numpy()
    ax.bar(centres, r["accuracy"].fillna(0), width * 0.95, edgecolor="k", alpha=0.7, label="top-1 accuracy")
    ax.plot(r["mean_confidence"], r["accuracy"], "o", color="C1", ms=4, label="(mean confidence, accuracy)")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.axvline(loc.threshold, color="r", lw=1.5, label=f"threshold {loc.threshold:g}")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(f"Localizer reliability (ECE {loc.ece:.3f})")
    ax.legend(fontsize=7, loc="upper left")
    axh.bar(centres, r["n"], width * 0.95, color="gray")
    axh.axvline(loc.threshold, color="r", lw=1.5)
    axh.set_xlabel("top-1 confidence")
    axh.set_ylabel("lesions")
    axh.yaxis.get_major_locator().set_params(integer=True)
    axh.set_xlim(0, 1)
    return _save(fig, path)


def applied_window(row: pd.Series) -> tuple[float, float]:
    """(level, width) HU of the CT window the captioner saw; soft tissue when the table does not say."""
    if "window_level" in row and "window_width" in row and pd.notna(row["window_level"]):
        return float(row["window_level"]), float(row["window_width"])
    if "window" in row and isinstance(row["window"], str) and row["window"] in WindowGroup.__members__:
        w = WINDOWS[WindowGroup(row["window"])]
        return w.level, w.width
    w = WINDOWS[WindowGroup.soft_tissue]
    return w.level, w.width


def _wrap(text: str, width: int = 60) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(str(text), width)) or "(empty)"


def example_figure(rows: pd.DataFrame, patches: np.ndarray, captions: dict[str, list[str]], path: Path,
                   pet_suv_max: float) -> Path:
    """Fig.-3-like panels: per lesion the CT (applied window) and PET slice through the lesion with the mask
    outline, and beside them the reference, each configuration's caption and the top-5 locations.

    ``patches`` (n, 3, z, y, x): CT HU, PET SUV, mask; ``captions`` config -> generated captions (row order).
    """
    n = len(rows)
    fig, axes = plt.subplots(n, 3, figsize=(12, 3.2 * n), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 2.2]})
    for i, (_, row) in enumerate(rows.iterrows()):
        ct, pet, mask = (np.nan_to_num(patches[i, c].astype(np.float32)) for c in range(3))
        z = int(np.argmax(mask.sum(axis=(1, 2)))) if mask.any() else ct.shape[0] // 2
        level, width = applied_window(row)
        a_ct, a_pet, a_txt = axes[i]
        a_ct.imshow(ct[z], cmap="gray", vmin=level - width / 2, vmax=level + width / 2)
        a_ct.set_title(f"CT  L{level:g}/W{width:g}", fontsize=8)
        a_pet.imshow(pet[z], cmap="gray_r", vmin=0, vmax=min(pet_suv_max, max(float(pet.max()), 1.0)))
        a_pet.set_title("PET (SUV)", fontsize=8)
        for ax in (a_ct, a_pet):
            if mask[z].any():
                ax.contour(mask[z], levels=[0.5], colors="r", linewidths=1.2, linestyles="dotted")
            ax.axis("off")
        lines = [f"sample {row['sample_id']}  ({row['vendor']}, {row['tracer']})",
                 "Reference: " + _wrap(row["reference"])]
        for name, caps in captions.items():
            lines.append(f"{name}: " + _wrap(caps[i]))
        if "top_ids" in row and row["top_ids"] is not None:
            top = [f"{taxonomy.get(t).name} {c:.2f}" for t, c in zip(row["top_ids"], row["top_confidences"])]
            lines.append("Top-5: " + _wrap("; ".join(top[:5]), 70))
        a_txt.text(0, 1, "\n".join(lines), va="top", ha="left", fontsize=8, family="monospace", wrap=True)
        a_txt.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def _store_loader(settings: Settings) -> Callable[[pd.DataFrame], np.ndarray]:
    """Captioner patches from the patch store, by the rows' ``row`` column or else by their sample ids."""
    from tasks.patches.store import read_patch_samples, read_patches

    def load(rows: pd.DataFrame) -> np.ndarray:
        if "row" in rows.columns:
            idx = rows["row"].astype(int).to_numpy()
        else:
            table = read_patch_samples(settings, with_split=False).set_index("sample_id")["row"]
            missing = sorted(set(rows["sample_id"]) - set(table.index))
            if missing:
                raise LookupError(f"samples {missing[:3]} are not in the patch store")
            idx = table.loc[rows["sample_id"]].astype(int).to_numpy()
        return np.asarray(read_patches(settings, idx, "captioner"))

    return load


# ---------------------------------------------------------------------------------------------- report
def _html_table(df: pd.DataFrame | None) -> str:
    if df is None or len(df) == 0:
        return "<p>Not enough configurations for this table.</p>"
    return df.to_html(classes="metrics", border=0, escape=True)


def md_table(df: pd.DataFrame | None) -> str:
    """A Markdown table of ``df`` (index first; metric columns under the paper's names)."""
    if df is None or len(df) == 0:
        return "_not enough configurations for this table_"
    names = [n for n in df.index.names if n] or [""]
    cols = [" / ".join(names)] + [LABELS.get(str(c), str(c)) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for idx, row in df.iterrows():
        key = " / ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)
        lines.append("| " + " | ".join([key] + [str(v) for v in row]) + " |")
    return "\n".join(lines)


def _bleu4_test(tests: pd.DataFrame, a: str, b: str) -> pd.Series | None:
    """The paired BLEU-4 test of a vs b, when it was run."""
    sel = tests[(tests["config"] == a) & (tests["versus"] == b) & (tests["metric"] == "bleu4")]
    return sel.iloc[0] if len(sel) else None


def _p_text(test: pd.Series | None) -> str:
    """", paired t-test p = ..." of a test row (``_bleu4_test``), empty when the test was not run."""
    return f", paired t-test p = {test['p_value']:.3g}" if test is not None else ""


def _summary(result) -> list[str]:
    out = []
    ov = result.overall
    if "B+W+P" in ov.index and "B" in ov.index:
        p = _p_text(_bleu4_test(result.tests, "B+W+P", "B"))
        out.append(f"B+W+P vs B: BLEU-4 {100 * ov.loc['B+W+P', 'bleu4']:.1f} vs {100 * ov.loc['B', 'bleu4']:.1f}"
                   f"{p}; localization {100 * ov.loc['B+W+P', 'localization']:.1f} vs "
                   f"{100 * ov.loc['B', 'localization']:.1f}; CT finding {100 * ov.loc['B+W+P', 'ct_finding']:.1f}"
                   f" vs {100 * ov.loc['B', 'ct_finding']:.1f} (%).")
        order = [c for c in ("B", "B+W", "B+P", "B+W+P") if c in ov.index]
        ranked = sorted(order, key=lambda c: ov.loc[c, "bleu4"])
        chain = ranked[0]
        for prev, c in itertools.pairwise(ranked):
            chain += (" = " if np.isclose(ov.loc[prev, "bleu4"], ov.loc[c, "bleu4"]) else " < ") + c
        out.append("Ablation BLEU-4 order (low to high): " + chain
                   + (" (the paper's Table 2: B 75.7 < B+W 76.0 < B+P 76.5 < B+W+P 76.9)" if len(order) == 4 else ""))
    if OURS in ov.index and PRIOR in ov.index:
        test = _bleu4_test(result.tests, OURS, PRIOR)
        p = _p_text(test)
        significant = test is not None and bool(test["significant"])
        verdict = ("beats" if significant else "scores above, not significantly,"
                   ) if ov.loc[OURS, "bleu4"] > ov.loc[PRIOR, "bleu4"] else "does not beat"
        out.append(f"{OURS} {verdict} the trivial baseline ({PRIOR}: the most frequent training caption of the "
                   f"predicted location and tracer): BLEU-4 {100 * ov.loc[OURS, 'bleu4']:.1f} vs "
                   f"{100 * ov.loc[PRIOR, 'bleu4']:.1f}{p}.")
    if OURS in ov.index and POSITION_PRIOR in ov.index:
        out.append(f"{POSITION_PRIOR} (location from the scan position alone, no image; then the most frequent "
                   f"training caption of it and the tracer): BLEU-4 {100 * ov.loc[POSITION_PRIOR, 'bleu4']:.1f}, "
                   f"localization {100 * ov.loc[POSITION_PRIOR, 'localization']:.1f} % vs {OURS} "
                   f"{100 * ov.loc[OURS, 'localization']:.1f} %.")
    n = len(next(iter(result.configs.values())).per_sample)
    out.insert(0, f"{len(result.configs)} configurations on the same {n} lesions.")
    if result.localizer is not None:
        L = result.localizer
        def pct(v: float) -> str:
            return "n/a" if np.isnan(v) else f"{100 * v:.1f} %"

        out.append(f"Localizer: top-1 {pct(L.per_sample['top1_correct'].mean())}, top-5 "
                   f"{pct(L.per_sample['top5_correct'].mean())}; {pct(L.above_threshold['fraction'])} "
                   f"of lesions reach confidence {L.threshold:g} (top-1 accuracy there "
                   f"{pct(L.above_threshold['top1_accuracy'])}, below "
                   f"{pct(L.below_threshold['top1_accuracy'])}); ECE {L.ece:.3f}.")
        if L.position_only is not None:
            P = L.position_only
            out.append(f"Position-only baseline (k-NN on the scan position among training lesions, no image): "
                       f"top-1 {pct(P['top1'])}, top-5 {pct(P['top5'])}; the localizer's gain over it: "
                       f"{100 * P['localizer_gain_top1']:+.1f} points top-1.")
    return out


def write_report(settings: Settings, result, predictions: dict[str, pd.DataFrame], out_dir: Path,
                 patch_loader: Callable[[pd.DataFrame], np.ndarray] | None = None) -> None:
    """Write ``report.html``, ``summary.md``, the figures and the tables (CSV) into ``out_dir``; fills
    ``result.html_path``, ``result.markdown_path`` and ``result.figures``."""
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    figs: dict[str, Path] = {}
    notes: list[str] = sorted({n for c in result.configs.values() for n in c.notes})
    figs["bleu4_by_vendor"] = group_bar_figure(result, "vendor", "bleu4", out_dir / "figures" / "bleu4_by_vendor.png")
    figs["bleu4_by_tracer"] = group_bar_figure(result, "tracer", "bleu4", out_dir / "figures" / "bleu4_by_tracer.png")
    if result.localizer is not None:
        figs["localizer_regions"] = region_figure(result.localizer, out_dir / "figures" / "localizer_regions.png")
        figs["reliability"] = reliability_figure(result.localizer, out_dir / "figures" / "reliability.png")
    else:
        notes.append("No localizer predictions (top_ids / top_confidences): localizer sections are empty.")
    # Example panels: the first lesions of B+W+P (or any configuration), a spread over vendors.
    k = settings.evaluation.example_panels
    main = predictions.get("B+W+P", next(iter(predictions.values())))
    if k > 0:
        picks = main.groupby("vendor", group_keys=False).head(max(1, k // 3 + 1)).head(k)
        loader = patch_loader or _store_loader(settings)
        try:
            patches = loader(picks)
            caps = {n: predictions[n].loc[picks.index, "generated"].tolist() for n in PANEL_CONFIGS
                    if n in predictions}
            if not caps:
                caps = {n: df.loc[picks.index, "generated"].tolist() for n, df in list(predictions.items())[:3]}
            figs["examples"] = example_figure(picks, patches, caps, out_dir / "figures" / "examples.png",
                                              settings.pet_suv_max)
        except (OSError, LookupError, ValueError, RuntimeError) as exc:  # no patch store / rows: say why
            notes.append(f"Example panels left out: {type(exc).__name__}: {exc}")

    overall = _pct(result.overall)
    vendor = pd.concat({n: _pct(c.by_vendor) for n, c in result.configs.items()}, names=["config", "vendor"])
    tracer = pd.concat({n: _pct(c.by_tracer) for n, c in result.configs.items()}, names=["config", "tracer"])
    ci = pd.DataFrame({n: {m: f"[{100 * lo:.1f}, {100 * hi:.1f}]" if m != "cider" else f"[{lo:.3f}, {hi:.3f}]"
                           for m, (lo, hi) in c.ci.items()} for n, c in result.configs.items()}).T
    ci.index.name = "config"
    tests = result.tests.copy()
    for col in ("mean_diff", "t", "p_value"):
        tests[col] = tests[col].map(lambda v: f"{v:.3g}")
    region = result.localizer.by_region if result.localizer is not None else None
    rel = result.localizer.reliability if result.localizer is not None else None
    for name, df in (("overall", result.overall), ("tests", result.tests)):
        write_text(out_dir / f"{name}.csv", df.to_csv())
    summary = _summary(result)

    def img(key: str) -> str:
        return (f'<img src="figures/{figs[key].name}" alt="{key}">' if key in figs
                else "<p>Figure not available (see notes).</p>")

    body = {
        "summary": "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in summary) + "</ul>",
        "overall": "<p>Corpus scores (pycocoevalcap; percent, CIDEr raw).</p>" + _html_table(overall)
                   + "<p>Bootstrap confidence intervals of the per-lesion mean "
                   f"({settings.evaluation.bootstrap_samples} resamples, "
                   f"{100 * settings.evaluation.confidence_level:g} %):</p>" + _html_table(ci),
        "by-vendor": _html_table(vendor) + img("bleu4_by_vendor"),
        "by-tracer": _html_table(tracer) + img("bleu4_by_tracer"),
        "table1": "<p>* significant improvement of ours over the second-best method (paired t-test, "
                  f"p &lt; {settings.evaluation.significance_alpha:g}).</p>" + _html_table(result.table1),
        "table2": "<p>* significantly better than B (paired t-test, "
                  f"p &lt; {settings.evaluation.significance_alpha:g}).</p>" + _html_table(result.table2),
        "tests": _html_table(tests.set_index("config") if len(tests) else None),
        "localizer-regions": _html_table(region) + img("localizer_regions"),
        "reliability": (_html_table(rel) if rel is not None else "") + img("reliability"),
        "examples": img("examples"),
        "notes": "<ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in notes or ["none"]) + "</ul>",
    }
    page = ["<!doctype html><html><head><meta charset='utf-8'><title>petcap evaluation</title>",
            ("<style>body{font-family:sans-serif;max-width:1100px;margin:auto} table.metrics{border-collapse:"
             "collapse;font-size:13px} table.metrics td,table.metrics th{padding:2px 8px;border-bottom:1px solid"
             " #ddd;text-align:right} img{max-width:100%}</style></head><body>"),
            "<h1>petcap evaluation report</h1>"]
    for key, title in SECTIONS.items():
        page.append(f'<h2 id="{key}">{html.escape(title)}</h2>{body[key]}')
    page.append("</body></html>")
    result.html_path = write_text(out_dir / "report.html", "\n".join(page))

    md = ["# petcap evaluation summary", "", *[f"- {s}" for s in summary], "",
          "## Table 1: comparison with baselines", "", md_table(result.table1), "",
          "## Table 2: ablation", "", md_table(result.table2), "",
          "## Overall metrics (percent, CIDEr raw)", "", md_table(overall), "",
          "## By vendor", "", md_table(vendor), "", "## By tracer", "", md_table(tracer), ""]
    if region is not None:
        md += ["## Localizer accuracy by region", "", md_table(region.round(3)), ""]
    md += ["## Figures", "", *[f"![{k}](figures/{p.name})" for k, p in figs.items()], "",
           "## Notes", "", *[f"- {n}" for n in notes or ["none"]], ""]
    result.markdown_path = write_text(out_dir / "summary.md", "\n".join(md))
    result.figures = figs
