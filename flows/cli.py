"""`petcap`: the command line. Each sub-command parses arguments, builds the settings and calls a stage.

Sub-commands grow with the stages: synth, ingest, structure, structure-eval, link, demo.
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


def cmd_ingest(args: argparse.Namespace) -> int:
    from tasks.ingest import ingest_all

    settings = _settings(args)
    summary = ingest_all(settings, raw_dir=settings.raw_dir, store_url=settings.store_url)
    print(summary)
    return 0 if summary.ingested + summary.skipped > 0 or summary.quarantined == 0 else 1


def cmd_structure(args: argparse.Namespace) -> int:
    from tasks.structure.backend import structure_text

    settings = _settings(args)
    text = sys.stdin.read() if args.file in (None, "-") else Path(args.file).read_text()
    report = structure_text(text, settings, backend=args.backend)
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

    s = sub.add_parser("ingest", help="DICOM/NIfTI raw drop -> Zarr volume store + studies/lesions tables")
    s.add_argument("--raw", help="raw drop folder (default: settings.raw_dir)")
    s.add_argument("--store", help="Zarr store root: path or fsspec URL (default: settings.store_url)")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("structure", help="print the StructuredReport JSON of one report text")
    s.add_argument("file", nargs="?", help="report text file, or - for standard input")
    s.add_argument("--backend", choices=["rules", "openai"], default=None)
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
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
