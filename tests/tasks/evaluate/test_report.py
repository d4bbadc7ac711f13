"""evaluate_run on seven hand-made configurations: metrics by vendor / tracer, Tables 1-2, report files."""

from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from data_contracts.settings import EvalSettings, Settings
from tasks.evaluate.matching import location_correct
from tasks.evaluate.metrics import shared_scorer
from tasks.evaluate.report import SECTIONS
from tasks.evaluate.run import EvaluationError, evaluate_localizer, evaluate_run
from tests.tasks.evaluate.fakes import fake_patches


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.h2, self.imgs = [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h2":
            self.h2.append(a.get("id"))
        if tag == "img":
            self.imgs.append(a["src"])


@pytest.fixture(scope="module")
def run(tmp_path_factory, predictions):
    home = tmp_path_factory.mktemp("eval")
    settings = Settings(home=home, evaluation=EvalSettings(bootstrap_samples=200, example_panels=3))
    preds = {k: v.copy() for k, v in predictions.items()}
    preds["B+W+P"] = preds["B+W+P"].rename(columns={"top_confidences": "top_conf"})  # predict()'s name
    return settings, evaluate_run(settings, preds, out_dir=home / "report", patch_loader=fake_patches), preds


def test_report_has_every_section_and_every_figure(run):
    _, result, _ = run
    page = _Page()
    page.feed(result.html_path.read_text())
    assert page.h2 == list(SECTIONS)
    assert len(page.imgs) == 5
    for src in page.imgs:
        png = result.html_path.parent / src
        assert png.is_file() and png.stat().st_size > 2000 and png.read_bytes()[:4] == b"\x89PNG"
    assert set(result.figures) == {"bleu4_by_vendor", "bleu4_by_tracer", "localizer_regions", "reliability",
                                   "examples"}
    md = result.markdown_path.read_text()
    for heading in ("## Table 1", "## Table 2", "## By vendor", "## By tracer", "## Localizer accuracy by region"):
        assert heading in md
    assert "SPICE unavailable" in md and "| Ours (B+W+P) |" in md
    html = result.html_path.read_text()
    assert "P0000" not in html and "patient" not in html.lower()  # pseudonymous patient ids stay out too


def test_values_overall_by_group_and_tables(run, lesions):
    _, result, preds = run
    ours, base = result.configs["B+W+P"], result.configs["B"]
    # accuracies are the word-matching means over the same lesions
    exp = np.mean([location_correct(g, t) for g, t in zip(preds["B"]["generated"], preds["B"]["location_id"])])
    assert base.overall["localization"] == pytest.approx(exp)
    # a vendor's corpus BLEU-4 is pycocoevalcap's on that vendor's lesions alone
    ge = preds["B"][preds["B"]["vendor"] == "GE"]
    direct = shared_scorer().score(ge["reference"].tolist(), ge["generated"].tolist())
    assert base.by_vendor.loc["ge", "bleu4"] == pytest.approx(direct.corpus["bleu4"])
    assert base.by_vendor["n"].sum() == len(lesions) and set(base.by_tracer.index) == {"fdg", "psma"}
    flat = ours.flat_metrics()
    assert {"bleu4", "bleu4/siemens", "bleu4/ge", "bleu4/united_imaging", "bleu4/fdg", "localization/psma"} <= set(flat)
    assert "spice" not in flat  # unavailable is left out, never logged as 0
    # Table 1 / 2 layout and marks: ours is much better in the fakes, B+W is not significantly better than B
    assert list(result.table1.index) == ["LSTM", "Transformer", "X-Transformer", "Ours (B+W+P)"]
    assert list(result.table1.columns) == ["BLEU-3", "BLEU-4", "METEOR", "ROUGE-L", "CIDEr", "SPICE"]
    assert result.table1.loc["Ours (B+W+P)", "BLEU-4"].endswith("*")
    assert result.table1.loc["Ours (B+W+P)", "SPICE"] == "n/a"
    assert list(result.table2.columns) == ["BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "Localization", "CT finding"]
    assert result.table2.loc["B+W+P", "Localization"].endswith("*")
    assert not result.table2.loc["B", "BLEU-4"].endswith("*")
    assert result.table2.loc["B+W+P", "BLEU-4"] == f"{100 * ours.overall['bleu4']:.1f}*"
    t = result.tests.set_index(["config", "versus", "metric"])
    assert t.loc[("B+W+P", "B", "bleu4"), "p_value"] < 0.05
    assert t.loc[("B+W+P", "X-Transformer", "bleu4"), "significant"]
    lo, hi = ours.ci["bleu4"]
    assert lo <= ours.per_sample["bleu4"].mean() <= hi


def test_localizer_reliability_bins(run):
    _, result, _ = run
    loc = result.localizer
    assert loc.reliability["n"].sum() == len(loc.per_sample)
    assert 0.95 in set(loc.reliability["bin_lo"].round(6))  # the threshold is a bin edge
    hi = loc.per_sample["top1_conf"] >= 0.95
    assert loc.above_threshold["fraction"] == pytest.approx(hi.mean())
    assert loc.above_threshold["top1_accuracy"] == pytest.approx(loc.per_sample.loc[hi, "top1_correct"].mean())
    assert loc.by_region["n"].sum() == len(loc.per_sample)
    df = pd.DataFrame({"sample_id": ["a", "b"], "location_id": ["spleen", "rib_7_r"],
                       "top_ids": [["spleen"] * 5, ["rib_7_l", "rib_7_r", "spleen", "sacrum", "skull"]],
                       "top_confidences": [[0.99, 0, 0, 0, 0], [0.5, 0.4, 0.1, 0, 0]]})
    hand = evaluate_localizer(df, 0.95, bins=10)
    assert hand.per_sample["top1_correct"].tolist() == [1.0, 0.0]
    assert hand.per_sample["top5_correct"].tolist() == [1.0, 1.0]
    assert hand.ece == pytest.approx((abs(1 - 0.99) + abs(0 - 0.5)) / 2)


def test_bad_predictions_are_refused(predictions, tmp_path):
    settings = Settings(home=tmp_path)
    with pytest.raises(EvaluationError, match="lack columns"):
        evaluate_run(settings, {"B": predictions["B"].drop(columns=["generated"])})
    bad = predictions["B"].copy()
    bad.loc[0, "vendor"] = "Philips"
    with pytest.raises(EvaluationError, match="unknown vendor"):
        evaluate_run(settings, {"B": bad})


def test_ours_is_tested_against_the_trivial_baseline_when_it_is_there(predictions, lesions, tmp_path):
    """With a "Location prior" row, ours gets a paired test against it on the Table 2 metrics and the summary
    says whether it beats the trivial baseline, and by how much."""
    from tasks.evaluate.run import PRIOR
    from tests.tasks.evaluate.fakes import make_predictions

    settings = Settings(home=tmp_path, evaluation=EvalSettings(bootstrap_samples=100, example_panels=1))
    preds = {"B+W+P": predictions["B+W+P"], PRIOR: make_predictions(lesions, 0.5, 0.3, seed=11)}
    result = evaluate_run(settings, preds, out_dir=tmp_path / "report", patch_loader=fake_patches)
    t = result.tests[result.tests["versus"] == PRIOR].set_index("metric")
    assert set(t.index) == {"bleu1", "bleu2", "bleu3", "bleu4", "localization", "ct_finding"}
    ours, prior = result.overall.loc["B+W+P", "bleu4"], result.overall.loc[PRIOR, "bleu4"]
    assert ours > prior and t.loc["bleu4", "mean_diff"] > 0 and t.loc["bleu4", "significant"]
    assert t.loc["bleu4", "n"] == len(lesions)
    md = result.markdown_path.read_text()
    assert f"B+W+P beats the trivial baseline ({PRIOR}" in md
    assert f"BLEU-4 {100 * ours:.1f} vs {100 * prior:.1f}, paired t-test p = " in md
    swapped = evaluate_run(settings, {"B+W+P": preds[PRIOR], PRIOR: preds["B+W+P"]}, out_dir=tmp_path / "r2",
                           patch_loader=fake_patches)
    assert "B+W+P does not beat the trivial baseline" in swapped.markdown_path.read_text()
    # the prior equal to ours but for one lesion's caption: ours scores higher, the paired BLEU-4 difference is
    # one lesion out of n (t = 1, p ~ 0.32), so the summary must not say "beats"
    near = predictions["B+W+P"].copy()
    near.loc[near.index[0], "generated"] = "no finding"
    close = evaluate_run(settings, {"B+W+P": predictions["B+W+P"], PRIOR: near}, out_dir=tmp_path / "r3",
                         patch_loader=fake_patches)
    t = close.tests[(close.tests["versus"] == PRIOR) & (close.tests["metric"] == "bleu4")].iloc[0]
    ours, prior = close.overall.loc["B+W+P", "bleu4"], close.overall.loc[PRIOR, "bleu4"]
    assert ours > prior and not t["significant"] and t["p_value"] == pytest.approx(0.32, abs=0.01)
    md = close.markdown_path.read_text()
    assert (f"B+W+P scores above, not significantly, the trivial baseline ({PRIOR}: the most frequent training "
            f"caption of the predicted location and tracer): BLEU-4 {100 * ours:.1f} vs {100 * prior:.1f}, "
            f"paired t-test p = {t['p_value']:.3g}.") in md
