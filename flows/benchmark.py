"""``benchmark`` (``petcap benchmark``): a held-out synthetic cohort, every configuration trained, evaluated on its
test split — composed from the same tasks as the other flows (a Prefect flow like them, with their retries and
their runs in the UI).

synthesize -> ingest -> structure + link -> patches -> splits (``BENCHMARK_SPLITS``) -> the localizer once -> one
captioner per training config (B and X-Transformer share one) -> predict the test split -> Tables 1-2 next to
the trivial baseline on the same lesions -> MLflow. Recipe (rows, seed, size): ``tasks.evaluate.benchmark``.
"""

from __future__ import annotations

from prefect import flow, get_run_logger

from flows.common import flow_settings
from flows.task_wrappers import (
    evaluate_configs_task,
    extract_patches_task,
    ingest_task,
    link_task,
    log_training_run_task,
    predict_task,
    synthesize_cohort_task,
    train_captioner_task,
    train_localizer_task,
    update_splits_task,
)
from models.training.configs import preset_loop_overrides
from tasks.evaluate.benchmark import (
    BENCHMARK_PATIENTS,
    BENCHMARK_SEED,
    CONFIGS,
    BenchmarkResult,
    benchmark_settings,
)
from tasks.timing import Laps

TAGS = {"petcap.benchmark": "true"}


@flow(name="benchmark", log_prints=True)
def benchmark_flow(home: str | None = None, patients: int = BENCHMARK_PATIENTS, seed: int = BENCHMARK_SEED,
                   preset: str = "benchmark", overrides: dict | None = None, configs: dict[str, str] | None = None,
                   prepare: bool = True, track: bool = True, out_dir: str | None = None,
                   progress: bool = False) -> BenchmarkResult:
    """Train every configuration on a fresh synthetic cohort and evaluate them on its test split.

    ``prepare=False`` reuses the dataset already in the home. ``configs`` (row -> training config) defaults to
    the paper's seven rows; ``overrides`` (``{"captioner.loop.epochs": 5}``) go on the preset's loops.
    """
    settings = benchmark_settings(flow_settings(home))
    configs = configs or CONFIGS
    laps = Laps()
    if prepare:
        synthesize_cohort_task(settings.raw_dir, patients=patients, seed=seed, scale=settings.synth.scale,
                               settings=settings, progress=progress)
        ingest_task(settings, raw_dir=settings.raw_dir, store_url=settings.store_url, progress=progress)
        link_task(settings, None)
        extract_patches_task(settings, progress=progress)
        update_splits_task(settings)
        laps.lap("dataset")
    loc_over = preset_loop_overrides("localizer", preset, overrides)
    loc = train_localizer_task(settings, preset, loc_over, progress=progress)
    if track:
        log_training_run_task(settings, "train-localizer", "localizer", preset, loc_over, loc, tags=TAGS)
    laps.lap("localizer")
    cap_over = preset_loop_overrides("captioner", preset, overrides)
    checkpoints: dict[str, str] = {}
    for name in dict.fromkeys(configs.values()):  # B and X-Transformer share one model
        res = train_captioner_task(settings, name, cap_over, progress=progress)
        checkpoints[name] = res.checkpoint
        if track:
            log_training_run_task(settings, "train-captioner", "captioner", name, cap_over, res, tags=TAGS)
        laps.lap(f"captioner:{name}")
    by_config = {name: predict_task(settings, ckpt, split="test") for name, ckpt in checkpoints.items()}
    laps.lap("predict")
    evaluation, run_id = evaluate_configs_task(
        settings, {row: by_config[name] for row, name in configs.items()},
        out_dir=out_dir or str(settings.reports_dir / "benchmark"), track=track,
        config={"patients": patients, "seed": seed, "preset": preset, **(overrides or {})}, tags=TAGS)
    laps.lap("evaluate")
    n = len(next(iter(evaluation.configs.values())).per_sample)
    get_run_logger().info("benchmark: %d test lesions, seconds per stage %s", n, laps.seconds)
    return BenchmarkResult(evaluation, laps.seconds, checkpoints, n, run_id)
