"""The data-stage sub-commands: a cohort in (synth, pull), its figures (realism), ingest -> structure -> link ->
patches -> splits, one step at a time or as the dataset-refresh flow (refresh), and withdrawals."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from flows import preflight
from flows.commands.common import settings_from_args as _settings


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


def cmd_link_eval(args: argparse.Namespace) -> int:
    from tasks.evaluate.linking import evaluate_links

    print(evaluate_links(_settings(args)))
    return 0


def cmd_withdraw(args: argparse.Namespace) -> int:
    settings = _settings(args)
    preflight.require_table(settings, "deliveries", "studies are registered by `petcap refresh` or `petcap ingest`")
    from tasks.deliveries import withdraw

    ids = withdraw(settings, args.study_keys, args.reason)
    print(f"withdrawn: {', '.join(ids)}; the next refresh removes their samples (tombstones: {args.reason!r})")
    return 0


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


