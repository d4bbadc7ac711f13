"""`petcap`: the command line. Each sub-command parses arguments, builds the settings and calls a stage.

Stages: synth, realism (the cohort's realism figures), ingest, structure, structure-eval, link, extract-patches, split, refresh (ingest → link →
patches → splits as the dataset-refresh flow), train localizer|captioner, evaluate, promote, benchmark,
caption, demo. Training, evaluation and promotion run as the same Prefect flows a deployment runs (ephemeral
API unless PREFECT_API_URL points at a server); ``caption`` runs the caption-study flow when a server is
configured and its two steps as plain calls otherwise.
Imports are local to each command so `petcap --help` stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from data_contracts.settings import Settings, get_settings


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
    summary = synthesize_cohort(out, patients=args.patients, seed=args.seed, scale=args.scale, settings=settings)
    print(summary)
    return 0


def cmd_realism(args: argparse.Namespace) -> int:
    from tasks.realism.table import format_table, realism_table

    figures = realism_table(_settings(args))
    print(format_table(figures))
    return 0 if all(f.status != "fail" for f in figures) else 1


def cmd_ingest(args: argparse.Namespace) -> int:
    from tasks.ingest import ingest_all

    settings = _settings(args)
    summary = ingest_all(settings, raw_dir=settings.raw_dir, store_url=settings.store_url)
    print(summary)
    return 0 if summary.ingested + summary.skipped > 0 or summary.quarantined == 0 else 1


def cmd_structure(args: argparse.Namespace) -> int:
    from tasks.structure.backend import structure_text

    from data_contracts.findings import Tracer

    settings = _settings(args)
    if args.file in (None, "-"):
        # Any bytes are a text: undecodable bytes become U+FFFD, NULs blanks (a PDF dump, a wrong encoding).
        text = sys.stdin.buffer.read().decode("utf-8", errors="replace").replace("\x00", " ")
    else:
        from tasks.ingest.report_text import read_report_text

        text = read_report_text(Path(args.file), args.file)  # UTF-8/BOMs/UTF-16/Latin-1; a binary file: one line
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
    from tasks.link import link_dataset

    settings = _settings(args)
    summary = link_dataset(settings, backend=args.backend)
    print(json.dumps(dataclasses.asdict(summary), indent=2, default=str))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from flows.demo import run_demo

    settings = _settings(args)
    return run_demo(settings, patients=args.patients, seed=args.seed)


def cmd_refresh(args: argparse.Namespace) -> int:
    from flows.refresh import dataset_refresh

    settings = _settings(args)
    out = dataset_refresh(home=str(settings.home), raw_dir=str(settings.raw_dir), backend=args.backend,
                          progress=True)
    print(json.dumps(out, indent=2))
    return 0


def prefect_server_configured() -> bool:
    """Whether a Prefect API is configured (``PREFECT_API_URL`` in the environment or the active profile)."""
    from prefect.settings import PREFECT_API_URL

    return bool(PREFECT_API_URL.value())


def cmd_caption(args: argparse.Namespace) -> int:
    """One study. With a Prefect server configured, as the ``caption-study`` flow (a run in the UI); without
    one, the flow's two steps as plain calls (no ephemeral server: start-up cost ~15 s per call)."""
    import os

    # a started ephemeral server gets time on a loaded machine (Prefect's default gave up while 2 cores were busy)
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    if (args.lesion is None) != (args.location is None):
        from data_contracts.errors import UsageError

        raise UsageError("--lesion and --location go together", hint="e.g. --lesion 2 --location vertebra_t8")
    settings = _settings(args)
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
    from tasks.patches.extract import extract_patches

    print(extract_patches(_settings(args)))
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from tasks.splits import update_splits

    print(update_splits(_settings(args)))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from flows.training import train_captioner_flow, train_localizer_flow
    from models.training.configs import parse_overrides

    settings = _settings(args)
    run = train_localizer_flow if args.model == "localizer" else train_captioner_flow
    out = run(home=str(settings.home), config=args.config, overrides=parse_overrides(args.set or []))
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from flows.evaluation import evaluate_captioner_flow

    settings = _settings(args)
    out = evaluate_captioner_flow(home=str(settings.home), model_version=args.model_version, split=args.split)
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    from flows.evaluation import promote_captioner_flow

    settings = _settings(args)
    out = promote_captioner_flow(home=str(settings.home), candidate_version=args.candidate)
    print(json.dumps(out, indent=2, default=str))
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    from flows.benchmark import benchmark_flow
    from tasks.evaluate.benchmark import BENCHMARK_PATIENTS

    settings = _settings(args)
    if not args.home:  # the benchmark's cohort, models and report never mix with the working set's
        settings = Settings(home=settings.home / "benchmark")
    result = benchmark_flow(home=str(settings.home), patients=args.patients or BENCHMARK_PATIENTS,
                            preset=args.preset, progress=True)
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
    p.add_argument("--home", help="working folder (default: $PETCAP_HOME or ./var)")
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
    s.set_defaults(func=cmd_link)

    s = sub.add_parser("demo", help="the whole chain on the embedded defaults")
    s.add_argument("--patients", type=int, default=get_settings().synth.patients)
    s.add_argument("--seed", type=int, default=get_settings().synth.seed)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("refresh", help="dataset-refresh: ingest new studies, structure, link, patches, splits")
    s.add_argument("--raw", help="raw drop folder (default: settings.raw_dir)")
    s.add_argument("--backend", choices=["rules", "openai"], default=None)
    s.set_defaults(func=cmd_refresh)

    s = sub.add_parser("extract-patches", help="cut localizer and captioner patches for new caption samples (Dask)")
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
    s.add_argument("--model-version", help="registered model version (default: the newest)")
    s.add_argument("--split", default="test", choices=["train", "val", "test"])
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("promote", help="give the candidate the champion alias if it is better (promote-captioner)")
    s.add_argument("--candidate", help="registered model version (default: the newest)")
    s.set_defaults(func=cmd_promote)

    s = sub.add_parser("benchmark", help="fresh synthetic cohort, every baseline and ablation config, one report")
    s.add_argument("--patients", type=int, help="patients in the cohort (default: BENCHMARK_PATIENTS, 400)")
    s.add_argument("--preset", default="benchmark")
    s.set_defaults(func=cmd_benchmark)

    s = sub.add_parser("caption", help="caption every lesion of one new study (DICOM or NIfTI + lesion mask)")
    s.add_argument("study_dir", help="study folder: ct/ or ct.nii.gz, pet/ or pet.nii.gz, lesions.nii.gz")
    s.add_argument("--out", help="output folder (default: <home>/captions/<study pseudonym>)")
    s.add_argument("--model-version", help="registered model version (default: the champion)")
    s.add_argument("--localizer", help="localizer checkpoint file (with --captioner: instead of the registry)")
    s.add_argument("--captioner", help="captioner checkpoint file")
    s.add_argument("--vendor", help="scanner vendor when the PET header does not say")
    s.add_argument("--tracer", help="tracer (FDG | PSMA) when the PET header does not say")
    g = s.add_mutually_exclusive_group()
    g.add_argument("--flow-server", action="store_true",
                   help="run as the caption-study flow even without a configured Prefect server (ephemeral)")
    g.add_argument("--no-flow-server", action="store_true",
                   help="plain function calls even when a Prefect server is configured")
    s.set_defaults(func=cmd_caption)
    return p


def main(argv: list[str] | None = None) -> int:
    from flows.logs import configure_logging

    configure_logging()
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
