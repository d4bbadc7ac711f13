"""The sweep planner: which chunk rows of which volume array each patch needs, and how each plane is computed.

A volume whose axes are parallel to LPS makes trilinear interpolation separable: per source axis, a patch
needs only the two neighbours of each sample position (``AxisMap``). Patches of one kind whose boxes overlap
form a ``GroupPlan`` on their shared lattice: each patch plane along the slowest stored axis is computed once
for the group, as soon as the chunk row holding its second source slice is read (the two source slices
blended, then interpolated along the in-plane axes onto the union of the boxes of the patches containing that
plane), and each patch (``Member``) stores its crop. The mask channel reads only the lesion's bounding box.
Oblique volumes take ``BlockPlan`` (the bounding block, ``scipy.ndimage.map_coordinates``). ``plan_study``
makes every plan of a study; ``sweep_events`` orders their reads along the body. Each array is planned on its
own grid, so the PET (on its native grid) and the CT grid arrays are read side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import zarr

from data_contracts.geometry import Geometry
from tasks.patches.interpolation import (
    AxisMap,
    FieldOfView,
    _blend,
    _interp,
    _span_range,
)
from tasks.patches.job import ARRAYS, CHANNELS, SOURCE, StudyJob

MASK_THRESHOLD = 0.5
PLANES_PER_PASS = 8  # patch planes interpolated together: bounds the float32 temporaries to a few MB


class PatchBuffer:
    """One patch (channels, z, y, x) in the storage dtype, allocated on first use and filled with the pad
    values, so that memory holds only the patches in progress, not every patch of the study."""

    def __init__(self, size: tuple[int, int, int], dtype: np.dtype, pads: tuple[float, ...]):
        self.size, self.dtype, self.pads = size, dtype, pads
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.empty((len(self.pads), *self.size), self.dtype)
            for c, pad in enumerate(self.pads):
                self._array[c] = pad
        return self._array


class Member:
    """One patch channel inside a ``GroupPlan``: where it lies in the group, and what is left to fill.

    Positions are counted along the group's axis maps: ``span[a]`` are this patch's positions on source axis
    ``a`` that lie inside the volume; ``local`` the same as patch indices (in source axis order).
    """

    def __init__(self, start: np.ndarray, patch: PatchBuffer, channel: int, maps: list[AxisMap],
                 instance: int | None):
        self.perm = tuple(m.patch_axis for m in maps)  # patch axis of each source axis
        self.instance = instance
        self.patch, self.channel = patch, channel
        self.span, local = [], []
        for m in maps:
            s, n = int(start[m.patch_axis]), patch.size[m.patch_axis]
            vs = max(s, m.valid.start)
            ve = max(min(s + n, m.valid.stop), vs)
            self.span.append((vs, ve))
            local.append(slice(vs - s, ve - s))
        self.local = tuple(local)
        m0 = maps[0]
        k = np.arange(*self.span[0]) - m0.valid.start  # this patch's positions in ``m0``'s arrays
        self.first, self.last = (int(k[0]), int(k[-1])) if k.size else (0, -1)
        need = (m0.wlo[k] > 0) | (m0.whi[k] > 0)  # positions that read data (others stay pad / 0)
        empty = any(ve <= vs for vs, ve in self.span) or any(
            _span_range(maps[a], self.span[a]) is None for a in (1, 2))
        self.pending = set() if empty else set(k[need].tolist())  # positions along source axis 0 to fill
        self.needed0 = (np.zeros(0, np.int64) if empty else
                        np.union1d(m0.lo[k][m0.wlo[k] > 0], m0.hi[k][m0.whi[k] > 0]))  # source slices
        self.row_set: set[int] = set()  # chunk rows it reads (set by ``GroupPlan.rows``)
        self.best: tuple[float, tuple | None] = (0.0, None)  # mask: highest interpolated value, where
        self.hit = False  # mask: some voxel reached the threshold
        self._buf: np.ndarray | None = None

    @property
    def finished(self) -> bool:
        return not self.pending

    @property
    def buf(self) -> np.ndarray:
        """This channel of the patch in source axis order (a view; allocates the patch on first use)."""
        if self._buf is None:
            self._buf = self.patch.array[self.channel].transpose(self.perm)
        return self._buf

    def store(self, ks: list[int], planes: np.ndarray, m0: AxisMap) -> None:
        """Patch planes at positions ``ks`` (ascending, of ``m0``: source axis 0), cropped to this patch."""
        idx = np.asarray(ks) + (m0.valid.start - self.span[0][0] + self.local[0].start)  # patch indices
        if self.instance is not None:
            at = int(np.argmax(planes))
            if planes.flat[at] > self.best[0]:
                j, jy, jx = np.unravel_index(at, planes.shape)
                self.best = (float(planes.flat[at]), (int(idx[j]), self.local[1].start + jy, self.local[2].start + jx))
            planes = planes >= MASK_THRESHOLD
            self.hit = self.hit or bool(planes.any())
        if idx[-1] - idx[0] + 1 == idx.size:
            self.buf[idx[0]:idx[-1] + 1, self.local[1], self.local[2]] = planes
        else:
            self.buf[idx, self.local[1], self.local[2]] = planes
        self.pending.difference_update(ks)

    def result(self) -> None:
        """Finalise the channel (the mask's one-voxel rule)."""
        if self.instance is not None and self.best[1] is not None and not self.hit:
            self.buf[self.best[1]] = 1  # a lesion smaller than a patch voxel keeps one voxel


class GroupPlan:
    """One channel of a set of overlapping patches of one kind, on a separable grid.

    The axis maps run over the group's lattice box. Each patch plane along source axis 0 is computed once for
    the group, when the chunk row holding its second source slice is read: its two source slices are
    blended (the cheap, contiguous pass), then interpolated along axes 1 and 2 onto the union of the boxes of
    the patches that contain that plane; each patch stores its crop. A slice needed by a plane of the next
    row is carried over (only the columns the group reads).
    """

    def __init__(self, array: str, grid: Geometry, fov: FieldOfView, starts: list[np.ndarray],
                 patches: list[PatchBuffer], channel: int, instance: int | None = None, window=None):
        self.array = array
        g0 = np.min(starts, axis=0)  # (z, y, x) lattice box of the group
        g1 = np.max(starts, axis=0) + np.asarray(fov.size)
        minv = np.linalg.inv(grid.matrix)  # LPS offset -> (x, y, z) index
        origin = np.asarray(grid.origin)
        self.maps = []
        for axis in range(3):  # source array axis
            i = 2 - axis  # its (x, y, z) index
            m = int(np.argmax(np.abs(minv[i])))  # the one LPS axis it depends on
            b = 2 - m  # the patch axis it runs along
            mm = np.arange(g0[b], g1[b]) * fov.spacing[m]
            q = minv[i, m] * (mm - origin[m])
            self.maps.append(AxisMap.build(q, grid.shape[axis], b, None if window is None else window[axis]))
        self.members = [Member(st - g0, patch, channel, self.maps, instance) for st, patch in zip(starts, patches)]
        self.instance, self.dtype = instance, patches[0].dtype
        self.carry: dict[int, tuple[np.ndarray, int, int]] = {}  # source slice -> (2-D, row start, col start)

    def rows(self, chunk: int) -> set[int]:
        """Chunk rows (along source axis 0) that the unfinished patches read."""
        out: set[int] = set()
        for mem in self.members:
            mem.row_set = set() if mem.finished else set((mem.needed0 // chunk).tolist())
            out |= mem.row_set
        return out

    def active(self, row: int) -> list[Member]:
        return [mem for mem in self.members if not mem.finished and row in mem.row_set]

    def _columns(self, members: list[Member]) -> tuple[tuple[int, int], tuple[int, int], list[tuple[int, int]]]:
        """Source rows and columns [start, stop) the planes of ``members`` read, and their position box."""
        spans = [(min(m.span[a][0] for m in members), max(m.span[a][1] for m in members)) for a in (1, 2)]
        out = []
        for a, span in zip((1, 2), spans):
            out.append(_span_range(self.maps[a], span))
        return out[0], out[1], spans

    def box(self, active: list[Member]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The position box of ``active`` (axes 1, 2) and the source columns it reads: what the slab must hold."""
        rows, cols, spans = self._columns(active)
        return spans, [rows, cols]

    def feed(self, slab: np.ndarray, z0: int, y0: int, x0: int, active: list[Member], spans, cols) -> None:
        """Compute every plane of ``active`` patches whose source slices are now in ``slab`` or carried."""
        z1 = z0 + slab.shape[0]
        m0 = self.maps[0]
        (ya, yb), (xa, xb) = cols
        region = slab[:, ya - y0:yb - y0, xa - x0:xb - x0]  # a view: the columns this group reads
        inside, straddle = set(), set()
        for mem in active:
            for k in mem.pending:
                lo_ok = m0.wlo[k] == 0 or z0 <= m0.lo[k] < z1
                hi_ok = m0.whi[k] == 0 or z0 <= m0.hi[k] < z1
                if lo_ok and hi_ok:
                    inside.add(k)
                elif (lo_ok or m0.lo[k] in self.carry) and (hi_ok or m0.hi[k] in self.carry):
                    straddle.add(k)
        if inside:  # the planes with both slices in this row: vectorised passes, a few planes at a time
            ks = np.array(sorted(inside))
            members = [mem for mem in active if not mem.pending.isdisjoint(inside)]
            (r0, r1), (c0, c1), (sy, sx) = self._columns(members)
            part = region[:, r0 - ya:r1 - ya, c0 - xa:c1 - xa]
            if self.instance is not None:
                part = part == self.instance
            for i in range(0, ks.size, PLANES_PER_PASS):
                batch = ks[i:i + PLANES_PER_PASS]
                self._finish(_blend(part, m0, batch, z0), batch, members, (r0, c0), (sy, sx))
        for k in sorted(straddle):  # a plane with one slice carried from the previous row
            members = [mem for mem in active if k in mem.pending]
            (r0, r1), (c0, c1), (sy, sx) = self._columns(members)
            plane = None
            for z, w in ((int(m0.lo[k]), m0.wlo[k]), (int(m0.hi[k]), m0.whi[k])):
                if w == 0:
                    continue
                data, dr, dc = (region[z - z0], ya, xa) if z0 <= z < z1 else self.carry[z]
                part = data[r0 - dr:r1 - dr, c0 - dc:c1 - dc]
                if self.instance is not None:
                    part = part == self.instance
                plane = np.multiply(part, w, dtype=np.float32) if plane is None else plane + part * w
            self._finish(plane[None], np.array([k]), members, (r0, c0), (sy, sx))
        # carry this row's slices that planes of later rows still need; forget the rest
        still: set[int] = set()
        for mem in active:  # only patches that read this row can need its slices later
            if mem.pending:
                k = np.fromiter(mem.pending, np.int64, len(mem.pending))
                still.update(m0.lo[k][m0.wlo[k] > 0].tolist())
                still.update(m0.hi[k][m0.whi[k] > 0].tolist())
        self.carry = {z: v for z, v in self.carry.items() if z in still}
        for z in still:
            if z0 <= z < z1 and z not in self.carry:
                self.carry[z] = (region[z - z0].copy(), ya, xa)

    def _finish(self, planes: np.ndarray, ks: np.ndarray, members: list[Member], start: tuple[int, int],
                spans: list[tuple[int, int]]) -> None:
        """Interpolate blended source planes (n, rows, cols from source ``start``) along axes 1 and 2 onto
        the position box ``spans``, and hand each member its crops."""
        for a, begin, span in ((1, start[0], spans[0]), (2, start[1], spans[1])):
            m = self.maps[a]
            sel = slice(span[0] - m.valid.start, span[1] - m.valid.start)
            planes = _interp(planes, m.lo[sel], m.hi[sel], m.wlo[sel], m.whi[sel], a, begin)
        if self.instance is None:
            planes = planes.astype(self.dtype)  # converted once per shared plane, not per patch
        (sy, _), (sx, _) = spans
        for mem in members:
            inside = np.flatnonzero((ks >= mem.first) & (ks <= mem.last))
            mine = np.array([j for j in inside.tolist() if int(ks[j]) in mem.pending], dtype=np.int64)
            if not mine.size:
                continue
            (a0, a1), (b0, b1) = mem.span[1], mem.span[2]
            rows = slice(mine[0], mine[-1] + 1) if mine[-1] - mine[0] + 1 == mine.size else mine
            mem.store(ks[mine].tolist(), planes[rows, a0 - sy:a1 - sy, b0 - sx:b1 - sx], self.maps[0])


class BlockPlan:
    """One channel of one patch on an oblique grid: read the bounding block of the sample points once and
    interpolate with ``scipy.ndimage.map_coordinates`` (same ITK edge convention as the separable path)."""

    def __init__(self, array: str, grid: Geometry, fov: FieldOfView, centre_mm, patch: PatchBuffer, channel: int,
                 instance: int | None):
        self.array, self.grid, self.fov, self.centre_mm = array, grid, fov, centre_mm
        self.instance, self.patch, self.channel, self.done = instance, patch, channel, False
        # The index map is affine: its extremes over the patch lie at the patch's corners.
        ends = [fov.axis_mm(centre_mm, a)[[0, -1]] for a in (2, 1, 0)]
        corners = np.array([[x, y, z] for x in ends[0] for y in ends[1] for z in ends[2]])
        q = grid.continuous_index(corners)
        n = np.asarray(grid.shape)
        qmin, qmax = q.min(0), q.max(0)
        if np.any(qmax < -0.5) or np.any(qmin >= n - 0.5):
            self.box = None  # the field of view misses the volume
        else:
            lo = np.floor(np.clip(qmin, 0, n - 1)).astype(int)
            self.box = (lo, np.minimum(np.floor(np.clip(qmax, 0, n - 1)).astype(int) + 2, n))

    @property
    def finished(self) -> bool:
        return self.box is None or self.done

    def read(self, array: zarr.Array) -> int:
        """Read the block and interpolate; returns the number of chunks decoded."""
        from scipy.ndimage import map_coordinates

        lo, hi = self.box
        block = array[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
        if self.instance is not None:
            block = block == self.instance
        q = self.grid.continuous_index(self.fov.points(self.centre_mm))  # (z, y, x, 3) source (z, y, x)
        n = np.asarray(self.grid.shape)
        inside = np.all((q >= -0.5) & (q < n - 0.5), axis=-1)
        coords = (np.clip(q[inside], 0, n - 1) - lo).T
        values = map_coordinates(block.astype(np.float32), coords, order=1, mode="nearest")
        if self.instance is not None:
            above = values >= MASK_THRESHOLD
            if not above.any() and values.max(initial=0) > 0:
                above[np.argmax(values)] = True
            values = above
        self.patch.array[self.channel][inside] = values
        self.done = True
        return _chunks_in(array, lo, hi)

    def result(self) -> None:
        pass


def _chunks_in(array: zarr.Array, lo, hi) -> int:
    """Number of chunks the box [lo, hi) touches."""
    return int(np.prod([(h - 1) // c - a // c + 1 for a, h, c in zip(lo, hi, array.chunks)]))


def _overlap_groups(boxes: list[tuple[np.ndarray, np.ndarray]]) -> list[list[int]]:
    """Indices of boxes ([start, stop) per axis) grouped into connected sets of overlapping boxes."""
    parent = list(range(len(boxes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, (a0, a1) in enumerate(boxes):
        for j in range(i):
            b0, b1 = boxes[j]
            if np.all(np.maximum(a0, b0) < np.minimum(a1, b1)):
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(boxes)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


@dataclass
class StudyPlan:
    """The plans of one study; per request, its patches ({fov name: PatchBuffer}) and, per (fov name,
    channel), the Member or BlockPlan that fills that channel."""

    groups: list[GroupPlan]
    blocks: list[BlockPlan]
    patches: list[dict[str, PatchBuffer]]
    parts: list[dict[tuple[str, str], Member | BlockPlan]]


def plan_study(job: StudyJob, grids: dict[str, Geometry]) -> StudyPlan:
    """Plans for every (request, field of view, channel); ``grids``: the grid of each array in ``ARRAYS``
    (``volume_io.study_arrays``, checked when the study was opened)."""
    dtype = np.dtype(job.dtype)
    pads = tuple(job.ct_pad if channel == "ct" else 0.0 for channel in CHANNELS)
    plan = StudyPlan([], [], [{fov.name: PatchBuffer(fov.size, dtype, pads) for fov in job.fovs}
                              for _ in job.requests], [{} for _ in job.requests])
    for fov in job.fovs:
        starts = [fov.start(req.centre_mm) for req in job.requests]
        buffers = [patch[fov.name] for patch in plan.patches]
        for c, channel in enumerate(CHANNELS):
            name = SOURCE[channel]
            grid = grids[name]
            if not grid.separable():
                for i, req in enumerate(job.requests):
                    block = BlockPlan(name, grid, fov, req.centre_mm, buffers[i], c,
                                      req.instance if channel == "mask" else None)
                    plan.blocks.append(block)
                    plan.parts[i][fov.name, channel] = block
            elif channel == "mask":  # one patch per group: its own label value and bounding box
                for i, req in enumerate(job.requests):
                    b = req.bbox
                    window = None if b is None else ((b[0], b[3]), (b[1], b[4]), (b[2], b[5]))
                    group = GroupPlan(name, grid, fov, [starts[i]], [buffers[i]], c, req.instance, window)
                    plan.groups.append(group)
                    plan.parts[i][fov.name, channel] = group.members[0]
            else:
                boxes = [(st, st + np.asarray(fov.size)) for st in starts]
                for members in _overlap_groups(boxes):
                    group = GroupPlan(name, grid, fov, [starts[i] for i in members], [buffers[i] for i in members], c)
                    plan.groups.append(group)
                    for i, mem in zip(members, group.members):
                        plan.parts[i][fov.name, channel] = mem
    return plan


def sweep_events(plan: StudyPlan, arrays: dict[str, zarr.Array],
                 grids: dict[str, Geometry]) -> list[tuple[float, int, int, str, object]]:
    """Reads in sweep order: (physical position, array order, row, array name, chunk row or block plan);
    ``grids`` as for ``plan_study``.

    Rows of all arrays are ordered by the LPS coordinate of their lower edge along the axis the slowest
    stored axis runs along, so patches complete (and leave memory) in one pass from one end of the body.
    """
    events = []
    for order, name in enumerate(ARRAYS):
        array, grid = arrays[name], grids[name]
        m = grid.axis_mm(0)
        chunk = array.chunks[0]
        rows: set[int] = set()
        for group in plan.groups:
            if group.array == name:
                rows |= group.rows(chunk)
        for r in rows:
            first, last = r * chunk, min((r + 1) * chunk, grid.shape[0]) - 1
            edge = min(grid.origin[m] + grid.matrix[m, 2] * z for z in (first, last))
            events.append((float(edge), order, r, name, r))
        for block in plan.blocks:
            if block.array == name and not block.finished:
                pos = float(grid.origin[m] + grid.matrix[m, 2] * block.box[0][0])
                events.append((pos, order, -1, name, block))
    events.sort(key=lambda e: e[:3])
    return events
