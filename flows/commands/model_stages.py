"""The model-stage sub-commands: train, evaluate, promote (the flows a deployment runs: a flow run with a Prefect
server, their steps as plain calls without one — ``flows.commands.common.run_flow``), benchmark, demo."""

from __future__ import annotations

import argparse
import json

from flows import preflight
from flows.commands.common import run_flow
from flows.commands.common import settings_from_args as _settings


def cmd_train(args: argparse.Namespace) -> int:
    from models.training.configs import parse_overrides
    from tasks.splits import require_splits

    settings = _settings(args)
    overrides = parse_overrides(args.set or [])
    preflight.require_config(args.model, args.config, overrides)
    require_splits(settings, ("train", "val"))
    if args.model == "captioner":
        preflight.require_localizer(settings)
    from flows.training import train_captioner_flow, train_localizer_flow

    run = train_localizer_flow if args.model == "localizer" else train_captioner_flow
    out = run_flow(run, args, home=str(settings.home), config=args.config, overrides=overrides)
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from tasks.splits import require_splits

    settings = _settings(args)
    require_splits(settings, (args.split,))
    preflight.require_registry(settings)
    from tasks.tracking import champion_version, require_version

    if args.model_version:
        require_version(settings, args.model_version)
    else:
        champion_version(settings)
    from flows.evaluation import evaluate_captioner_flow

    out = run_flow(evaluate_captioner_flow, args, home=str(settings.home), model_version=args.model_version,
                   split=args.split)
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from tasks.splits import require_splits

    settings = _settings(args)
    require_splits(settings, ("val",))
    preflight.require_registry(settings)
    from tasks.tracking import latest_version, require_version

    if args.candidate:
        require_version(settings, args.candidate)
    else:
        latest_version(settings)
    from flows.evaluation import promote_captioner_flow

    out = run_flow(promote_captioner_flow, args, home=str(settings.home), candidate_version=args.candidate)
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from flows.benchmark import benchmark_flow, benchmark_seeds_flow
    from tasks.evaluate.benchmark import BENCHMARK_PATIENTS

    # without --home the flows work in their default, benchmark_home (<home>/benchmark): the benchmark's cohort,
    # models and report never mix with the working set's
    home = str(_settings(args).home) if getattr(args, "home", None) else None
    patients = args.patients or BENCHMARK_PATIENTS
    if args.seeds is not None:
        if args.seeds < 1:
            from data_contracts.errors import UsageError

            raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
        summary = benchmark_seeds_flow(home=home, seeds=list(range(args.seeds)), patients=patients,
                                       preset=args.preset, progress=True)
        from tasks.evaluate.seeds import mean_sd_table

        print(f"benchmark over seeds {list(summary.seeds)}: {summary.lesions} test lesions")
        print(mean_sd_table(summary, ("bleu4", "meteor", "rouge_l", "cider", "localization", "ct_finding"))
              .to_string())
        print(f"summary: {summary.report}")
        return 0
    result = benchmark_flow(home=home, patients=patients, preset=args.preset, progress=True)
    ev = result.evaluation
    print(f"benchmark: {result.test_samples} test lesions; seconds per stage {result.seconds}")
    for title, table in (("Table 1", ev.table1), ("Table 2", ev.table2)):
        if table is not None:
            print(f"{title}\n{table.to_string()}")
    print(f"report: {ev.html_path}\nsummary: {ev.markdown_path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    settings = _settings(args)
    return run_demo(settings, patients=args.patients, seed=args.seed)


