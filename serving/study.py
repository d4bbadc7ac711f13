"""Caption one new study (a radiologist's, outside the training data): ``petcap caption STUDY_DIR``.

study folder (ct/ or ct.nii.gz, pet/ or pet.nii.gz (+ pet.json), lesions.nii.gz, anatomy.nii.gz optional)
  -> ``tasks.new_study``: a manifest row from the headers, the training ingestion into a private store under the
     output folder, both fields of view per lesion (the training extractor's kernel)
  -> ``models.inference.CaptionPipeline``: localizer top-5 -> DWS -> CGLP -> caption, with the parameters the
     models were trained with (their checkpoints), never the environment's
  -> ``tasks.caption_output`` writers: ``report.png``, then ``captions.json`` (a DICOM SR writer goes beside them).

A study with an empty lesion mask gets a valid answer: status "no lesions", no lesion rows, both files written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from data_contracts.records import Lesion
from data_contracts.settings import Settings
from models.inference import CaptionPipeline, LesionAnswer
from tasks.caption_output.records import CAPTIONED, NO_LESIONS, LesionCaption, StudyCaptions
from tasks.caption_output.writers import OutputWriter, Patches, default_writers
from tasks.ingest import open_study
from tasks.ingest.pseudonym import study_pseudonym
from tasks.new_study.intake import NoLesions, ingest_new_study, study_patches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredAnswers:
    """A stored study's lesions, their patches and the pipeline's answers, in instance order."""

    lesions: list[Lesion]
    patches: Patches
    answers: list[LesionAnswer]
    seconds: dict = field(default_factory=dict)  # patches / models


def caption_stored_study(store_url: str, study_id: str, settings: Settings, pipeline: CaptionPipeline,
                         instances: list[int] | None = None) -> StoredAnswers:
    """Caption lesions of a study already in a volume store (all, or the ``instances`` given), cut with the
    patch geometry the models were trained on (``InferenceParams.patch_settings``)."""
    stored = open_study(store_url, study_id)
    lesions = sorted(stored.lesion_records, key=lambda les: les.instance)
    if instances is not None:
        known = {les.instance for les in lesions}
        missing = sorted(set(instances) - known)
        if missing:
            raise KeyError(f"study {study_id} has no lesion {missing[0]} (it has {sorted(known)})")
        lesions = [les for les in lesions if les.instance in set(instances)]
    if not lesions:
        return StoredAnswers([], {}, [])
    t0 = time.perf_counter()
    patches = study_patches(pipeline.params.patch_settings(settings), store_url, study_id, lesions)
    t1 = time.perf_counter()
    large = torch.from_numpy(np.stack([np.asarray(patches[les.instance]["localizer"], dtype=np.float32)
                                       for les in lesions]))  # (N, 3, z, y, x): HU, SUV, mask
    small = torch.from_numpy(np.stack([np.asarray(patches[les.instance]["captioner"], dtype=np.float32)
                                       for les in lesions]))
    positions = torch.from_numpy(np.stack([stored.geometry.scan_position(np.asarray(les.centroid_mm, dtype=float))
                                           for les in lesions]).astype(np.float32))  # (N, 3)
    tracer = stored.study.tracer.value
    answers = pipeline.caption(large, small, positions, [tracer] * len(lesions))
    return StoredAnswers(lesions, patches, answers,
                         {"patches": round(t1 - t0, 3), "models": round(time.perf_counter() - t1, 3)})


def lesion_caption(les: Lesion, answer: LesionAnswer) -> LesionCaption:
    return LesionCaption(instance=les.instance, centroid_mm=tuple(round(v, 2) for v in les.centroid_mm),
                         volume_ml=round(les.volume_ml, 3), suv_max=round(les.suv_max, 2), top5=answer.top5(),
                         window=answer.window, prompt=answer.prompt, caption=answer.caption)


@dataclass(frozen=True)
class CaptionStudyResult:
    json_path: Path
    report_path: Path | None
    lesions: int
    seconds: float  # wall clock, ingestion included
    captions: StudyCaptions
    outputs: dict[str, Path] = field(default_factory=dict)  # writer name -> file


def default_out_dir(settings: Settings, study_dir: Path | str) -> Path:
    """``<home>/captions/<study pseudonym>``: the raw folder name (often an accession number) never names a path."""
    return settings.captions_dir / study_pseudonym(Path(study_dir).name, settings.pseudonym_key)


def caption_study(study_dir: Path | str, out_dir: Path | str, settings: Settings, pipeline: CaptionPipeline,
                  vendor: str | None = None, tracer: str | None = None,
                  writers: list[OutputWriter] | None = None, models: dict | None = None) -> CaptionStudyResult:
    """Caption every lesion of one new study and write the outputs (default: ``report.png``, ``captions.json``).

    ``pipeline`` is loaded once by the caller; ingestion goes to ``out_dir``'s private store. Raises
    ``IngestError`` for a study that cannot be ingested, naming the file and the problem.
    """
    t0 = time.perf_counter()
    out_dir = Path(out_dir)
    ingested, local = ingest_new_study(study_dir, out_dir, settings, vendor, tracer)
    t1 = time.perf_counter()
    info = {"checkpoints": {k: Path(v).name for k, v in pipeline.paths.items()}, **(models or {}),
            **pipeline.describe()}
    if isinstance(ingested, NoLesions):
        result = StudyCaptions(study_id=ingested.study_id, vendor=ingested.vendor, tracer=ingested.tracer,
                               status=NO_LESIONS, models=info)
        found = StoredAnswers([], {}, [])
        t3 = time.perf_counter()
    else:
        study = ingested.study
        found = caption_stored_study(local.store_url, study.study_id, settings, pipeline)
        t3 = time.perf_counter()
        result = StudyCaptions(study_id=study.study_id, vendor=study.vendor.value, tracer=study.tracer.value,
                               lesions=[lesion_caption(les, a) for les, a in zip(found.lesions, found.answers)],
                               status=CAPTIONED if found.lesions else NO_LESIONS, models=info)
    outputs: dict[str, Path] = {}
    for writer in writers or default_writers(pipeline.params.pet_suv_max):
        if writer.name == "json":  # the answer's timing is complete only now
            t4 = time.perf_counter()
            result.seconds = {"ingest": round(t1 - t0, 3), "patches": found.seconds.get("patches", 0.0),
                              "models": found.seconds.get("models", 0.0), "outputs": round(t4 - t3, 3),
                              "total": round(t4 - t0, 3)}
        outputs[writer.name] = writer.write(result, found.patches, out_dir)
    log.info("captioned %s: %s, %d lesions in %.1f s", result.study_id, result.status, len(result.lesions),
             time.perf_counter() - t0)
    return CaptionStudyResult(outputs.get("json"), outputs.get("report"), len(result.lesions),
                              time.perf_counter() - t0, result, outputs)


def caption_study_files(study_dir: Path | str, out_dir: Path | str | None, settings: Settings,
                        localizer_checkpoint: str, captioner_checkpoint: str, vendor: str | None = None,
                        tracer: str | None = None, model_version: str | None = None) -> CaptionStudyResult:
    """``caption_study`` with checkpoint files: the models come from the process's bounded cache
    (``models_cache.load_pipeline``), so a worker that captions many studies loads them once."""
    from serving.models_cache import load_pipeline

    pipeline = load_pipeline(localizer_checkpoint, captioner_checkpoint)
    out = Path(out_dir) if out_dir else default_out_dir(settings, study_dir)
    return caption_study(study_dir, out, settings, pipeline, vendor, tracer,
                         models={"version": model_version} if model_version else None)
