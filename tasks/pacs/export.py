"""A captioned study's results as DICOM: ``lesions_seg.dcm`` and ``captions_sr.dcm`` beside ``captions.json``.

Reads what caption-study wrote into its output folder (``captions.json`` and the private volume store,
``<out>/STORE_NAME``, with the lesion instances on the CT grid) and the study's own CT series (the source
images both documents reference).
Only a DICOM study can be exported: a NIfTI study has no instances to reference.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

from data_contracts import volume_store as volumes
from data_contracts.atomic import atomic_open
from data_contracts.errors import PetcapError
from data_contracts.settings import STORE_NAME
from tasks.caption_output.writers import JSON_NAME
from tasks.pacs.dicom_series import read_series
from tasks.pacs.seg_export import Algorithm, lesion_seg
from tasks.pacs.sr_export import LesionReport, measurement_report

SEG_NAME = "lesions_seg.dcm"
SR_NAME = "captions_sr.dcm"


@dataclass(frozen=True)
class DicomExport:
    seg: Path | None  # None for a lesion-free study
    sr: Path


def _save(ds: pydicom.Dataset, path: Path) -> Path:
    with atomic_open(path) as f:
        ds.save_as(f, enforce_file_format=True)
    return path


def lesion_reports(captions: dict, tracking: dict[int, str], corrections: dict[int, str] | None = None
                   ) -> list[LesionReport]:
    """The SR's view of ``captions.json``: the site is the localizer's top-1 unless a clinician corrected it."""
    corrections = corrections or {}
    out = []
    for les in captions["lesions"]:
        inst = int(les["instance"])
        top5 = tuple((t["location_id"], round(float(t["confidence"]), 4)) for t in les["top5"])
        out.append(LesionReport(instance=inst, tracking_uid=tracking[inst],
                                site=corrections.get(inst, les.get("site") or top5[0][0]), caption=les["caption"],
                                top5=top5, suv_max=round(float(les["suv_max"]), 3),
                                volume_ml=round(float(les["volume_ml"]), 3)))
    return out


def export_study(study_dir: Path | str, out_dir: Path | str, algorithm: Algorithm,
                 previous_sr: Path | None = None) -> DicomExport:
    """Write the SEG (one segment per lesion) and the TID 1500 SR of ``out_dir/captions.json``.

    ``previous_sr``: the SR this one corrects (its predecessor reference); the SEG of that SR is reused, so a
    correction changes the report, not the segmentation.
    """
    study_dir, out_dir = Path(study_dir), Path(out_dir)
    if not (study_dir / "ct").is_dir():
        raise PetcapError("only a DICOM study can be exported as SEG and SR", path=study_dir.name,
                          reason="not_dicom", hint="the CT must be a folder of DICOM instances")
    captions = json.loads((out_dir / JSON_NAME).read_text(encoding="utf-8"))
    ct = read_series(study_dir / "ct")
    previous = pydicom.dcmread(previous_sr) if previous_sr is not None else None
    if not captions["lesions"]:
        sr = measurement_report(ct, None, [], algorithm, previous=previous)
        return DicomExport(None, _save(sr, out_dir / SR_NAME))
    seg_path = out_dir / SEG_NAME
    if previous is not None and seg_path.is_file():
        seg = pydicom.dcmread(seg_path)
        tracking = {int(s.SegmentLabel.split()[-1]): str(s.TrackingUID) for s in seg.SegmentSequence}
    else:
        stored = volumes.open_study(str(out_dir / STORE_NAME), captions["study_id"])
        tracking = {int(les["instance"]): generate_uid() for les in captions["lesions"]}
        seg = lesion_seg(ct, stored.lesions[:], stored.geometry, tracking, algorithm)
        _save(seg, seg_path)
    corrections = {int(k): v["location_id"] for k, v in captions.get("corrections", {}).items()}
    sr = measurement_report(ct, seg, lesion_reports(captions, tracking, corrections), algorithm, previous=previous)
    return DicomExport(seg_path, _save(sr, out_dir / SR_NAME))
