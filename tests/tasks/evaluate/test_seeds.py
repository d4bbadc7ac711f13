"""The benchmark over training seeds: saved per-seed scores, mean ± SD, paired tests per seed and pooled, resume."""

import json

import pandas as pd
import pytest

from data_contracts.errors import UsageError
from data_contracts.settings import Settings
from tasks.evaluate.benchmark import cohort_ready, mark_cohort_ready, seed_overrides, seed_settings
from tasks.evaluate.seeds import (
    SeedResultError,
    load_seed_scores,
    mean_sd_table,
    save_seed_scores,
    seed_dir,
    seed_done,
    seed_recipe,
    seed_summary,
    summarize_seeds,
)
from tests.tasks.evaluate.fakes import SEED_LESIONS as LESIONS
from tests.tasks.evaluate.fakes import seed_evaluation

SHIFTS = {"B": 0.0, "B+P": 0.2, "B+W+P": 0.2}
RECIPE = seed_recipe("benchmark", {"captioner.loop.epochs": 1}, {"B": "xtransformer", "B+P": "b_p"})


def test_saved_seeds_give_mean_sd_and_tests(tmp_path):
    for s in (0, 1, 2):
        assert not seed_done(tmp_path, s)
        save_seed_scores(seed_evaluation(s, SHIFTS), tmp_path, s, RECIPE)
        assert seed_done(tmp_path, s)
    long, overall, _ = load_seed_scores(tmp_path, [0, 1, 2])
    assert len(long) == 3 * 3 * LESIONS and set(long["config"]) == set(SHIFTS)
    summary = seed_summary(long, overall, pd.DataFrame(columns=["seed"]))
    assert summary.seeds == (0, 1, 2) and summary.lesions == LESIONS
    # mean over seeds of the corpus BLEU-4: the shared base (mean 0.4) + the shift; SD only the small noise
    assert summary.overall_mean.loc["B", "bleu4"] == pytest.approx(0.4, abs=0.005)
    assert summary.overall_mean.loc["B+P", "bleu4"] == pytest.approx(0.6, abs=0.005)
    assert 0 < summary.overall_sd.loc["B", "bleu4"] < 0.005
    per = summary.tests_by_seed
    bp = per[(per["config"] == "B+P") & (per["versus"] == "B") & (per["metric"] == "bleu4")]
    assert list(bp["seed"]) == [0, 1, 2] and (bp["p_value"] < 1e-10).all() and (bp["n"] == LESIONS).all()
    pooled = summary.tests_pooled.set_index(["config", "versus", "metric"])
    row = pooled.loc[("B+P", "B", "bleu4")]
    assert row["mean_diff"] == pytest.approx(0.2, abs=0.005) and row["p_value"] < 1e-10
    assert row["n"] == LESIONS and row["seeds_same_sign"] == 3 and row["seeds"] == 3
    same = pooled.loc[("B+W+P", "B+P", "bleu4")]  # equal shifts: no real difference
    assert abs(same["mean_diff"]) < 0.01 and same["p_value"] > 0.01
    assert ("B+W", "B", "bleu4") not in pooled.index  # a config that was not run is not tested
    cell = mean_sd_table(summary, ("bleu4",)).loc["B+P", "BLEU-4"]
    assert cell.startswith("60.") and " ± 0." in cell


def test_summary_report_and_a_missing_seed(tmp_path):
    for s in (0, 1):
        save_seed_scores(seed_evaluation(s, SHIFTS), tmp_path, s, RECIPE)
    summary = summarize_seeds(tmp_path, [0, 1], 0.05, {"patients": 9})
    assert summary.report == tmp_path / "summary.md" and summary.seeds == (0, 1)
    text = summary.report.read_text()
    assert "over 2 training seeds" in text and "| B+P vs B | BLEU-4 | +20." in text
    assert "| B+P | n/a | n/a | n/a | 60." in text  # mean ± SD of the corpus scores
    assert (tmp_path / "figures" / "bleu4_seeds.png").stat().st_size > 0
    assert set(pd.read_csv(tmp_path / "tests_pooled.csv")["versus"]) >= {"B", "B+P"}
    with pytest.raises(Exception, match="seed 2 has no saved scores"):
        load_seed_scores(tmp_path, [0, 1, 2])


def test_the_seeds_report_keeps_its_own_overall_csv(tmp_path):
    """The seed's evaluation report (written into the seed's folder first) keeps its overall.csv; the corpus
    scores the summary reads live in their own file, with the seed."""
    ev = seed_evaluation(3, SHIFTS)
    report_csv = seed_dir(tmp_path, 3) / "overall.csv"
    report_csv.parent.mkdir(parents=True)
    report_csv.write_text(ev.overall.to_csv())  # as write_report does
    before = report_csv.read_text()
    save_seed_scores(ev, tmp_path, 3, RECIPE)
    assert report_csv.read_text() == before and "seed" not in before.splitlines()[0]
    _, overall, _ = load_seed_scores(tmp_path, [3])
    assert list(overall["seed"]) == [3] * 3 and list(overall["config"]) == list(SHIFTS)
    assert overall.set_index("config")["bleu4"].to_dict() == pytest.approx(ev.overall["bleu4"].to_dict())


def test_a_home_from_before_the_corpus_file_still_loads(tmp_path):
    """Homes written before corpus_scores.csv held the corpus scores, with the seed, in overall.csv."""
    for s in (0, 1):
        save_seed_scores(seed_evaluation(s, SHIFTS), tmp_path, s, RECIPE)
    _, new, _ = load_seed_scores(tmp_path, [0, 1])
    for s in (0, 1):
        (seed_dir(tmp_path, s) / "corpus_scores.csv").rename(seed_dir(tmp_path, s) / "overall.csv")
    _, old, _ = load_seed_scores(tmp_path, [0, 1])
    pd.testing.assert_frame_equal(old, new)
    (seed_dir(tmp_path, 1) / "overall.csv").unlink()
    with pytest.raises(SeedResultError, match="seed 1's corpus scores cannot be read"):
        load_seed_scores(tmp_path, [0, 1])


def test_a_seed_counts_as_done_only_for_the_recipe_that_made_it(tmp_path):
    """Scores saved under one preset are not reused under another: the rerun is refused in one line; a seed
    saved before the recipe record is recomputed (not done)."""
    recipe = seed_recipe("benchmark", {"captioner.loop.seed": 0, "model.patch_size": (16, 16, 16)},
                         {"B": "xtransformer"})
    assert recipe["overrides"]["model.patch_size"] == [16, 16, 16]  # as the record reads back
    save_seed_scores(seed_evaluation(0, SHIFTS), tmp_path, 0, recipe)
    assert seed_done(tmp_path, 0, recipe) and seed_done(tmp_path, 0)
    demo = seed_recipe("demo", {"captioner.loop.seed": 0, "model.patch_size": (16, 16, 16)}, {"B": "xtransformer"})
    with pytest.raises(UsageError, match="seed 0's saved scores come from another recipe: preset 'benchmark', "
                                         "asked for 'demo'") as err:
        seed_done(tmp_path, 0, demo)
    assert "\n" not in str(err.value) and err.value.path == str(seed_dir(tmp_path, 0) / "recipe.json")
    with pytest.raises(UsageError, match="overrides"):
        seed_done(tmp_path, 0, seed_recipe("benchmark", {"captioner.loop.seed": 1}, {"B": "xtransformer"}))
    (seed_dir(tmp_path, 0) / "recipe.json").unlink()  # a home from before the record
    assert not seed_done(tmp_path, 0, recipe) and seed_done(tmp_path, 0)


def test_seed_settings_and_cohort_marker(tmp_path):
    settings = Settings(home=tmp_path)
    s1 = seed_settings(settings, 1)
    assert s1.checkpoints_dir == tmp_path / "checkpoints" / "seed_1" and s1.home == tmp_path
    assert seed_overrides(2, {"captioner.loop.epochs": 3}) == {
        "captioner.loop.epochs": 3, "localizer.loop.seed": 2, "captioner.loop.seed": 2}
    assert not cohort_ready(settings, 9, 5)
    mark_cohort_ready(settings, 9, 5)
    assert cohort_ready(settings, 9, 5)
    assert json.loads((tmp_path / "benchmark_cohort.json").read_text())["patients"] == 9
    with pytest.raises(UsageError, match="holds another cohort"):
        cohort_ready(settings, 10, 5)


def test_benchmark_pseudonyms_follow_the_cohort_seed(tmp_path):
    """The split follows keyed pseudonyms: the benchmark derives its key from the cohort seed (synthetic
    patients), so two fresh homes draw the same split; a configured site key is kept."""
    from pydantic import SecretStr

    from tasks.evaluate.benchmark import benchmark_settings

    a = benchmark_settings(Settings(home=tmp_path / "a"), 7).pseudonym_key.get_secret_value()
    b = benchmark_settings(Settings(home=tmp_path / "b"), 7).pseudonym_key.get_secret_value()
    assert a == b != benchmark_settings(Settings(home=tmp_path / "c"), 8).pseudonym_key.get_secret_value()
    assert not (tmp_path / "a" / "secrets").exists()  # no random home key drawn
    site = Settings(home=tmp_path, pseudonym_key=SecretStr("site-secret"))
    assert benchmark_settings(site, 7).pseudonym_key.get_secret_value() == "site-secret"
    assert benchmark_settings(site, 7).splits.ratios == (0.7, 0.1, 0.2)
