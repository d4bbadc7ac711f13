"""`petcap`: the command line. Each sub-command parses arguments, builds the settings and calls a stage.

This module holds the parser, the one-line errors and ``main``; the sub-commands are in ``flows.commands``
(``data_stages``, ``model_stages``, ``caption``).

Stages: synth, realism (the cohort's realism figures), pull, ingest, structure, structure-eval, link, link-eval,
withdraw, extract-patches, split, refresh (ingest → link → patches → splits as the dataset-refresh flow), train
localizer|captioner, evaluate, promote, benchmark, caption, demo. train, evaluate, promote and caption are the
flows a deployment runs: a flow run when a Prefect API is configured (``PREFECT_API_URL``) or ``--flow-server``
is given, their steps as plain calls otherwise (no ephemeral API server, whose start-up took 14-28 s here:
``flows.commands.common``).
Imports are local to each command so `petcap --help` stays fast, and each command runs its up-front checks
(``flows.preflight``) before the heavy imports, so a mistake no retry can fix is answered in seconds.

Errors: every error is one line on stderr — what is wrong, the file at fault, what to do — and the exit code
says whose move it is: 2 for a usage or prerequisite mistake (``UsageError``, ``PrerequisiteError``, an
argument argparse refuses, a setting that does not parse), 1 for a failure. ``--debug`` (anywhere on the line)
shows the traceback instead; without it, log lines carry no tracebacks.
"""

from __future__ import annotations

import argparse
import logging
import sys

from data_contracts.errors import PetcapError
from data_contracts.settings import get_settings
from flows import preflight
from flows.commands.caption import cmd_caption
from flows.commands.common import add_flow_server_flags
from flows.commands.data_stages import (
    cmd_extract_patches,
    cmd_ingest,
    cmd_link,
    cmd_link_eval,
    cmd_pull,
    cmd_realism,
    cmd_refresh,
    cmd_split,
    cmd_structure,
    cmd_structure_eval,
    cmd_synth,
    cmd_withdraw,
)
from flows.commands.model_stages import (
    cmd_benchmark,
    cmd_demo,
    cmd_evaluate,
    cmd_promote,
    cmd_train,
)


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
    add_flow_server_flags(s)
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("evaluate", help="per-scanner evaluation report of a registered model (evaluate-captioner)")
    s.add_argument("--model-version", help="registered model version (default: the champion; run promote first)")
    s.add_argument("--split", default="test", choices=["train", "val", "test"])
    add_flow_server_flags(s)
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("promote", help="give the candidate the champion alias if it is better (promote-captioner)")
    s.add_argument("--candidate", help="registered model version (default: the newest)")
    add_flow_server_flags(s)
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
    add_flow_server_flags(s)
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
