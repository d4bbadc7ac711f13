"""What a patch-extraction worker is asked to do and what it answers: plain data, pickled to a Dask worker.

A ``StudyJob`` names one study of the volume store, its lesions (``Request``: patch store row, instance,
centroid, bounding box) and the fields of view to cut; ``StudyDone`` reports the rows written. The channel
constants say which volume array each patch channel is sampled from.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks.patches.interpolation import FieldOfView

CHANNELS = ("ct", "pet", "mask")  # patch channel order
SOURCE = {"ct": "ct", "pet": "pet", "mask": "lesions"}  # channel -> volume array it is sampled from
ARRAYS = ("ct", "pet", "lesions")
UNITS = {"ct": "HU", "pet": "SUVbw", "mask": "1 inside this lesion instance, else 0"}


@dataclass(frozen=True)
class Request:
    """One lesion's patches: the patch store row to fill, its label, centroid and bounding box."""

    row: int
    instance: int
    centre_mm: tuple[float, float, float]  # LPS lesion centroid (the patches are centred on it, snapped)
    bbox: tuple[int, int, int, int, int, int] | None = None  # (z0, y0, x0, z1, y1, x1) on the label grid


@dataclass(frozen=True)
class StudyJob:
    """Everything a worker needs for one study (plain data: pickled to the Dask worker)."""

    volume_store: str  # volume store root (path or fsspec URL)
    study_id: str
    requests: tuple[Request, ...]
    fovs: tuple[FieldOfView, ...]
    patch_store: str = ""  # patch store root ("" when only computing: tests, benchmarks)
    dtype: str = "float16"
    ct_pad: float = -1000.0
    threads: int = 1  # zarr decoding threads in this worker process
    max_open: int = 24  # lesions swept together; more are done in batches (memory ~ 6 MB per open lesion)


@dataclass(frozen=True)
class StudyDone:
    study_id: str
    rows: tuple[int, ...]
    seconds: float
    chunks_decoded: int
    slabs: int
