"""The volume store: one Zarr v3 group per ingested study, on a local path or any fsspec URL.

Layout of ``<store>/<study pseudonym>/<version>/`` (``version`` = ``v1``, ``v2``, … named by the study group's
``version`` attribute; the arrays of the current version):

* ``ct``      int16   HU                     (z, y, x) on the CT grid (or the configured CT spacing)
* ``pet``     float32 SUVbw                  on the PET's own grid, or the configured PET spacing over its field
                                             of view (``StoredStudy.pet_on(grid)`` interpolates it onto another)
* ``lesions`` uint16  instance labels (0 = background, 1..n = lesions; the ``lesions`` table's ``instance``)
* ``anatomy`` uint8   segmenter class labels of ``data_contracts.segmentation`` (absent when the delivery had
                     none; uint16 in stores written before ingest version 4)

Every array carries its own grid in its attributes (``shape`` (z, y, x); ``spacing`` and ``origin`` (x, y, z) mm
LPS; ``direction`` row-major 3x3 — ITK order, see ``data_contracts.geometry``) and ``units``. The group's
attributes hold the study record, its lesion records, vendor, tracer, the content hash of the raw inputs, the
ingestion recipe, the taxonomy/anatomy versions, the current ``version`` and — written last, in the same write —
the completion marker. A group without the marker is an interrupted write: readers treat it as absent, ingestion
rewrites it.

Re-ingesting a changed study commits before it retires: the new arrays go into the next version's subgroup while
the old version stays complete and readable, one attribute write switches ``version`` (and the record) to the new
one, and only then is the old subgroup deleted. A kill at any point leaves either the old or the new study whole;
a stale version left by a kill is removed by the next write. (Groups of layout format 1 hold their arrays at the
study level; they are read as they are and retired the same way. Format 2 groups hold the PET on the CT grid;
they read the same, since every array names its grid, and a re-ingest writes format 3.)

Arrays are chunked (``settings.ingest.chunks``) and compressed, so later stages read patches without loading
whole volumes: ``open_study`` returns lazy ``zarr.Array`` handles.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from functools import cache
from typing import Any

import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.core.sync import sync

from data_contracts import segmentation, taxonomy
from data_contracts.geometry import Geometry
from data_contracts.settings import IngestSettings
from data_contracts.volume_store import (  # noqa: F401 - the readers, re-exported for the writers' callers
    DTYPES,
    FORMAT,
    MARKER,
    UNITS,
    StoredStudy,
    VolumeStoreError,
    arrays_group,
    completed,
    list_studies,
    open_root,
    open_study,
)
from data_contracts.volume_store import zarr_store as _store


@cache
def taxonomy_version() -> str:
    """A content hash of the taxonomy (ids, names, structures): changes exactly when the categories do."""
    items = [(loc.id, loc.name, list(loc.structures)) for loc in taxonomy.locations()]
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:12]


@cache
def anatomy_version() -> str:
    """A content hash of the segmenter class set (label = index + 1 of these names)."""
    return hashlib.sha256(json.dumps(list(segmentation.CLASSES)).encode()).hexdigest()[:12]


def discard(store_url: str, study_id: str) -> None:
    """Remove everything under a study's prefix: a complete group, an interrupted one, or stray chunks."""
    sync(_store(store_url).delete_dir(study_id))


def compressors(settings: IngestSettings) -> list:
    """The codec chain of ``settings.compressor``.

    Measured on full-scale volumes (2 cores): Blosc-LZ4 with byte shuffle encodes int16 CT at several GB/s
    for a ~2x ratio; Blosc-zstd with bit shuffle gains ~10-20 % in size at ~5x the CPU; plain zstd is slowest.
    """
    level = settings.compression_level
    if settings.compressor == "zstd":
        return [ZstdCodec(level=level)]
    if settings.compressor == "blosc-lz4":
        return [BloscCodec(cname="lz4", clevel=min(level, 9), shuffle="shuffle")]
    return [BloscCodec(cname="zstd", clevel=min(level, 9), shuffle="bitshuffle")]


class StudyWriter:
    """Writes one study's next version beside the current one; ``commit`` switches to it, then retires the old."""

    def __init__(self, store_url: str, study_id: str, settings: IngestSettings):
        self.store_url, self.study_id, self.settings = store_url, study_id, settings
        root = open_root(store_url, writable=True)
        if study_id in root and not isinstance(root[study_id], zarr.Group):
            discard(store_url, study_id)
        self.study = root[study_id] if study_id in root else root.create_group(study_id, attributes={"format": FORMAT})
        attrs = dict(self.study.attrs)
        self.current = attrs.get("version") if attrs.get(MARKER) else None
        legacy = attrs.get(MARKER) and "version" not in attrs  # a format-1 group: arrays at the study level
        for name, _ in list(self.study.members(max_depth=0)):
            if name != self.current and not (legacy and name in UNITS):
                discard(store_url, f"{study_id}/{name}")  # a version an interrupted write left behind
        self.retire = [self.current] if self.current else [n for n in UNITS if legacy and n in self.study]
        number = int(self.current[1:]) + 1 if self.current else 1
        self.version = f"v{number}"
        self.group = self.study.create_group(self.version, attributes={"format": FORMAT})

    def create(self, name: str, geometry: Geometry) -> zarr.Array:
        """An empty (all-zero, nothing stored yet) array on ``geometry``; fill it by slices.

        Chunked ``settings.chunks``, except the anatomy label map: it is only ever read whole (linking, checks,
        realism), never by patch, so its chunks are whole slabs of ``chunks[0]`` slices (a ninth of the chunks to
        encode and store, and the same bytes)."""
        chunks = self.settings.chunks if name != "anatomy" else (self.settings.chunks[0], *geometry.shape[1:])
        chunks = tuple(min(c, s) for c, s in zip(chunks, geometry.shape))
        return self.group.create_array(
            name, shape=geometry.shape, dtype=DTYPES[name], chunks=chunks, fill_value=0,
            compressors=compressors(self.settings), dimension_names=("z", "y", "x"),
            attributes={"units": UNITS[name], **geometry.to_attrs()},
            # Whole volumes are written once; zarr's test of every chunk against the fill value costs more than
            # compressing and storing the few all-zero ones. Lesions are written in their box only: keep the test.
            config={"write_empty_chunks": name != "lesions"},
        )

    def commit(self, attrs: dict[str, Any]) -> None:
        """One (atomic) metadata write: the record, the new version and the completion marker; then the old
        version is retired."""
        marker = {"at": datetime.now(timezone.utc).isoformat(), "format": FORMAT}
        self.study.attrs.update({**attrs, "format": FORMAT, "version": self.version, MARKER: marker})
        for name in self.retire:
            discard(self.store_url, f"{self.study_id}/{name}")

