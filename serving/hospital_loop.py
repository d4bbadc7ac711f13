"""The hospital loop around one captioned study: DICOM SEG + SR back to the PACS, and a clinician's correction.

``export_and_push``: after ``serving.study.caption_study``, the SEG (one segment per lesion) and the TID 1500 SR of
``captions.json`` are written beside it and, with ``push``, stored on the PACS by STOW-RS.

``correct_lesion``: a clinician says lesion N is at ``location_id``. The captioner is run again on that lesion
with the corrected location as its guidance (CGLP with confidence 1, DWS from the corrected region's window),
``captions.json`` is updated (the localizer's own top-5 is kept; the correction is recorded in it), a corrected
SR that references the previous one is written (and pushed), and a row goes to the corrections table, which the
next dataset refresh uses as the lesion's training label.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pydicom
import torch

from data_contracts import taxonomy
from data_contracts.errors import UsageError
from data_contracts.settings import Settings
from data_contracts.tables import CorrectionRow
from models.inference import TOP_K, CaptionPipeline
from tasks.caption_output.records import StudyCaptions
from tasks.caption_output.writers import JSON_NAME, write_json
from tasks.corrections import record_correction
from tasks.new_study.intake import serving_settings, study_patches
from tasks.pacs.export import SR_NAME, DicomExport, export_study
from tasks.pacs.push import push_files
from tasks.pacs.seg_export import Algorithm

log = logging.getLogger(__name__)


def algorithm(model_version: str | None) -> Algorithm:
    return Algorithm(name="petcap", version=str(model_version or "unregistered"))


def export_and_push(study_dir: Path | str, out_dir: Path | str, settings: Settings, model_version: str | None,
                    push: bool, previous_sr: Path | None = None) -> dict:
    """Write the SEG and SR of a captioned study (and store them on the PACS with ``push``)."""
    result: DicomExport = export_study(study_dir, out_dir, algorithm(model_version), previous_sr=previous_sr)
    files = [p for p in (result.seg, result.sr) if p is not None]
    pushed = push_files(settings.pacs, files, item=Path(out_dir).name) if push else []
    return {"seg": str(result.seg) if result.seg else None, "sr": str(result.sr), "pushed": pushed}


@dataclasses.dataclass(frozen=True)
class Correction:
    instance: int
    location_id: str
    previous_location_id: str
    caption: str
    sr: str
    pushed: list[str]


def _load_captions(out_dir: Path) -> StudyCaptions:
    path = out_dir / JSON_NAME
    if not path.is_file():
        raise UsageError("the study has not been captioned here", path=str(path),
                         hint="run `petcap caption STUDY` first, with the same --out")
    return StudyCaptions.from_json(json.loads(path.read_text(encoding="utf-8")))


def correct_lesion(study_dir: Path | str, out_dir: Path | str, settings: Settings, pipeline: CaptionPipeline,
                   instance: int, location_id: str, corrected_by: str, model_version: str | None,
                   push: bool = False) -> Correction:
    """Regenerate lesion ``instance``'s caption with ``location_id`` as its location; see the module docstring."""
    out_dir = Path(out_dir)
    captions = _load_captions(out_dir)
    try:
        index = taxonomy.index_of(location_id)
    except KeyError:
        raise UsageError(f"unknown location {location_id!r}", hint="use a location id of the taxonomy, "
                         "e.g. vertebra_t8, ln_mediastinal_4r, lung_rul") from None
    by_instance = {les.instance: k for k, les in enumerate(captions.lesions)}
    if instance not in by_instance:
        raise UsageError(f"the study has no lesion {instance}", path=str(out_dir / JSON_NAME),
                         hint=f"its lesions are {sorted(by_instance)}")
    lesion = captions.lesions[by_instance[instance]]
    previous = lesion.top5[0]["location_id"]

    from data_contracts.volume_store import open_study

    store = serving_settings(settings, Path(study_dir), out_dir).store_url  # the study's private volume store
    stored = open_study(store, captions.study_id)
    record = next(les for les in stored.lesion_records if les.instance == instance)
    patches = study_patches(pipeline.params.patch_settings(settings), store, captions.study_id, [record])
    small = torch.from_numpy(np.asarray(patches[instance]["captioner"], dtype=np.float32))[None]  # (1, 3, z, y, x)
    others = [taxonomy.index_of(t["location_id"]) for t in lesion.top5 if t["location_id"] != location_id]
    top_ids = torch.tensor([[index, *others[:TOP_K - 1]]], dtype=torch.long)  # (1, 5): the correction first
    top_conf = torch.tensor([[1.0] + [0.0] * (TOP_K - 1)], dtype=torch.float32)  # sure: CGLP top-1, its DWS window
    answer = pipeline.caption_guided(small, top_ids, top_conf, [captions.tracer])[0]

    at = datetime.now(timezone.utc)
    fixed = dataclasses.replace(lesion, window=answer.window, prompt=answer.prompt, caption=answer.caption)
    captions.lesions[by_instance[instance]] = fixed
    captions.corrections[str(instance)] = {"location_id": location_id, "previous_location_id": previous,
                                           "corrected_by": corrected_by, "at": at.isoformat(),
                                           "model_version": str(model_version or "unregistered")}
    write_json(captions, out_dir)

    sr_path = out_dir / SR_NAME
    previous_sr = None
    if sr_path.is_file():  # keep the report being corrected beside the new one
        previous_sr = out_dir / f"captions_sr.{pydicom.dcmread(sr_path, stop_before_pixels=True).SOPInstanceUID}.dcm"
        sr_path.replace(previous_sr)
    exported = export_and_push(study_dir, out_dir, settings, model_version, push, previous_sr=previous_sr)
    sr_uid = str(pydicom.dcmread(exported["sr"], stop_before_pixels=True).SOPInstanceUID)
    record_correction(settings, CorrectionRow(
        study_id=captions.study_id, instance=instance, location_id=location_id, previous_location_id=previous,
        corrected_by=corrected_by, at=at, model_version=str(model_version or "unregistered"), sr_instance_uid=sr_uid))
    log.info("%s lesion %d: location %s -> %s, caption regenerated", captions.study_id, instance, previous,
             location_id)
    return Correction(instance, location_id, previous, answer.caption, exported["sr"], exported["pushed"])


def correct_lesion_files(study_dir: Path | str, out_dir: Path | str, settings: Settings, localizer_checkpoint: str,
                         captioner_checkpoint: str, instance: int, location_id: str, corrected_by: str,
                         model_version: str | None, push: bool = False) -> Correction:
    """``correct_lesion`` with checkpoint files (the process's bounded model cache loads them once)."""
    from serving.models_cache import load_pipeline

    return correct_lesion(study_dir, out_dir, settings, load_pipeline(localizer_checkpoint, captioner_checkpoint),
                          instance, location_id, corrected_by, model_version, push)


def wants_dicom(study_dir: Path | str, push: bool) -> bool:
    """SR and SEG are written for every DICOM study (a NIfTI study has no instances to reference); pushing a
    NIfTI study is a usage error."""
    dicom = (Path(study_dir) / "ct").is_dir()
    if push and not dicom:
        raise UsageError("only a DICOM study can be pushed to the PACS", path=Path(study_dir).name,
                         hint="pull it from the PACS (`petcap pull`) or drop --push")
    return dicom
