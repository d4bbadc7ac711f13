"""The benchmark end to end on a tiny cohort (slow: synthesis, ingest, patches and seven trainings)."""

import pytest

from models.training.configs import load_config, preset_loop_overrides
from tasks.evaluate.benchmark import CONFIGS
from tasks.evaluate.run import POSITION_PRIOR, PRIOR


def test_loop_overrides_take_the_preset_then_the_callers_values():
    preset = load_config("captioner", "benchmark").loop
    over = preset_loop_overrides("captioner", "benchmark", {"captioner.loop.epochs": 97, "localizer.loop.epochs": 9})
    assert over["loop.lr"] == preset.lr and over["loop.batch_size"] == preset.batch_size
    assert over["loop.epochs"] == 97  # the caller's captioner value, not the localizer's
    assert CONFIGS["B"] == CONFIGS["X-Transformer"] == "xtransformer"


@pytest.mark.slow
def test_benchmark_tiny_cohort(tmp_path, monkeypatch):
    from flows.benchmark import benchmark_flow

    monkeypatch.setenv("PETCAP_SYNTH__SCALE", "tiny")
    monkeypatch.setenv("PETCAP_EVALUATION__BOOTSTRAP_SAMPLES", "100")
    monkeypatch.setenv("PETCAP_EVALUATION__EXAMPLE_PANELS", "2")
    out = benchmark_flow(home=str(tmp_path), patients=15, preset="benchmark",
                        overrides={"localizer.loop.epochs": 1, "captioner.loop.epochs": 1,
                                   "localizer.loop.val_every": 1, "captioner.loop.val_every": 1})
    ev = out.evaluation
    # the seven rows + the trivial baseline + the position-only baseline
    assert set(ev.configs) == {*CONFIGS, PRIOR, POSITION_PRIOR} and out.test_samples > 0
    md = ev.markdown_path.read_text()
    assert "the trivial baseline (Location prior" in md and "Position prior (location from the scan position" in md
    P = ev.localizer.position_only
    assert 0 <= P["top1"] <= P["top5"] <= 1 and "Position-only baseline (k-NN on the scan position" in md
    assert P["localizer_gain_top1"] == pytest.approx(ev.localizer.per_sample["top1_correct"].mean() - P["top1"])
    assert ev.table1 is not None and ev.table2 is not None
    assert ev.html_path.is_file() and (ev.html_path.parent / "figures" / "examples.png").is_file()
    assert out.mlflow_run_id is not None


@pytest.mark.slow
def test_benchmark_seeds_resume(tmp_path, monkeypatch):
    """Two training seeds on one tiny cohort; a rerun reuses the cohort and both seeds (no training)."""
    from flows.benchmark import benchmark_seeds_flow
    from tasks.evaluate.seeds import seed_dir

    monkeypatch.setenv("PETCAP_SYNTH__SCALE", "tiny")
    monkeypatch.setenv("PETCAP_EVALUATION__BOOTSTRAP_SAMPLES", "100")
    monkeypatch.setenv("PETCAP_EVALUATION__EXAMPLE_PANELS", "0")
    over = {"localizer.loop.epochs": 1, "captioner.loop.epochs": 1, "localizer.loop.val_every": 1,
            "captioner.loop.val_every": 1}
    first = benchmark_seeds_flow(home=str(tmp_path), seeds=[0, 1], patients=15, overrides=over, track=False)
    assert first.seeds == (0, 1) and first.lesions > 0
    assert set(first.overall_mean.index) >= {*CONFIGS, PRIOR, POSITION_PRIOR}
    assert (tmp_path / "checkpoints" / "seed_1" / "captioner-b_w_p.pt").is_file()
    out = tmp_path / "reports" / "benchmark" / "seeds"
    stamp = (seed_dir(out, 0) / "scores.parquet").stat().st_mtime_ns
    again = benchmark_seeds_flow(home=str(tmp_path), seeds=[0, 1], patients=15, overrides=over, track=False)
    assert (seed_dir(out, 0) / "scores.parquet").stat().st_mtime_ns == stamp  # resumed: not rerun
    assert again.overall_mean.equals(first.overall_mean)
    assert "over 2 training seeds" in (out / "summary.md").read_text()
