"""Lesion-centred patches cut from chunked volumes: linear resampling that decodes each chunk once per study.

This module is what a Dask worker runs (``extract_study``): the sweep over one study and the two entry points
(``extract_study`` writes to the patch store, ``compute_study`` returns the patches). Its parts, one concern
each: ``interpolation`` (the patch lattice and the linear kernels), ``job`` (what a worker is asked and
answers), ``sweep_plan`` (which rows each patch needs, and how planes are shared), ``volume_io`` (zarr reads,
grids checked), ``worker_process`` (decoding threads, handing memory back).

Geometry. A patch is a grid of ``FieldOfView.size`` voxels (z, y, x) at ``FieldOfView.spacing`` (x, y, z mm),
axis-aligned in LPS (identity direction: +x patient left, +y posterior, +z superior, whatever the scanner's
orientation), centred on the lesion centroid *snapped to the lattice of that spacing* (voxel centres at
integer multiples of the spacing in LPS millimetres): the patch centre lies within half a patch voxel of the
centroid (2 mm for the localizer, 0.75 mm for the captioner by default), and all patches of one kind share
one lattice, so overlapping patches share their interpolation work. Each channel is sampled from its volume
array exactly as SimpleITK's ``Resample`` with a linear interpolator samples it: a point whose continuous
index lies in [-0.5, n - 0.5) (ITK's "inside buffer": within half a voxel) takes the trilinear value with indices
clamped to the volume; a point further out takes the pad value (CT: ``ct_pad`` HU, air; PET: 0; mask: 0).
So a patch equals SimpleITK resampling of the whole volume onto the patch grid, without loading the volume.
Every array is sampled through its own grid: the PET, stored on its native grid, is interpolated once, straight
onto the patch grid.

Channels: 0 CT (HU), 1 PET (SUV), 2 the mask of *this* lesion instance only: the indicator (label ==
instance) is interpolated linearly and thresholded at 0.5, giving 0/1; other instances are 0 in the mask
channel (their CT and PET stay visible). When the lesion is smaller than a patch voxel, so that no voxel
reaches 0.5, the voxel with the highest interpolated value is set to 1: a lesion inside the field of view
never has an empty mask.

How it reads. A volume whose axes are parallel to LPS (any flips or permutations, as scanners and NIfTI
writers produce) makes trilinear interpolation separable: each source axis maps onto one patch axis, and a
patch needs, per source axis, only the two neighbours of each of its sample positions (``AxisMap``). A study
is swept once along the slowest stored axis, one chunk row at a time, across all its lesions, both fields of
view and all three arrays together: each row of chunks (only the columns some patch needs) is decoded once.
Patches of one kind whose boxes overlap form a ``GroupPlan`` on their shared lattice: each patch plane along
the slowest axis is computed once for the group, as soon as the row holding its second source slice is read —
the two source slices blended (a contiguous pass), then interpolated along the two in-plane axes onto the
union of the boxes of the patches containing that plane — and each patch stores its crop. The mask channel
reads only the lesion's bounding box of the label array (the indicator is 0 elsewhere). Oblique volumes
(direction not a signed permutation) take the general path (``BlockPlan``): the bounding block of the
patch's sample points is read and interpolated with ``scipy.ndimage.map_coordinates``.

Memory: one slab (a reused buffer), a few shared planes and the patches in progress (~6 MB per lesion at
the default sizes; a study with more than ``max_open`` lesions is swept in batches along z), whatever the
volume's length; a patch is written to the patch store as soon as its last row is done. Measured
(``benchmarks/patches.py``, its ``rss`` child on one full-scale study: CT 427 x 512 x 512, PET on its own
285 x 220 x 220 grid, 0.50 GB decoded with the labels, 21 lesions): peak RSS 396 MB, of which 217 MB is the
worker's imports (SimpleITK, pandas, zarr), so ~180 MB for the sweep. The earlier "~260 MB peak for 1.96 GB
decoded volumes, the same at twice the volume's length" was measured on the format-2 layout (PET on the CT
grid) and has not been re-measured at twice the length since.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from tasks.patches.interpolation import FieldOfView, _span_columns  # noqa: F401 - FieldOfView re-exported
from tasks.patches.job import ARRAYS, CHANNELS, UNITS, Request, StudyDone, StudyJob  # noqa: F401 - re-exported
from tasks.patches.sweep_plan import BlockPlan, _chunks_in, plan_study, sweep_events
from tasks.patches.volume_io import SlabReader, StudyArrays, open_group, study_arrays
from tasks.patches.worker_process import limit_threads, release_free_memory


def sweep(job: StudyJob, on_patch) -> tuple[int, int]:
    """Compute every patch of ``job``; ``on_patch(request, {fov name: (3, z, y, x) array})`` as each
    completes. Returns (chunks decoded, slabs read).

    The study is opened once (layout format and grids checked: ``VolumeStoreError`` otherwise). A study with
    more than ``job.max_open`` lesions is swept in batches of lesions neighbouring along z, which bounds the
    patches held in memory at the cost of decoding the chunks shared by two batches twice.
    """
    study = study_arrays(job.volume_store, job.study_id)  # the current version, grids checked
    if len(job.requests) <= job.max_open:
        return _sweep(job, study, on_patch)
    ordered = sorted(job.requests, key=lambda r: (r.centre_mm[2], r.row))
    chunks = slabs = 0
    for i in range(0, len(ordered), job.max_open):
        c, n = _sweep(dataclasses.replace(job, requests=tuple(ordered[i:i + job.max_open])), study, on_patch)
        chunks, slabs = chunks + c, slabs + n
    return chunks, slabs


def _sweep(job: StudyJob, study: StudyArrays, on_patch) -> tuple[int, int]:
    arrays = study.arrays
    plan = plan_study(job, study.grids)
    pending = list(range(len(job.requests)))
    chunks = slabs = 0
    reader = SlabReader()

    def flush() -> None:
        nonlocal pending
        left = []
        for i in pending:
            parts = plan.parts[i]
            if all(p.finished for p in parts.values()):
                for p in parts.values():
                    p.result()  # finalises the channel in place (the mask's one-voxel rule)
                parts.clear()
                on_patch(job.requests[i], {name: buffer.array for name, buffer in plan.patches[i].items()})
                plan.patches[i] = {}  # the patch leaves memory once handed over
            else:
                left.append(i)
        pending = left

    flush()
    for _, _, _, name, what in sweep_events(plan, arrays, study.grids):
        array = arrays[name]
        if isinstance(what, BlockPlan):
            chunks += what.read(array)
            slabs += 1
            flush()
            continue
        cz = array.chunks[0]
        z0, z1 = what * cz, min((what + 1) * cz, array.shape[0])
        work = []
        for g in plan.groups:
            if g.array == name:
                active = g.active(what)
                if active:
                    work.append((g, active, *g.box(active)))
        if not work:
            continue
        y0, y1 = min(w[3][0][0] for w in work), max(w[3][0][1] for w in work)
        x0, x1 = min(w[3][1][0] for w in work), max(w[3][1][1] for w in work)
        slab = reader.read(array, (slice(z0, z1), slice(y0, y1), slice(x0, x1)))  # each chunk decoded once
        chunks += _chunks_in(array, (z0, y0, x0), (z1, y1, x1))
        slabs += 1
        for g, active, spans, cols in work:
            g.feed(slab, z0, y0, x0, active, spans, cols)
        del slab
        flush()
    if pending:  # cannot happen: every plan is fed every row it reads
        raise RuntimeError(f"study {job.study_id}: {len(pending)} patches left incomplete by the sweep")
    return chunks, slabs


def extract_study(job: StudyJob) -> StudyDone:
    """The Dask task: cut every requested patch of one study and write each to its patch store row.

    A row is written whole (one chunk per sample and field of view) as soon as its patch is complete; the
    caller registers the rows in the sample table only after this returns.
    """
    limit_threads(job.threads)
    t0 = time.perf_counter()
    store = open_group(job.patch_store, mode="r+")
    targets = {fov.name: store[fov.name] for fov in job.fovs}
    rows: list[int] = []

    def write(request: Request, out: dict[str, np.ndarray]) -> None:
        for name, patch in out.items():
            targets[name][request.row] = patch
        rows.append(request.row)

    chunks, slabs = sweep(job, write)
    release_free_memory()
    return StudyDone(job.study_id, tuple(sorted(rows)), time.perf_counter() - t0, chunks, slabs)



def compute_study(job: StudyJob) -> dict[int, dict[str, np.ndarray]]:
    """Every patch of ``job`` in memory, by request row (tests and benchmarks; no patch store)."""
    out: dict[int, dict[str, np.ndarray]] = {}
    sweep(job, lambda request, patches: out.__setitem__(request.row, patches))
    return out


def touched_chunks(job: StudyJob) -> dict[str, set[tuple[int, int, int]]]:
    """The chunks of each volume array that the patches of ``job`` need (the benchmark's decode floor)."""
    study = study_arrays(job.volume_store, job.study_id)  # the current version, grids checked
    arrays, plan = study.arrays, plan_study(job, study.grids)
    out: dict[str, set[tuple[int, int, int]]] = {name: set() for name in ARRAYS}
    for g in plan.groups:
        c = arrays[g.array].chunks
        for mem in g.members:
            if mem.finished:
                continue
            ranges = [np.unique(mem.needed0 // c[0]).tolist()]
            ranges += [np.unique(_span_columns(g.maps[a], mem.span[a]) // c[a]).tolist() for a in (1, 2)]
            out[g.array].update((a, b, d) for a in ranges[0] for b in ranges[1] for d in ranges[2])
    for block in plan.blocks:
        if block.box is not None:
            c = arrays[block.array].chunks
            lo, hi = block.box
            ranges = [range(lo[a] // c[a], (hi[a] - 1) // c[a] + 1) for a in range(3)]
            out[block.array].update((a, b, d) for a in ranges[0] for b in ranges[1] for d in ranges[2])
    return out
