"""``petcap caption``: caption every lesion of one study, or correct one lesion's location (a corrected SR)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flows import preflight
from flows.commands.common import run_flow
from flows.commands.common import settings_from_args as _settings


def cmd_caption(args: argparse.Namespace) -> int:
    """One study, as the ``caption-study`` flow: a flow run with a Prefect server configured (in the UI), its steps
    as plain calls without one (``run_flow``)."""
    if (args.lesion is None) != (args.location is None):
        from data_contracts.errors import UsageError

        raise UsageError("--lesion and --location go together", hint="e.g. --lesion 2 --location vertebra_t8")
    settings = _settings(args)
    preflight.require_dir(args.study_dir, "study folder", "give a folder with ct/ or ct.nii.gz, pet/ or pet.nii.gz "
                                                          "and lesions.nii.gz")
    if not (args.localizer and args.captioner):
        preflight.require_registry(settings)
    from flows.caption import caption_study_flow

    out = run_flow(caption_study_flow, args, study_dir=args.study_dir, out_dir=args.out, home=str(settings.home),
                   model_version=args.model_version, localizer_checkpoint=args.localizer,
                   captioner_checkpoint=args.captioner, vendor=args.vendor, tracer=args.tracer, push=args.push,
                   correct_lesion=args.lesion, correct_location=args.location, corrected_by=args.by)
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
