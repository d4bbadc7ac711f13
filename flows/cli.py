"""`petcap`: the command line. Each sub-command parses arguments, builds the settings and calls a stage.

Stages: synth, realism (the cohort's realism figures), ingest, structure, structure-eval, link, extract-patches, split, refresh (ingest → link →
patches → splits as the dataset-refresh flow), train localizer|captioner, evaluate, promote, benchmark,
caption, demo. Training, evaluation and promotion run as the same Prefect flows a deployment runs (ephemeral
API unless PREFECT_API_URL points at a server); ``caption`` runs the caption-study flow when a server is
configured and its two steps as plain calls otherwise.
Imports are local to each command so `petcap --help` stays fast, and each command runs its up-front checks
(``flows.preflight``) before the heavy imports, so a mistake no retry can fix is answered in seconds.

Errors: every error is one line on stderr — what is wrong, the file at fault, what to do — and the exit code
says whose move it is: 2 for a usage or prerequisite mistake (``UsageError``, ``PrerequisiteError``, an
argument argparse refuses, a setting that does not parse), 1 for a failure. ``--debug`` (anywhere on the line)
shows the traceback instead; without it, log lines carry no tracebacks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from data_contracts.errors import PetcapError
from data_contracts.settings import Settings, get_settings
from flows import preflight


def _settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, with paths given on the command line taking precedence."""
    overrides = {
        name: value
        for name, value in (("home", getattr(args, "home", None)), ("raw_dir", getattr(args, "raw", None)),
                            ("store_url", getattr(args, "store", None)))
        if value
    }
    return Settings(**overrides) if overrides else get_settings()


def cmd_synth(args: argparse.Namespace) -> int:
    from tasks.synth.cohort import synthesize_cohort

    settings = _settings(args)
    out = Path(args.out) if args.out else settings.raw_dir
    preflight.require_writable(out, "drop folder")
    summary = synthesize_cohort(out, patients=args.patients, seed=args.seed, scale=args.scale, settings=settings)
    print(summary)
    return 0


def cmd_realism(args: argparse.Namespace) -> int:
    from tasks.realism.table import format_table, realism_table

    figures = realism_table(_settings(args))
    print(format_table(figures))
    return 0 if all(f.status != "fail" for f in figures) else 1


def cmd_ingest(args: argparse.Namespace) -> int:
    settings = _settings(args)
    preflight.require_manifest(settings.raw_dir)
    preflight.require_writable(settings.store_url, "volume store (--store)")
    preflight.require_writable(settings.tables_dir, "tables folder")
    from tasks.deliveries import register_delivery
    from tasks.ingest import ingest_all

    print(register_delivery(settings, settings.raw_dir, allow_removals=args.allow_removals or None))
    summary = ingest_all(settings, raw_dir=settings.raw_dir, store_url=settings.store_url)
    print(summary)
    return 0 if summary.ingested + summary.skipped > 0 or summary.quarantined == 0 else 1


def cmd_structure(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.file not in (None, "-"):
        preflight.require_file(args.file, "report file", "give a report text file, or - for standard input")
    from data_contracts.findings import Tracer
    from tasks.structure.backend import structure_text

    from tasks.ingest.errors import IngestError
    from tasks.ingest.report_text import decode_report

    data = sys.stdin.buffer.read() if args.file in (None, "-") else Path(args.file).read_bytes()
    try:
        text = decode_report(data, args.file or "-")  # UTF-8/BOMs/UTF-16/Latin-1, as the pipeline reads reports
    except IngestError:
        # Empty, binary or huge: still a text to this command (zero findings if need be), never an error.
        # Undecodable bytes become U+FFFD, NULs blanks (a PDF dump, a wrong encoding).
        text = data.decode("utf-8", errors="replace").replace("\x00", " ")
    tracer = Tracer(args.tracer) if args.tracer else None
    report = structure_text(text, settings, backend=args.backend, tracer=tracer)
    print(report.model_dump_json(indent=2))
    return 0


def cmd_structure_eval(args: argparse.Namespace) -> int:
    from tasks.structure.backend import evaluate_backend

    settings = _settings(args)
    scores = evaluate_backend(settings, backend=args.backend, raw_dir=settings.raw_dir)
    print(scores)
    return 0


def cmd_link(args: argparse.Namespace) -> int:
    settings = _settings(args)
    preflight.require_table(settings, "studies", "run `petcap ingest` or `petcap refresh` first")
    from tasks.link import link_dataset

    summary = link_dataset(settings, backend=args.backend, allow_removals=args.allow_removals or None)
    print(json.dumps(dataclasses.asdict(summary), indent=2, default=str))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    settings = _settings(args)
    return run_demo(settings, patients=args.patients, seed=args.seed)


def cmd_refresh(args: argparse.Namespace) -> int:
    settings = _settings(args)
    preflight.require_writable(settings.home, "home (--home, PETCAP_HOME)")
    from tasks.deliveries import find_drops

    find_drops(settings.raw_dir)  # a delivery folder, or a folder of them
    from flows.refresh import dataset_refresh

    out = dataset_refresh(home=str(settings.home), raw_dir=str(settings.raw_dir), backend=args.backend,
                          progress=True, allow_removals=args.allow_removals or None)
    print(json.dumps(out, indent=2))
    return 0


def prefect_server_configured() -> bool:
    """Whether a Prefect API is configured (``PREFECT_API_URL`` in the environment or the active profile)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def cmd_caption(args: argparse.Namespace) -> int:
    """One study. With a Prefect server configured, as the ``caption-study`` flow (a run in the UI); without
    one, the flow's two steps as plain calls (no ephemeral server: start-up cost ~15 s per call)."""
    if (args.lesion is None) != (args.location is None):
        from data_contracts.errors import UsageError

        raise UsageError("--lesion and --location go together", hint="e.g. --lesion 2 --location vertebra_t8")
    settings = _settings(args)
    preflight.require_dir(args.study_dir, "study folder", "give a folder with ct/ or ct.nii.gz, pet/ or pet.nii.gz "
                                                          "and lesions.nii.gz")
    if not (args.localizer and args.captioner):
        preflight.require_registry(settings)
    kwargs = {"model_version": args.model_version, "localizer_checkpoint": args.localizer,
              "captioner_checkpoint": args.captioner}
    if args.flow_server or (not args.no_flow_server and prefect_server_configured()):
        from flows.caption import caption_study_flow

        out = caption_study_flow(study_dir=args.study_dir, out_dir=args.out, home=str(settings.home),
                                 vendor=args.vendor, tracer=args.tracer, push=args.push,
                                 correct_lesion=args.lesion, correct_location=args.location,
                                 corrected_by=args.by, **kwargs)
    else:
        from flows.caption import caption_summary
        from serving.hospital_loop import correct_lesion_files, export_and_push, wants_dicom
        from serving.models_cache import resolve_models
        from serving.study import caption_study_files, default_out_dir

        dicom = wants_dicom(args.study_dir, args.push)
        found = resolve_models(settings, kwargs["model_version"], args.localizer, args.captioner)
        if args.lesion is not None:
            fix = correct_lesion_files(args.study_dir, args.out or default_out_dir(settings, args.study_dir), settings,
                                       found["localizer"], found["captioner"], args.lesion, args.location,
                                       args.by or "unknown", found["version"], args.push)
            out = {"correction": dataclasses.asdict(fix)}
        else:
            out = caption_summary(caption_study_files(args.study_dir, args.out, settings, found["localizer"],
                                                      found["captioner"], args.vendor, args.tracer, found["version"]))
            if dicom:
                out["dicom"] = export_and_push(args.study_dir, Path(out["json"]).parent, settings, found["version"],
                                               args.push)
    if "correction" in out:
        fix = out["correction"]
        print(f"lesion {fix['instance']}: {fix['previous_location_id']} -> {fix['location_id']}: {fix['caption']}")
        print(f"corrected SR: {fix['sr']}" + (" (stored on the PACS)" if fix["pushed"] else ""))
        return 0
    answer = json.loads(Path(out["json"]).read_text())
    for lesion in answer["lesions"]:
        top = lesion["top5"][0]
        print(f"lesion {lesion['instance']}: {lesion['caption']}  [top-1 {top['location']} {top['confidence']:.2f}]")
    if answer["status"] != "captioned":
        print(f"{answer['status']} in this study")
    print(f"{out['lesions']} lesions in {out['seconds']:.1f} s\ncaptions: {out['json']}\nreport:   {out['report']}")
    if out.get("dicom"):
        d = out["dicom"]
        print(f"DICOM SR: {d['sr']}" + (f"\nDICOM SEG: {d['seg']}" if d["seg"] else "")
              + (f"\nstored on the PACS: {len(d['pushed'])} instances" if d["pushed"] else ""))
    return 0


def cmd_extract_patches(args: argparse.Namespace) -> int:
    settings = _settings(args)
    preflight.require_table(settings, "caption_samples", "run `petcap link` or `petcap refresh` first")
    from tasks.patches.extract import extract_patches

    print(extract_patches(settings, allow_removals=args.allow_removals or None))
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    settings = _settings(args)
    preflight.require_table(settings, "studies", "run `petcap ingest` or `petcap refresh` first")
    from tasks.splits import update_splits

    print(update_splits(settings))
    return 0


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
    out = run(home=str(settings.home), config=args.config, overrides=overrides)
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

    out = evaluate_captioner_flow(home=str(settings.home), model_version=args.model_version, split=args.split)
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

    out = promote_captioner_flow(home=str(settings.home), candidate_version=args.candidate)
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    settings = _settings(args)
    preflight.require_table(settings, "deliveries", "studies are registered by `petcap refresh` or `petcap ingest`")
    from tasks.deliveries import withdraw

    ids = withdraw(settings, args.study_keys, args.reason)
    print(f"withdrawn: {', '.join(ids)}; the next refresh removes their samples (tombstones: {args.reason!r})")
    return 0


def cmd_link_eval(args: argparse.Namespace) -> int:
    from tasks.evaluate.linking import evaluate_links

    print(evaluate_links(_settings(args)))
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from flows.benchmark import benchmark_flow, benchmark_seeds_flow
    from tasks.evaluate.benchmark import BENCHMARK_PATIENTS

    settings = _settings(args)
    if not args.home:  # the benchmark's cohort, models and report never mix with the working set's
        settings = Settings(home=settings.home / "benchmark")
    patients = args.patients or BENCHMARK_PATIENTS
    if args.seeds is not None:
        if args.seeds < 1:
            from data_contracts.errors import UsageError

            raise UsageError(f"--seeds must be at least 1, got {args.seeds}")
        summary = benchmark_seeds_flow(home=str(settings.home), seeds=list(range(args.seeds)), patients=patients,
                                       preset=args.preset, progress=True)
        from tasks.evaluate.seeds import mean_sd_table

        print(f"benchmark over seeds {list(summary.seeds)}: {summary.lesions} test lesions")
        print(mean_sd_table(summary, ("bleu4", "meteor", "rouge_l", "cider", "localization", "ct_finding"))
              .to_string())
        print(f"summary: {settings.reports_dir / 'benchmark' / 'seeds' / 'summary.md'}")
        return 0
    result = benchmark_flow(home=str(settings.home), patients=patients, preset=args.preset, progress=True)
    ev = result.evaluation
    print(f"benchmark: {result.test_samples} test lesions; seconds per stage {result.seconds}")
    for title, table in (("Table 1", ev.table1), ("Table 2", ev.table2)):
        if table is not None:
            print(f"{title}\n{table.to_string()}")
    print(f"report: {ev.html_path}\nsummary: {ev.markdown_path}")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from datetime import date

    from tasks.pacs.pull import pull_studies

    settings = _settings(args)
    if args.raw:
        settings = settings.model_copy(update={"raw_dir": Path(args.raw)})
    since = date.fromisoformat(args.since) if args.since else None
    until = date.fromisoformat(args.until) if args.until else None
    summary = pull_studies(settings, since, until, args.study or None)
    print(summary.line())
    for key, reason in sorted(summary.quarantined.items()):
        print(f"  quarantined {key}: {reason}")
    print(f"drop folder: {settings.raw_dir}")
    return 1 if summary.quarantined and not summary.pulled and not summary.skipped else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="petcap", description=__doc__.splitlines()[0])
    p.add_argument("--home", help="working folder (default: $PETCAP_HOME or ./var; made absolute at start-up)")
    p.add_argument("--debug", action="store_true", help="show the traceback of an error (anywhere on the line)")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("synth", help="write a synthetic whole-body PET/CT cohort in raw hospital formats")
    s.add_argument("--patients", type=int, default=get_settings().synth.patients)
    s.add_argument("--seed", type=int, default=get_settings().synth.seed)
    s.add_argument("--out", help="raw drop folder to write (default: settings.raw_dir)")
    s.add_argument("--scale", choices=["tiny", "demo", "full"], default=get_settings().synth.scale)
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("realism", help="issue-14 realism figures of a raw drop + its ingested store, one table")
    s.add_argument("--raw", help="raw drop folder (default: settings.raw_dir)")
    s.add_argument("--store", help="Zarr store root (default: settings.store_url)")
    s.set_defaults(func=cmd_realism)

    s = sub.add_parser("pull", help="new PET/CT studies from the PACS (DICOMweb) into the raw drop folder")
    s.add_argument("--since", help="first study date, YYYY-MM-DD")
    s.add_argument("--until", help="last study date, YYYY-MM-DD (default: today)")
    s.add_argument("--study", action="append", metavar="STUDY_UID", help="pull this Study Instance UID (repeatable)")
    s.add_argument("--raw", help="raw drop folder to pull into (default: settings.raw_dir)")
    s.set_defaults(func=cmd_pull)

    s = sub.add_parser("ingest", help="DICOM/NIfTI raw drop -> Zarr volume store + studies/lesions tables")
    s.add_argument("--raw", help="raw drop folder (default: settings.raw_dir)")
    s.add_argument("--store", help="Zarr store root: path or fsspec URL (default: settings.store_url)")
    s.add_argument("--allow-removals", action="store_true", help=ALLOW_REMOVALS)
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("structure", help="print the StructuredReport JSON of one report text")
    s.add_argument("file", nargs="?", help="report text file, or - for standard input")
    s.add_argument("--backend", choices=["rules", "openai"], default=None)
    s.add_argument("--tracer", choices=["FDG", "PSMA"], default=None,
                   help="the study's tracer; default: the tracer the report names, else none")
    s.set_defaults(func=cmd_structure)

    s = sub.add_parser("structure-eval", help="score a structuring backend on the synthetic ground truth")
    s.add_argument("--raw", help="raw drop folder with truth/ (default: settings.raw_dir)")
    s.add_argument("--backend", choices=["rules", "openai"], default=None)
    s.set_defaults(func=cmd_structure_eval)

    s = sub.add_parser("link", help="structure reports and link findings to lesion masks -> caption samples")
    s.add_argument("--backend", choices=["rules", "openai"], default=None)
    s.add_argument("--allow-removals", action="store_true", help=ALLOW_REMOVALS)
    s.set_defaults(func=cmd_link)

    s = sub.add_parser("link-eval", help="pair precision / recall of the caption samples on synthetic ground truth")
    s.set_defaults(func=cmd_link_eval)

    s = sub.add_parser("withdraw", help="withdraw delivered studies: the next refresh removes their samples "
                                        "(tombstones with the reason)")
    s.add_argument("study_keys", nargs="+", metavar="STUDY_KEY",
                   help="study keys as the drop's manifest.csv names them")
    s.add_argument("--reason", required=True, help="why, e.g. 'consent withdrawn' (kept in the tombstones)")
    s.set_defaults(func=cmd_withdraw)

    s = sub.add_parser("demo", help="the whole chain on the embedded defaults")
    s.add_argument("--patients", type=int, default=get_settings().synth.patients)
    s.add_argument("--seed", type=int, default=get_settings().synth.seed)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("refresh", help="dataset-refresh: ingest new studies, structure, link, patches, splits")
    s.add_argument("--raw", help="drop folder to register and take in (default: settings.raw_dir); earlier "
                                 "deliveries stay")
    s.add_argument("--backend", choices=["rules", "openai"], default=None)
    s.add_argument("--allow-removals", action="store_true", help=ALLOW_REMOVALS)
    s.set_defaults(func=cmd_refresh)

    s = sub.add_parser("extract-patches", help="cut localizer and captioner patches for new caption samples (Dask)")
    s.add_argument("--allow-removals", action="store_true", help=ALLOW_REMOVALS)
    s.set_defaults(func=cmd_extract_patches)

    s = sub.add_parser("split", help="assign new patients to train/val/test, per vendor, stable under refresh")
    s.set_defaults(func=cmd_split)

    s = sub.add_parser("train", help="train the localizer or the captioner (train-localizer / train-captioner flow)")
    s.add_argument("model", choices=["localizer", "captioner"])
    s.add_argument("--config", default="demo", help="a named config in models/training/configs (demo, benchmark, "
                   "lstm, transformer, xtransformer, b_w, b_p, b_w_p)")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config value, e.g. loop.epochs=3")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="per-scanner evaluation report of a registered model (evaluate-captioner)")
    s.add_argument("--model-version", help="registered model version (default: the champion; run promote first)")
    s.add_argument("--split", default="test", choices=["train", "val", "test"])
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("promote", help="give the candidate the champion alias if it is better (promote-captioner)")
    s.add_argument("--candidate", help="registered model version (default: the newest)")
    s.set_defaults(func=cmd_promote)

    s = sub.add_parser("benchmark", help="fresh synthetic cohort, every baseline and ablation config, one report")
    s.add_argument("--patients", type=int, help="patients in the cohort (default: BENCHMARK_PATIENTS, 400)")
    s.add_argument("--preset", default="benchmark")
    s.add_argument("--seeds", type=int, metavar="N",
                   help="train every configuration with N training seeds (0..N-1) on the same cohort: mean ± SD and "
                        "paired tests per seed and pooled; a rerun resumes where a stop left it")
    s.set_defaults(func=cmd_benchmark)

    s = sub.add_parser("caption", help="caption every lesion of one new study (DICOM or NIfTI + lesion mask)")
    s.add_argument("study_dir", help="study folder: ct/ or ct.nii.gz, pet/ or pet.nii.gz, lesions.nii.gz")
    s.add_argument("--out", help="output folder (default: <home>/captions/<study pseudonym>)")
    s.add_argument("--model-version", help="registered model version (default: the champion)")
    s.add_argument("--localizer", help="localizer checkpoint file (with --captioner: instead of the registry)")
    s.add_argument("--captioner", help="captioner checkpoint file")
    s.add_argument("--vendor", help="scanner vendor when the PET header does not say")
    s.add_argument("--tracer", help="tracer (FDG | PSMA) when the PET header does not say")
    s.add_argument("--push", action="store_true", help="store the DICOM SEG + SR on the PACS (STOW-RS)")
    s.add_argument("--lesion", type=int, help="correct this lesion instance (with --location): a corrected SR")
    s.add_argument("--location", help="the corrected location id of --lesion, e.g. vertebra_t8")
    s.add_argument("--by", help="who corrected it (kept in the SR)")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--flow-server", action="store_true",
                   help="run as the caption-study flow even without a configured Prefect server (ephemeral)")
    g.add_argument("--no-flow-server", action="store_true",
                   help="plain function calls even when a Prefect server is configured")
    s.set_defaults(func=cmd_caption)
    return p


ALLOW_REMOVALS = ("let samples leave for other reasons than a withdrawal (each gets a tombstone); without it such "
                  "a run is refused and changes nothing")


def _no_tracebacks_in_logs() -> None:
    """Log records without tracebacks (exception info, and a traceback quoted in the message). Prefect logs a
    failed task's traceback (more than once); without --debug the CLI's one-line error says what to do instead.
    A record factory, so it holds for the handlers Prefect sets up later, when a command imports it."""
    make = logging.getLogRecordFactory()

    def one_line(*args, **kwargs) -> logging.LogRecord:
        record = make(*args, **kwargs)
        record.exc_info, record.exc_text = None, None
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed log call stays logging's to report, at emit time
            return record
        if "Traceback (most recent call last)" in message:
            record.msg, record.args = message.split("Traceback (most recent call last)")[0].rstrip(), ()
        return record

    logging.setLogRecordFactory(one_line)


def _line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 800 else text[:800] + " ..."


def error_exit(command: str, error: BaseException) -> int:
    """Print ``error`` as one line on stderr; -> the exit code (2: usage / prerequisite, 1: failure)."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    if isinstance(error, PetcapError):
        code, line = error.exit_code, _line(error)
    elif isinstance(error, (ValidationError, SettingsError)):  # a setting from the environment or .env
        first = error.errors()[0] if isinstance(error, ValidationError) else None
        where = ".".join(map(str, first["loc"])) if first else ""
        code, line = 2, (f"setting {where}: {first['msg']} (fix the PETCAP_ variable or .env entry)" if first
                         else f"{_line(error)} (fix the PETCAP_ variable or .env entry)")
    else:
        code, line = 1, f"{type(error).__name__}: {_line(error)} (rerun with --debug for the traceback)"
    print(f"petcap{' ' + command if command else ''}: error: {line}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    import os

    from flows.logs import configure_logging

    # a started ephemeral Prefect server gets time on a loaded machine (Prefect's default of 20 s gave up while
    # 2 cores were busy training); a setting the user made wins
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    configure_logging()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    command = ""
    try:
        args = build_parser().parse_args(argv)  # argparse: usage + one error line, exit 2
        command = args.command
        preflight.check_environment()
        if not debug:
            _no_tracebacks_in_logs()
        return args.func(args)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print(f"petcap {command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the CLI's one place that turns any error into one line
        if debug:
            raise
        return error_exit(command, e)


if __name__ == "__main__":
    raise SystemExit(main())
