"""The volume store: one Zarr v3 group per ingested study, on a local path or any fsspec URL.

Layout of ``<store>/<study pseudonym>/``:

* ``ct``      int16   HU                     (z, y, x) on the CT grid (or the configured CT spacing)
* ``pet``     float32 SUVbw                  on the CT grid by default, or on the configured PET spacing
* ``lesions`` uint16  instance labels (0 = background, 1..n = lesions; the ``lesions`` table's ``instance``)
* ``anatomy`` uint16  segmenter class labels of ``data_contracts.segmentation`` (absent when the delivery had none)

Every array carries its own grid in its attributes (``shape`` (z, y, x); ``spacing`` and ``origin`` (x, y, z) mm
LPS; ``direction`` row-major 3x3 — ITK order, see ``tasks.ingest.geometry``) and ``units``. The group's
attributes hold the study record, its lesion records, vendor, tracer, the content hash of the raw inputs, the
ingestion recipe, the taxonomy/anatomy versions, and — written last, in the same write — the completion
marker. A group without the marker is an interrupted write: readers treat it as absent, ingestion rewrites it.

Arrays are chunked (``settings.ingest.chunks``) and compressed, so later stages read patches without loading
whole volumes: ``open_study`` returns lazy ``zarr.Array`` handles.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import Any

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec
from zarr.core.sync import sync
from zarr.storage import FsspecStore, LocalStore

from data_contracts import segmentation, taxonomy
from data_contracts.records import Lesion
from data_contracts.settings import IngestSettings
from data_contracts.tables import StudyRow
from tasks.ingest.geometry import Geometry

MARKER = "petcap_complete"  # group attribute written last; its presence means the group is whole
FORMAT = 1  # layout version of a study group
UNITS = {"ct": "HU", "pet": "SUVbw", "lesions": "instance", "anatomy": "label"}
DTYPES = {"ct": np.int16, "pet": np.float32, "lesions": np.uint16, "anatomy": np.uint16}


@cache
def taxonomy_version() -> str:
    """A content hash of the taxonomy (ids, names, structures): changes exactly when the categories do."""
    items = [(loc.id, loc.name, list(loc.structures)) for loc in taxonomy.locations()]
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:12]


@cache
def anatomy_version() -> str:
    """A content hash of the segmenter class set (label = index + 1 of these names)."""
    return hashlib.sha256(json.dumps(list(segmentation.CLASSES)).encode()).hexdigest()[:12]


def _store(store_url: str, read_only: bool = False) -> zarr.abc.store.Store:
    """LocalStore for plain paths (and file:// URLs), FsspecStore for every other fsspec URL."""
    url = str(store_url)
    if "://" in url and not url.startswith("file://"):
        return FsspecStore.from_url(url, read_only=read_only)
    return LocalStore(url.removeprefix("file://"), read_only=read_only)


def open_root(store_url: str, writable: bool = False) -> zarr.Group | None:
    """The store's root group; None when reading a store that does not exist yet."""
    if writable:
        try:
            return zarr.open_group(_store(store_url), mode="a", zarr_format=3)
        except zarr.errors.ContainsGroupError:  # another worker created the root between check and create
            return zarr.open_group(_store(store_url), mode="r+", zarr_format=3)
    try:
        return zarr.open_group(_store(store_url, read_only=True), mode="r", zarr_format=3)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None


def completed(store_url: str, study_id: str) -> dict[str, Any] | None:
    """The attributes of a complete study group, or None if absent or interrupted."""
    root = open_root(store_url)
    if root is None:
        return None
    try:
        group = root[study_id]
    except KeyError:
        return None
    attrs = dict(group.attrs)
    return attrs if isinstance(group, zarr.Group) and attrs.get(MARKER) else None


def list_studies(store_url: str) -> list[str]:
    """Pseudonymous ids of the complete study groups, sorted."""
    root = open_root(store_url)
    if root is None:
        return []
    return sorted(k for k, g in root.groups() if dict(g.attrs).get(MARKER))


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
    """Writes one study group: any old group is removed, arrays are written, the marker comes last."""

    def __init__(self, store_url: str, study_id: str, settings: IngestSettings):
        discard(store_url, study_id)  # an old or interrupted group, including chunks without metadata
        root = open_root(store_url, writable=True)
        self.group = root.create_group(study_id, attributes={"format": FORMAT})
        self.settings = settings

    def create(self, name: str, geometry: Geometry) -> zarr.Array:
        """An empty (all-zero, nothing stored yet) array on ``geometry``; fill it by slices."""
        chunks = tuple(min(c, s) for c, s in zip(self.settings.chunks, geometry.shape))
        return self.group.create_array(
            name, shape=geometry.shape, dtype=DTYPES[name], chunks=chunks, fill_value=0,
            compressors=compressors(self.settings), dimension_names=("z", "y", "x"),
            attributes={"units": UNITS[name], **geometry.to_attrs()},
        )

    def commit(self, attrs: dict[str, Any]) -> None:
        """Write the group attributes with the completion marker in one (atomic) metadata write."""
        marker = {"at": datetime.now(timezone.utc).isoformat(), "format": FORMAT}
        self.group.attrs.update({**attrs, "format": FORMAT, MARKER: marker})


@dataclass
class StoredStudy:
    """Lazy handles on one complete study group; slice the arrays to read patches."""

    study_id: str
    ct: zarr.Array
    pet: zarr.Array
    lesions: zarr.Array
    anatomy: zarr.Array | None
    geometry: Geometry  # grid of ct, lesions, anatomy
    pet_geometry: Geometry  # equals ``geometry`` unless a PET spacing was configured
    attrs: dict[str, Any]

    @property
    def study(self) -> StudyRow:
        return StudyRow.model_validate(self.attrs["study"])

    @property
    def lesion_records(self) -> list[Lesion]:
        return [Lesion.model_validate(r) for r in self.attrs["lesions"]]


def open_study(store_url: str, study_id: str) -> StoredStudy:
    """Open a complete study group read-only. Raises KeyError if it is absent or was never completed."""
    root = open_root(store_url)
    attrs = completed(store_url, study_id) if root is not None else None
    if attrs is None:
        raise KeyError(f"study {study_id} is not (completely) in the store {store_url}")
    group = root[study_id]
    arrays = {name: group[name] for name in UNITS if name in group}
    return StoredStudy(
        study_id=study_id, ct=arrays["ct"], pet=arrays["pet"], lesions=arrays["lesions"],
        anatomy=arrays.get("anatomy"), geometry=Geometry.from_attrs(dict(arrays["ct"].attrs)),
        pet_geometry=Geometry.from_attrs(dict(arrays["pet"].attrs)), attrs=attrs,
    )
