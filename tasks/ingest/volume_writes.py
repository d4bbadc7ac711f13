"""Writing a study's volumes into its store arrays: whole, resampled slab by slab, or streamed while read.

``write_volume`` fills an array from an image: one write when the image lies on the array's grid (zarr
compresses all chunks in parallel), otherwise slab by slab, each slab resampled on a helper thread while the
last is compressed. ``SlabWriter`` is the reader's ``on_slab``: it writes the CT's slabs as they are inflated.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import SimpleITK as sitk
import zarr

from data_contracts.geometry import Geometry

SLAB_CHUNKS = 2  # chunk rows along z per slab (resampled or streamed)


class SlabWriter:
    """Writes the CT into its array slab by slab while the reader inflates it (``read_ct``'s ``on_slab``), on the
    study's pool: the compression overlaps the inflation. Slabs are whole chunk rows along z, so every chunk
    is written by exactly one slab. A slab of another dtype than the array's (a CT converted after the read)
    is not written; ``complete`` then says False and the caller writes the converted CT."""

    def __init__(self, array: zarr.Array, pool: ThreadPoolExecutor):
        self.array, self.pool = array, pool
        self.rows = array.chunks[0] * SLAB_CHUNKS
        self.futures: list[Future] = []
        self.written = 0  # slices handed to a write

    def __call__(self, z0: int, z1: int, slab: np.ndarray) -> None:
        if slab.dtype != self.array.dtype or z0 != self.written:
            return
        self.futures.append(self.pool.submit(self.array.__setitem__, slice(z0, z1), slab))
        self.written = z1

    def complete(self) -> bool:
        """Wait for the slab writes; whether they covered the whole array."""
        for future in self.futures:
            future.result()
        return self.written == self.array.shape[0]


def _slabs(image: sitk.Image, grid: Geometry, step: int, interpolator: int,
           default: float) -> Iterator[tuple[int, int, np.ndarray]]:
    """(z0, z1, float32 array) slabs of ``image`` resampled onto ``grid``, ``step`` slices at a time."""
    nz, ny, nx = grid.shape
    for z0 in range(0, nz, step):
        z1 = min(z0 + step, nz)
        slab = grid.crop((z0, 0, 0), (z1, ny, nx)).resample(image, interpolator, sitk.sitkFloat32, default)
        yield z0, z1, sitk.GetArrayFromImage(slab)


def write_volume(array: zarr.Array, image: sitk.Image, grid: Geometry, interpolator: int, default: float) -> None:
    """Fill ``array`` from ``image``. Same grid: one write (zarr compresses all chunks in parallel).
    Other grid: slab by slab, the next slab resampled on a helper thread while this one is compressed."""
    if Geometry.of(image).same_grid(grid):
        view = sitk.GetArrayViewFromImage(image)
        array[...] = view if view.dtype == array.dtype else view.astype(array.dtype)
        return
    dtype = array.dtype
    step = array.chunks[0] * SLAB_CHUNKS
    slabs = _slabs(image, grid, step, interpolator, default)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-resample") as prefetch:
        pending = prefetch.submit(next, slabs, None)
        while (item := pending.result()) is not None:
            pending = prefetch.submit(next, slabs, None)
            z0, z1, slab = item
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                slab = np.clip(np.rint(slab), info.min, info.max)
            array[z0:z1] = slab.astype(dtype, copy=False)
