"""Zarr I/O of patch extraction: open a store from a path or fsspec URL, a study's arrays with their checked
grids, and a slab reader that decodes each selection into one reused buffer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from data_contracts.geometry import Geometry
from data_contracts.volume_store import open_study


def open_group(url: str, mode: str = "r") -> zarr.Group:
    """A Zarr group from a local path or an fsspec URL."""
    return zarr.open_group(url.removeprefix("file://") if url.startswith("file://") else url, mode=mode)


@dataclass(frozen=True)
class StudyArrays:
    """The volume arrays a sweep reads (``ct``, ``pet``, ``lesions``) and the grid of each: the CT grid for
    ``ct`` and ``lesions``, the PET's own for ``pet``."""

    arrays: dict[str, zarr.Array]
    grids: dict[str, Geometry]


def study_arrays(volume_store: str, study_id: str) -> StudyArrays:
    """The arrays of a study's current version, opened by ``data_contracts.volume_store.open_study``: its layout
    format, every array's grid attributes and the lesions on the CT grid are checked once, here
    (``VolumeStoreError``, one line naming the group or array, otherwise; ``KeyError`` for an absent or
    incomplete study). The planner takes the grids it returns and never reads the attributes again."""
    stored = open_study(volume_store, study_id)
    return StudyArrays(arrays={"ct": stored.ct, "pet": stored.pet, "lesions": stored.lesions},
                       grids={"ct": stored.geometry, "pet": stored.pet_geometry, "lesions": stored.geometry})


class SlabReader:
    """Reads slabs into one reused buffer (grown to the largest slab): the biggest arrays of the sweep are
    allocated once, not once per row, which keeps the allocator from mapping and faulting in fresh pages.
    A slab is valid until the next read."""

    def __init__(self):
        self.buffer = np.empty(0, np.uint8)

    def read(self, array: zarr.Array, selection: tuple[slice, slice, slice]) -> np.ndarray:
        from zarr.core.buffer.cpu import NDBuffer

        shape = tuple(s.stop - s.start for s in selection)
        nbytes = int(np.prod(shape)) * array.dtype.itemsize
        if self.buffer.size < nbytes:
            self.buffer = np.empty(nbytes, np.uint8)
        out = self.buffer[:nbytes].view(array.dtype).reshape(shape)
        array.get_basic_selection(selection, out=NDBuffer.from_numpy_array(out))
        return out
