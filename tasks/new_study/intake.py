"""A new study into a private volume store (never the training store: a served study must not leak into the
dataset), with the training ingestion (same HU / SUVbw conversion, pseudonymisation, lesion instances), and its
patches cut in memory by the training extractor's kernel (``tasks.patches.resample.compute_study``), so served
inputs match the training patches.

A lesion-free study (an empty lesion mask) is a normal scan, not an error: ``ingest_new_study`` returns it with
no lesions (``NoLesions``), and the caption output says "no lesions".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from data_contracts.records import Lesion
from data_contracts.settings import STORE_NAME, Settings
from tasks.ingest import IngestedStudy, ingest_study
from tasks.new_study.header import describe_study
from tasks.patches.resample import Request, StudyJob, compute_study
from tasks.patches.store import fields_of_view


@dataclass(frozen=True)
class NoLesions:
    """A study whose lesion mask is empty: nothing to caption, and a valid answer saying so."""

    study_id: str  # pseudonym (the folder name never leaves ingestion)
    vendor: str
    tracer: str
    reason: str  # the ingestion's words: why no lesion instance was found


def serving_settings(settings: Settings, study_dir: Path, out_dir: Path) -> Settings:
    """The settings of a served study: its folder as the raw root, a private volume store in ``out_dir``."""
    return settings.model_copy(update={"raw_dir": Path(study_dir), "store_url": str(Path(out_dir) / STORE_NAME),
                                       "tables_dir": Path(out_dir) / "tables"})


def ingest_new_study(study_dir: Path | str, out_dir: Path | str, settings: Settings,
                     vendor: str | None = None, tracer: str | None = None
                     ) -> tuple[IngestedStudy | NoLesions, Settings]:
    """Ingest one study folder into ``out_dir``'s private store; returns it (``NoLesions`` for an empty lesion
    mask) and the settings that read it. Any other bad input raises ``IngestError`` naming the file."""
    row = describe_study(study_dir, vendor, tracer)
    local = serving_settings(settings, Path(study_dir), Path(out_dir))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    ingested = ingest_study(row, local)
    if not ingested.lesions:  # ingestion takes an empty mask as a normal study with zero lesions
        return NoLesions(ingested.study.study_id, row.vendor.value, row.tracer.value,
                         "the lesion mask has no lesion instance"), local
    return ingested, local


def study_patches(settings: Settings, store_url: str, study_id: str,
                  lesions: list[Lesion]) -> dict[int, dict[str, np.ndarray]]:
    """Both fields of view of the given lesions of a stored study, in memory: {instance: {"localizer" |
    "captioner": (3, z, y, x)}} with channels CT (HU), PET (SUV), this lesion's mask — the training extractor's
    kernel and ``settings.patches``."""
    cfg = settings.patches
    requests = tuple(Request(les.instance, les.instance, les.centroid_mm, les.bbox) for les in lesions)
    job = StudyJob(store_url, study_id, requests, fields_of_view(cfg), "", cfg.dtype, cfg.ct_pad_hu,
                   cfg.threads_per_worker)
    return compute_study(job)
