"""The benchmark flows' composition without the heavy steps (those are faked here; the slow end-to-end runs are in
``tests/tasks/evaluate/test_benchmark.py``): the cohort marker shared by both flows, the default home, the
per-seed recipe and timing, the summary's path."""

from __future__ import annotations

import json
import logging
import re
import types

import pytest

import flows.benchmark as bench
from data_contracts.errors import UsageError
from data_contracts.settings import Settings
from flows.common import plain_calls
from tasks import timing
from tasks.evaluate.benchmark import benchmark_home, mark_cohort_ready
from tasks.evaluate.seeds import seed_dir
from tests.tasks.evaluate.fakes import seed_evaluation

PREPARE = ("synthesize_cohort_task", "ingest_task", "link_task", "extract_patches_task", "update_splits_task")
SHIFTS = {"B": 0.0, "B+P": 0.2}


@pytest.fixture
def prepared(monkeypatch) -> list[str]:
    """The preparation steps replaced by recorders: the names of those called, in order."""
    calls: list[str] = []
    for name in PREPARE:
        monkeypatch.setattr(bench, name, lambda *a, _n=name, **k: calls.append(_n))
    return calls


@pytest.fixture
def trained(monkeypatch) -> list[dict]:
    """``_train_and_evaluate`` replaced by a fake: one lap, a hand-made evaluation per training seed."""
    runs: list[dict] = []

    def fake(settings, preset, overrides, configs, track, out_dir, run_config, progress, laps):
        laps.lap("captioner:b_p")
        runs.append({"preset": preset, "overrides": overrides, "out_dir": out_dir})
        return seed_evaluation(run_config["training_seed"], SHIFTS), None, {}

    monkeypatch.setattr(bench, "_train_and_evaluate", fake)
    return runs


def test_prepare_marks_the_cohort_then_reuses_it_and_refuses_another(tmp_path, prepared):
    settings = Settings(home=tmp_path)
    with plain_calls():
        bench._prepare(settings, 9, 5, False, timing.Laps())
        assert prepared == list(PREPARE)
        assert json.loads((tmp_path / "benchmark_cohort.json").read_text())["patients"] == 9
        bench._prepare(settings, 9, 5, False, timing.Laps())
        assert prepared == list(PREPARE)  # the same cohort: nothing prepared again
        with pytest.raises(UsageError, match="holds another cohort"):
            bench._prepare(settings, 10, 5, False, timing.Laps())


def test_the_single_run_benchmark_checks_the_cohort_marker_too(tmp_path, prepared, monkeypatch):
    """``benchmark`` prepares into the same default home as ``benchmark-seeds``: a home holding another cohort is
    refused before anything is synthesized, with or without ``prepare``."""
    monkeypatch.setattr(bench, "_train_and_evaluate", lambda *a, **k: pytest.fail("trained on a mixed home"))
    mark_cohort_ready(Settings(home=tmp_path), 9, 5)
    with plain_calls():
        for prepare in (True, False):
            with pytest.raises(UsageError, match="holds another cohort"):
                bench.benchmark_flow.fn(home=str(tmp_path), patients=12, seed=5, prepare=prepare, track=False)
    assert prepared == []


def test_the_default_home_is_benchmark_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PETCAP_HOME", str(tmp_path))
    assert bench._settings(None, 5).home == benchmark_home(Settings()) == tmp_path / "benchmark"
    assert bench._settings(str(tmp_path / "elsewhere"), 5).home == tmp_path / "elsewhere"


def test_seeds_flow_records_each_seeds_recipe_and_logs_its_own_laps(tmp_path, prepared, trained, monkeypatch,
                                                                   caplog):
    ticks = iter(range(1000))
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=lambda: float(next(ticks))))
    caplog.set_level(logging.INFO, logger="flows")
    with plain_calls():
        summary = bench.benchmark_seeds_flow.fn(home=str(tmp_path), seeds=[0, 1], patients=9, seed=5,
                                                preset="benchmark", configs={"B": "xtransformer", "B+P": "b_p"},
                                                track=False)
    out = tmp_path / "reports" / "benchmark" / "seeds"
    assert summary.seeds == (0, 1) and summary.report == out / "summary.md" and summary.report.is_file()
    assert prepared == list(PREPARE) and [r["overrides"]["captioner.loop.seed"] for r in trained] == [0, 1]
    recipe = json.loads((seed_dir(out, 1) / "recipe.json").read_text())
    assert recipe == {"preset": "benchmark", "configs": {"B": "xtransformer", "B+P": "b_p"},
                      "overrides": {"localizer.loop.seed": 1, "captioner.loop.seed": 1}}
    # each seed's own stages, timed from that seed's start (the clock ticks 1 s per reading)
    laps = re.findall(r"seed (\d) done; its seconds per stage (\{.*\})", caplog.text)
    assert laps == [("0", "{'captioner:b_p': 1.0}"), ("1", "{'captioner:b_p': 1.0}")]
    assert "cohort of 9 patients prepared in 1 s" in caplog.text

    with plain_calls():  # the same recipe: both seeds reused, nothing trained or prepared again
        again = bench.benchmark_seeds_flow.fn(home=str(tmp_path), seeds=[0, 1], patients=9, seed=5,
                                              preset="benchmark", configs={"B": "xtransformer", "B+P": "b_p"},
                                              track=False)
        assert len(trained) == 2 and prepared == list(PREPARE)
        assert again.overall_mean.equals(summary.overall_mean)
        with pytest.raises(UsageError, match="seed 0's saved scores come from another recipe: preset "
                                             "'benchmark', asked for 'demo'"):
            bench.benchmark_seeds_flow.fn(home=str(tmp_path), seeds=[0, 1], patients=9, seed=5, preset="demo",
                                          configs={"B": "xtransformer", "B+P": "b_p"}, track=False)
    assert len(trained) == 2
