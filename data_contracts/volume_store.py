"""The volume store's layout and readers: one Zarr v3 group per ingested study, on a local path or any fsspec URL.

Shared by everyone who reads studies (patch extraction, training's scan positions, serving); ingestion
(``tasks.ingest.store``) writes it. Layout of ``<store>/<study pseudonym>/<version>/`` (``v1``, ``v2``, …: the
study group's ``version`` attribute names the current one; a re-ingest writes the next version beside it,
switches the attribute in one write, then retires the old, so a kill leaves the old study whole):

* ``ct``      int16   HU                     (z, y, x) on the CT grid (or the configured CT spacing)
* ``pet``     float32 SUVbw                  on the CT grid by default, or on the configured PET spacing
* ``lesions`` uint16  instance labels (0 = background, 1..n = lesions; the ``lesions`` table's ``instance``)
* ``anatomy`` uint16  structure labels of ``data_contracts.anatomy`` (absent when the delivery had none)

Each array carries its grid in its attributes (``data_contracts.geometry``); the group's attributes hold the
study and lesion records and, written last, the completion marker: a group without it is treated as absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import zarr
from zarr.storage import FsspecStore, LocalStore

from data_contracts.geometry import Geometry
from data_contracts.records import Lesion
from data_contracts.tables import StudyRow

MARKER = "petcap_complete"  # group attribute written last; its presence means the group is whole
FORMAT = 2  # layout version of a study group (1: arrays at the study level; 2: in a version subgroup)
UNITS = {"ct": "HU", "pet": "SUVbw", "lesions": "instance", "anatomy": "label"}
DTYPES = {"ct": np.int16, "pet": np.float32, "lesions": np.uint16, "anatomy": np.uint16}


def zarr_store(store_url: str, read_only: bool = False) -> zarr.abc.store.Store:
    """LocalStore for plain paths (and file:// URLs), FsspecStore for every other fsspec URL."""
    url = str(store_url)
    if "://" in url and not url.startswith("file://"):
        return FsspecStore.from_url(url, read_only=read_only)
    return LocalStore(url.removeprefix("file://"), read_only=read_only)


def open_root(store_url: str, writable: bool = False) -> zarr.Group | None:
    """The store's root group; None when reading a store that does not exist yet."""
    if writable:
        try:
            return zarr.open_group(zarr_store(store_url), mode="a", zarr_format=3)
        except zarr.errors.ContainsGroupError:  # another worker created the root between check and create
            return zarr.open_group(zarr_store(store_url), mode="r+", zarr_format=3)
    try:
        return zarr.open_group(zarr_store(store_url, read_only=True), mode="r", zarr_format=3)
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


def arrays_group(group: zarr.Group) -> zarr.Group:
    """The group holding a complete study's arrays: its current version (format 2) or itself (format 1)."""
    version = dict(group.attrs).get("version")
    return group[version] if version else group


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
    group = arrays_group(root[study_id])
    arrays = {name: group[name] for name in UNITS if name in group}
    return StoredStudy(
        study_id=study_id, ct=arrays["ct"], pet=arrays["pet"], lesions=arrays["lesions"],
        anatomy=arrays.get("anatomy"), geometry=Geometry.from_attrs(dict(arrays["ct"].attrs)),
        pet_geometry=Geometry.from_attrs(dict(arrays["pet"].attrs)), attrs=attrs,
    )
