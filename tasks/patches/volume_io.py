"""Zarr I/O of patch extraction: open a store from a path or fsspec URL, a study's arrays with their grids
checked, and a slab reader that decodes each selection into one reused buffer."""

from __future__ import annotations

import numpy as np
import zarr

from data_contracts.volume_store import array_geometry, arrays_group
from tasks.patches.job import ARRAYS


def open_group(url: str, mode: str = "r") -> zarr.Group:
    """A Zarr group from a local path or an fsspec URL."""
    return zarr.open_group(url.removeprefix("file://") if url.startswith("file://") else url, mode=mode)



def study_arrays(volume_store: str, study_id: str) -> dict[str, zarr.Array]:
    """The ct, pet and lesions arrays of a study's current version, each one's grid attributes checked against
    it (``data_contracts.volume_store.VolumeStoreError`` names the array otherwise): the PET may lie on its own
    grid, and the planner trusts what each array says."""
    group = arrays_group(open_group(volume_store)[study_id])
    arrays = {name: group[name] for name in ARRAYS}
    for name, array in arrays.items():
        array_geometry(array, f"{volume_store}/{study_id}/{name}")
    return arrays


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
