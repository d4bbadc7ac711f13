"""The volume store's layout and readers: one Zarr v3 group per ingested study, on a local path or any fsspec URL.

Shared by everyone who reads studies (patch extraction, training's scan positions, serving); ingestion
(``tasks.ingest.store``) writes it. Layout of ``<store>/<study pseudonym>/<version>/`` (``v1``, ``v2``, …: the
study group's ``version`` attribute names the current one; a re-ingest writes the next version beside it,
switches the attribute in one write, then retires the old, so a kill leaves the old study whole):

* ``ct``      int16   HU                     (z, y, x) on the CT grid (or the configured CT spacing)
* ``pet``     float32 SUVbw                  on the PET's own grid (its origin, spacing, direction), or the
                                             configured PET spacing over the PET's field of view
* ``lesions`` uint16  instance labels (0 = background, 1..n = lesions; the ``lesions`` table's ``instance``)
* ``anatomy`` uint8   segmenter class labels of ``data_contracts.segmentation`` (absent when the delivery had
                     none; uint16 in stores written before ingest version 4: read the same)

Each array carries its grid in its attributes (``data_contracts.geometry``): ``ct``, ``lesions`` and
``anatomy`` share the CT grid, ``pet`` has its own; a reader interpolates the PET through its geometry
(``StoredStudy.pet_on``), never by index. The group's attributes hold the study and lesion records and,
written last, the completion marker: a group without it is treated as absent.

Layout formats (the group's ``format``): 1 arrays at the study level; 2 in a version subgroup, PET resampled
onto the CT grid; 3 PET on its own grid. All three read the same way (every array names its grid); a newer
format than this code knows is refused with one line naming the store. ``open_study`` checks each array's
grid attributes against the array (``VolumeStoreError`` on a mismatch) before anyone indexes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import SimpleITK as sitk
import zarr
from zarr.storage import FsspecStore, LocalStore

from data_contracts.errors import PetcapError
from data_contracts.geometry import Geometry
from data_contracts.records import Lesion
from data_contracts.tables import StudyRow

MARKER = "petcap_complete"  # group attribute written last; its presence means the group is whole
FORMAT = 3  # layout version of a study group (1: arrays at the study level; 2: in a version subgroup; 3: native PET)
UNITS = {"ct": "HU", "pet": "SUVbw", "lesions": "instance", "anatomy": "label"}
DTYPES = {"ct": np.int16, "pet": np.float32, "lesions": np.uint16, "anatomy": np.uint8}


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


class VolumeStoreError(PetcapError):
    """A study group this code cannot read as it is (a newer layout, or an array whose grid attributes are bad)."""


def _checked_format(attrs: dict[str, Any], where: str) -> int:
    """The group's layout format (1 when unmarked: the first layout wrote none); refused when newer than ours."""
    found = attrs.get("format", (attrs.get(MARKER) or {}).get("format", 1))
    if not isinstance(found, int) or found < 1 or found > FORMAT:
        raise VolumeStoreError(f"study group has layout format {found!r}; this petcap reads formats 1-{FORMAT}",
                               path=where, reason="unknown_store_format",
                               hint="update petcap to the version that wrote the store, or re-ingest into a new store")
    return found


def array_geometry(array: zarr.Array, where: str) -> Geometry:
    """The grid an array's attributes describe, checked against the array: shape equal to the array's, spacing
    positive, origin finite, direction a 3x3 rotation (orthonormal within 1e-3). Raises ``VolumeStoreError``."""
    try:
        grid = Geometry.from_attrs(dict(array.attrs))
    except (KeyError, TypeError, ValueError) as e:
        raise VolumeStoreError(f"no readable grid in the array's attributes ({type(e).__name__}: {e})", path=where,
                               reason="bad_geometry", hint="re-ingest the study (petcap ingest)") from None
    direction = np.asarray(grid.direction, dtype=float)
    problem = None
    if grid.shape != tuple(array.shape):
        problem = f"attribute shape {grid.shape} differs from the array's {tuple(array.shape)}"
    elif len(grid.spacing) != 3 or not all(np.isfinite(grid.spacing)) or min(grid.spacing) <= 0:
        problem = f"spacing {grid.spacing} is not three positive numbers"
    elif len(grid.origin) != 3 or not all(np.isfinite(grid.origin)):
        problem = f"origin {grid.origin} is not three finite numbers"
    elif direction.size != 9 or not np.allclose(direction.reshape(3, 3) @ direction.reshape(3, 3).T, np.eye(3),
                                                atol=1e-3):
        problem = f"direction {grid.direction} is not a 3x3 rotation"
    if problem:
        raise VolumeStoreError(problem, path=where, reason="bad_geometry", hint="re-ingest the study (petcap ingest)")
    return grid


@dataclass
class StoredStudy:
    """Lazy handles on one complete study group; slice the arrays to read patches."""

    study_id: str
    ct: zarr.Array
    pet: zarr.Array
    lesions: zarr.Array
    anatomy: zarr.Array | None
    geometry: Geometry  # grid of ct, lesions, anatomy
    pet_geometry: Geometry  # the PET's own grid (format >= 3); the CT grid or a configured spacing before
    attrs: dict[str, Any]

    @property
    def study(self) -> StudyRow:
        return StudyRow.model_validate(self.attrs["study"])

    @property
    def lesion_records(self) -> list[Lesion]:
        return [Lesion.model_validate(r) for r in self.attrs["lesions"]]

    def pet_on(self, grid: Geometry) -> np.ndarray:
        """The PET (SUVbw, float32, (z, y, x)) linearly interpolated onto ``grid`` (e.g. ``self.geometry`` for a
        voxel-by-voxel comparison with the CT); 0 outside the PET's field of view. Reads the whole PET."""
        pet = np.asarray(self.pet[...], dtype=np.float32)
        if self.pet_geometry.same_grid(grid):
            return pet
        return sitk.GetArrayFromImage(grid.resample(self.pet_geometry.image(pet), sitk.sitkLinear,
                                                    sitk.sitkFloat32, 0.0))


def open_study(store_url: str, study_id: str) -> StoredStudy:
    """Open a complete study group read-only, its layout format and array grids checked.

    Raises KeyError if it is absent or was never completed, ``VolumeStoreError`` if it cannot be read as it is.
    """
    root = open_root(store_url)
    attrs = completed(store_url, study_id) if root is not None else None
    if attrs is None:
        raise KeyError(f"study {study_id} is not (completely) in the store {store_url}")
    where = f"{store_url}/{study_id}"
    _checked_format(attrs, where)
    group = arrays_group(root[study_id])
    arrays = {name: group[name] for name in UNITS if name in group}
    missing = [name for name in ("ct", "pet", "lesions") if name not in arrays]
    if missing:
        raise VolumeStoreError(f"complete study group lacks the array(s) {missing}", path=where,
                               reason="missing_array", hint="re-ingest the study (petcap ingest)")
    grids = {name: array_geometry(array, f"{where}/{name}") for name, array in arrays.items()}
    for name in ("lesions", "anatomy"):
        if name in grids and not grids[name].same_grid(grids["ct"]):
            raise VolumeStoreError(f"{name} is not on the CT grid: {grids[name].describe_difference(grids['ct'])}",
                                   path=f"{where}/{name}", reason="bad_geometry",
                                   hint="re-ingest the study (petcap ingest)")
    return StoredStudy(
        study_id=study_id, ct=arrays["ct"], pet=arrays["pet"], lesions=arrays["lesions"],
        anatomy=arrays.get("anatomy"), geometry=grids["ct"], pet_geometry=grids["pet"], attrs=attrs,
    )
