"""The patch lattice and the linear interpolation kernels patch extraction runs on (numpy only).

``FieldOfView``: one patch kind, an LPS-aligned grid of ``size`` voxels at ``spacing``, centred on a lesion
centroid snapped to that spacing's lattice. ``AxisMap``: linear interpolation along one source axis onto the
positions of one patch axis, with ITK's edge convention (a point within half a voxel of the volume takes the
clamped trilinear value, one further out the pad value). ``_interp`` / ``_blend``: the separable passes that
apply an axis map to a block of source voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
