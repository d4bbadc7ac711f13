"""Lesion-centred patches cut from chunked volumes: linear resampling that decodes each chunk once per study.

This module is what a Dask worker runs (``extract_study``), so it imports only numpy and zarr: a worker stays
small (no SimpleITK, pandas or pydantic), which keeps its peak memory low and its start fast.

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
(``benchmarks/patches.py``): ~260 MB peak for a 21-lesion study of 1.96 GB decoded volumes, the same at twice
the volume's length.
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import time
from dataclasses import dataclass

import numpy as np
import zarr

from data_contracts.geometry import Geometry  # the one voxel-grid class (stored arrays: Geometry.of_array)
from data_contracts.volume_store import arrays_group

CHANNELS = ("ct", "pet", "mask")  # patch channel order
SOURCE = {"ct": "ct", "pet": "pet", "mask": "lesions"}  # channel -> volume array it is sampled from
ARRAYS = ("ct", "pet", "lesions")
UNITS = {"ct": "HU", "pet": "SUVbw", "mask": "1 inside this lesion instance, else 0"}
MASK_THRESHOLD = 0.5
PLANES_PER_PASS = 8  # patch planes interpolated together: bounds the float32 temporaries to a few MB


# ------------------------------------------------------------------------------------------ grids
@dataclass(frozen=True)
class FieldOfView:
    """One patch kind: its name (the patch store array), size (z, y, x) voxels and spacing (x, y, z) mm."""

    name: str
    size: tuple[int, int, int]
    spacing: tuple[float, float, float]

    def start(self, centre_mm) -> np.ndarray:
        """Lattice index (z, y, x) of patch voxel (0, 0, 0) for a patch centred (snapped) on ``centre_mm``."""
        n_xyz = np.asarray(self.size[::-1], dtype=float)
        s = np.asarray(self.spacing, dtype=float)
        ideal = np.asarray(centre_mm, dtype=float) - (n_xyz - 1) / 2 * s
        return np.floor(ideal / s + 0.5).astype(np.int64)[::-1]

    def origin(self, centre_mm) -> np.ndarray:
        """LPS mm (x, y, z) of the centre of patch voxel (0, 0, 0)."""
        return self.start(centre_mm)[::-1] * np.asarray(self.spacing, dtype=float)

    def centre(self, centre_mm) -> np.ndarray:
        """LPS mm (x, y, z) of the patch centre: ``centre_mm`` snapped to the lattice."""
        n_xyz = np.asarray(self.size[::-1], dtype=float)
        return self.origin(centre_mm) + (n_xyz - 1) / 2 * np.asarray(self.spacing, dtype=float)

    def axis_mm(self, centre_mm, axis: int) -> np.ndarray:
        """LPS coordinate (along x, y or z for patch array axis 2, 1, 0) of every position of one patch axis."""
        m = 2 - axis  # patch array axis -> LPS axis
        return self.origin(centre_mm)[m] + np.arange(self.size[axis]) * self.spacing[m]

    def points(self, centre_mm) -> np.ndarray:
        """LPS mm of every patch voxel centre, shape (z, y, x, 3) in (x, y, z)."""
        z, y, x = (self.axis_mm(centre_mm, a) for a in range(3))
        zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
        return np.stack([xx, yy, zz], axis=-1)


# ------------------------------------------------------------------------------------------ axis maps
@dataclass(frozen=True)
class AxisMap:
    """Linear interpolation along one source axis onto the positions of one patch axis.

    ``valid`` are the patch positions inside the volume's buffer (the rest take the pad value); for
    each, ``lo``/``hi`` are the neighbouring source indices (clamped to the volume) with weights ``wlo``/``whi``.
    A weight is 0 where its neighbour lies outside ``window`` (source indices that are known to hold zeros:
    the mask channel reads only the lesion's bounding box).
    """

    patch_axis: int
    valid: slice
    lo: np.ndarray
    hi: np.ndarray
    wlo: np.ndarray
    whi: np.ndarray

    @classmethod
    def build(cls, q: np.ndarray, n: int, patch_axis: int, window: tuple[int, int] | None = None) -> AxisMap:
        """``q``: continuous source index of every patch position along this axis; ``n``: source length."""
        inside = np.flatnonzero((q >= -0.5) & (q < n - 0.5))  # ITK's IsInsideBuffer: half-open
        valid = slice(int(inside[0]), int(inside[-1]) + 1) if inside.size else slice(0, 0)
        qc = np.clip(q[valid], 0, n - 1)
        lo = np.minimum(np.floor(qc).astype(np.int64), max(n - 2, 0))
        hi = np.minimum(lo + 1, n - 1)
        w = qc - lo
        wlo, whi = (1.0 - w).astype(np.float32), w.astype(np.float32)
        if window is not None:
            a, b = window
            wlo[(lo < a) | (lo >= b)] = 0
            whi[(hi < a) | (hi >= b)] = 0
        return cls(patch_axis, valid, lo, hi, wlo, whi)


def _interp(block: np.ndarray, lo, hi, wlo, whi, axis: int, start: int) -> np.ndarray:
    """Interpolate ``block`` (whose ``axis`` starts at source index ``start``) along that axis -> float32.

    Indices whose weight is 0 may lie outside the block; they are clamped (their value is multiplied by 0).
    """
    top = block.shape[axis] - 1
    shape = [1] * block.ndim
    shape[axis] = -1
    out = np.multiply(block.take(np.clip(lo - start, 0, top), axis=axis), wlo.reshape(shape), dtype=np.float32)
    upper = block.take(np.clip(hi - start, 0, top), axis=axis)
    out += np.multiply(upper, whi.reshape(shape), out=upper if upper.dtype == np.float32 else None)
    return out


def _blend(block: np.ndarray, m: AxisMap, ks: np.ndarray, start: int) -> np.ndarray:
    """Interpolate ``block`` (source slices from index ``start`` along axis 0) at positions ``ks`` of ``m``.

    Slice by slice on views (no gathered copies): each output plane is the weighted sum of two source slices.
    """
    out = np.empty((ks.size, *block.shape[1:]), np.float32)
    scratch = np.empty(block.shape[1:], np.float32)
    for j, k in enumerate(ks.tolist()):
        terms = [(int(z) - start, np.float32(w)) for z, w in ((m.lo[k], m.wlo[k]), (m.hi[k], m.whi[k])) if w > 0]
        np.multiply(block[terms[0][0]], terms[0][1], out=out[j])
        for z, w in terms[1:]:
            out[j] += np.multiply(block[z], w, out=scratch)
    return out


def _span_columns(m: AxisMap, span: tuple[int, int]) -> np.ndarray:
    """Source indices with nonzero weight for the group positions ``span`` of axis map ``m``."""
    k = slice(span[0] - m.valid.start, span[1] - m.valid.start)
    return np.union1d(m.lo[k][m.wlo[k] > 0], m.hi[k][m.whi[k] > 0])


def _span_range(m: AxisMap, span: tuple[int, int]) -> tuple[int, int] | None:
    """[first, last + 1) of ``_span_columns`` (None when empty), without building the set."""
    k = slice(span[0] - m.valid.start, span[1] - m.valid.start)
    ends = [(int(a.min()), int(a.max())) for a in (m.lo[k][m.wlo[k] > 0], m.hi[k][m.whi[k] > 0]) if a.size]
    if not ends:
        return None
    return min(e[0] for e in ends), max(e[1] for e in ends) + 1


# ------------------------------------------------------------------------------------------ plans
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


# ------------------------------------------------------------------------------------------ one study
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


class _SlabReader:
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


def _open(url: str, mode: str = "r") -> zarr.Group:
    """A Zarr group from a local path or an fsspec URL."""
    return zarr.open_group(url.removeprefix("file://") if url.startswith("file://") else url, mode=mode)


_CONFIGURED: list[int] = []


def _limit_threads(threads: int) -> None:
    """Cap zarr's decoding pool in a worker process (one worker process = ``threads`` cores).

    Only in a process of its own (a Dask worker started by a nanny): threaded workers share the caller's
    process, whose zarr settings are not ours to change. Takes effect before zarr's pool exists.
    """
    if not _CONFIGURED and multiprocessing.current_process().name != "MainProcess":
        zarr.config.set({"threading.max_workers": threads})
        _CONFIGURED.append(threads)


@dataclass
class StudyPlan:
    """The plans of one study; per request, its patches ({fov name: PatchBuffer}) and, per (fov name,
    channel), the Member or BlockPlan that fills that channel."""

    groups: list[GroupPlan]
    blocks: list[BlockPlan]
    patches: list[dict[str, PatchBuffer]]
    parts: list[dict[tuple[str, str], Member | BlockPlan]]


def plan_study(job: StudyJob, arrays: dict[str, zarr.Array]) -> StudyPlan:
    """Plans for every (request, field of view, channel)."""
    grids = {name: Geometry.of_array(arrays[name]) for name in ARRAYS}
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


def _events(plan: StudyPlan, arrays: dict[str, zarr.Array]) -> list[tuple[float, int, int, str, object]]:
    """Reads in sweep order: (physical position, array order, row, array name, chunk row or block plan).

    Rows of all arrays are ordered by the LPS coordinate of their lower edge along the axis the slowest
    stored axis runs along, so patches complete (and leave memory) in one pass from one end of the body.
    """
    events = []
    for order, name in enumerate(ARRAYS):
        array = arrays[name]
        grid = Geometry.of_array(array)
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


def sweep(job: StudyJob, on_patch) -> tuple[int, int]:
    """Compute every patch of ``job``; ``on_patch(request, {fov name: (3, z, y, x) array})`` as each
    completes. Returns (chunks decoded, slabs read).

    A study with more than ``job.max_open`` lesions is swept in batches of lesions neighbouring along z, which
    bounds the patches held in memory at the cost of decoding the chunks shared by two batches twice.
    """
    if len(job.requests) <= job.max_open:
        return _sweep(job, on_patch)
    ordered = sorted(job.requests, key=lambda r: (r.centre_mm[2], r.row))
    chunks = slabs = 0
    for i in range(0, len(ordered), job.max_open):
        c, n = _sweep(dataclasses.replace(job, requests=tuple(ordered[i:i + job.max_open])), on_patch)
        chunks, slabs = chunks + c, slabs + n
    return chunks, slabs


def _sweep(job: StudyJob, on_patch) -> tuple[int, int]:
    group = arrays_group(_open(job.volume_store)[job.study_id])  # the study's current version
    arrays = {name: group[name] for name in ARRAYS}
    plan = plan_study(job, arrays)
    pending = list(range(len(job.requests)))
    chunks = slabs = 0
    reader = _SlabReader()

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
    for _, _, _, name, what in _events(plan, arrays):
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
    _limit_threads(job.threads)
    t0 = time.perf_counter()
    store = _open(job.patch_store, mode="r+")
    targets = {fov.name: store[fov.name] for fov in job.fovs}
    rows: list[int] = []

    def write(request: Request, out: dict[str, np.ndarray]) -> None:
        for name, patch in out.items():
            targets[name][request.row] = patch
        rows.append(request.row)

    chunks, slabs = sweep(job, write)
    _release_free_memory()
    return StudyDone(job.study_id, tuple(sorted(rows)), time.perf_counter() - t0, chunks, slabs)


def _release_free_memory() -> None:
    """Hand the allocator's free memory back to the system between studies (glibc ``malloc_trim``): a worker
    that keeps freed blocks for reuse within a study should not carry them into the next one."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def compute_study(job: StudyJob) -> dict[int, dict[str, np.ndarray]]:
    """Every patch of ``job`` in memory, by request row (tests and benchmarks; no patch store)."""
    out: dict[int, dict[str, np.ndarray]] = {}
    sweep(job, lambda request, patches: out.__setitem__(request.row, patches))
    return out


def touched_chunks(job: StudyJob) -> dict[str, set[tuple[int, int, int]]]:
    """The chunks of each volume array that the patches of ``job`` need (the benchmark's decode floor)."""
    group = arrays_group(_open(job.volume_store)[job.study_id])  # the study's current version
    arrays = {name: group[name] for name in ARRAYS}
    plan = plan_study(job, arrays)
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
