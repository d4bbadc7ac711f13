"""``benchmark`` (``petcap benchmark``): a held-out synthetic cohort, every configuration trained, evaluated on its
test split — composed from the same tasks as the other flows (a Prefect flow like them, with their retries and
their runs in the UI). ``benchmark-seeds`` (``petcap benchmark --seeds 3``) does it once per training seed on the
same cohort and split, then reports mean ± SD and paired tests per seed and pooled (``tasks.evaluate.seeds``);
it resumes after a stop: a prepared cohort, a finished seed and a trained checkpoint are each kept.

synthesize -> ingest -> structure + link -> patches -> splits (``BENCHMARK_SPLITS``) -> the localizer once -> one
captioner per training config (B and X-Transformer share one) -> predict the test split -> Tables 1-2 next to
the trivial baseline on the same lesions -> MLflow. Recipe (rows, seed, size): ``tasks.evaluate.benchmark``.
"""

from __future__ import annotations

from prefect import flow

from data_contracts.settings import Settings
from flows.common import flow_settings, run_logger
from flows.task_wrappers import (
    evaluate_configs_task,
    extract_patches_task,
    ingest_task,
    link_task,
    log_training_run_task,
    mark_cohort_ready_task,
    predict_task,
    save_seed_scores_task,
    summarize_seeds_task,
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
    benchmark_home,
    benchmark_settings,
    cohort_ready,
    seed_overrides,
    seed_settings,
)
from tasks.evaluate.seeds import SeedSummary, seed_dir, seed_done, seed_recipe
from tasks.timing import Laps

TAGS = {"petcap.benchmark": "true"}


def _settings(home: str | None, seed: int) -> Settings:
    """The benchmark's settings in ``home``, by default ``benchmark_home`` of the environment's settings."""
    return benchmark_settings(flow_settings(home or str(benchmark_home(flow_settings()))), seed)


def _prepare(settings, patients: int, seed: int, progress: bool, laps: Laps) -> None:
    """synthesize -> ingest -> structure + link -> patches -> splits, into the benchmark's home, then marked
    there (``mark_cohort_ready``); skipped when the home holds this cohort already, refused when it holds another
    (``cohort_ready``)."""
    if cohort_ready(settings, patients, seed):
        run_logger().info("benchmark: cohort of %d patients (seed %d) already prepared, reused", patients, seed)
        return
    synthesize_cohort_task(settings.raw_dir, patients=patients, seed=seed, scale=settings.synth.scale,
                           settings=settings, progress=progress)
    ingest_task(settings, raw_dir=settings.raw_dir, store_url=settings.store_url, progress=progress)
    link_task(settings, None)
    extract_patches_task(settings, progress=progress)
    update_splits_task(settings)
    mark_cohort_ready_task(settings, patients, seed)
    laps.lap("dataset")
    run_logger().info("benchmark: cohort of %d patients prepared in %.0f s", patients, laps.seconds["dataset"])


def _train_and_evaluate(settings, preset: str, overrides: dict | None, configs: dict[str, str], track: bool,
                        out_dir: str, run_config: dict, progress: bool, laps: Laps):
    """The localizer once, one captioner per training config, predictions of the test split, the report."""
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
        settings, {row: by_config[name] for row, name in configs.items()}, out_dir=out_dir, track=track,
        config=run_config, tags=TAGS)
    laps.lap("evaluate")
    return evaluation, run_id, checkpoints


@flow(name="benchmark", log_prints=True)
def benchmark_flow(home: str | None = None, patients: int = BENCHMARK_PATIENTS, seed: int = BENCHMARK_SEED,
                   preset: str = "benchmark", overrides: dict | None = None, configs: dict[str, str] | None = None,
                   prepare: bool = True, track: bool = True, out_dir: str | None = None,
                   progress: bool = False) -> BenchmarkResult:
    """Train every configuration on a fresh synthetic cohort and evaluate them on its test split (``home``
    defaults to ``<PETCAP_HOME>/benchmark``, as ``petcap benchmark``).

    The cohort is prepared once per home (``cohort_ready``, shared with ``benchmark-seeds``); ``prepare=False``
    reuses the dataset already in the home. ``configs`` (row -> training config) defaults to the paper's seven
    rows; ``overrides`` (``{"captioner.loop.epochs": 5}``) go on the preset's loops.
    """
    settings = _settings(home, seed)
    configs = configs or CONFIGS
    laps = Laps()
    if prepare:
        _prepare(settings, patients, seed, progress, laps)
    else:
        cohort_ready(settings, patients, seed)  # a home marked for another cohort is refused all the same
    evaluation, run_id, checkpoints = _train_and_evaluate(
        settings, preset, overrides, configs, track, out_dir or str(settings.reports_dir / "benchmark"),
        {"patients": patients, "seed": seed, "preset": preset, **(overrides or {})}, progress, laps)
    n = len(next(iter(evaluation.configs.values())).per_sample)
    run_logger().info("benchmark: %d test lesions, seconds per stage %s", n, laps.seconds)
    return BenchmarkResult(evaluation, laps.seconds, checkpoints, n, run_id)


@flow(name="benchmark-seeds", log_prints=True)
def benchmark_seeds_flow(home: str | None = None, seeds: list[int] | None = None,
                         patients: int = BENCHMARK_PATIENTS, seed: int = BENCHMARK_SEED, preset: str = "benchmark",
                         overrides: dict | None = None, configs: dict[str, str] | None = None, track: bool = True,
                         progress: bool = False) -> SeedSummary:
    """The benchmark once per training seed (default 0, 1, 2) on one cohort and split, then mean ± SD and paired
    tests per seed and pooled, in ``<reports>/benchmark/seeds`` (``SeedSummary.report``); ``home`` defaults to
    ``<PETCAP_HOME>/benchmark`` (as ``petcap benchmark``), so the working set is never touched. Resumes after a
    stop: the prepared cohort (``cohort_ready``), every seed finished with this recipe (``seed_done``) and each
    trained checkpoint are reused."""
    settings = _settings(home, seed)
    configs = configs or CONFIGS
    seeds = list(seeds if seeds is not None else (0, 1, 2))
    out = settings.reports_dir / "benchmark" / "seeds"
    log = run_logger()
    _prepare(settings, patients, seed, progress, Laps())
    for i, s in enumerate(seeds, 1):
        recipe = seed_recipe(preset, seed_overrides(s, overrides), configs)
        if seed_done(out, s, recipe):
            log.info("benchmark: seed %d (%d of %d) already done, reused", s, i, len(seeds))
            continue
        log.info("benchmark: seed %d (%d of %d)", s, i, len(seeds))
        laps = Laps()  # this seed's stages
        evaluation, _, _ = _train_and_evaluate(
            seed_settings(settings, s), preset, seed_overrides(s, overrides), configs, track, str(seed_dir(out, s)),
            {"patients": patients, "seed": seed, "training_seed": s, "preset": preset, **(overrides or {})},
            progress, laps)
        save_seed_scores_task(evaluation, out, s, recipe)
        log.info("benchmark: seed %d done; its seconds per stage %s", s, laps.seconds)
    summary = summarize_seeds_task(out, seeds, settings.evaluation.significance_alpha,
                                   {"patients": patients, "cohort seed": seed, "preset": preset, **(overrides or {})})
    log.info("benchmark over %d seeds: %d test lesions; report %s", len(seeds), summary.lesions, summary.report)
    return summary
