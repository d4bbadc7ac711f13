"""Rasterisation: a painter's list of shapes evaluated on a voxel grid through the patient's pose.

Only each shape's bounding box is touched, in thin z-slabs so temporaries stay in cache; convex shapes are
solved per grid row in closed form.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tasks.synth.phantom.geometry import Grid, Pose
from tasks.synth.phantom.shapes import Paint
from tasks.synth.phantom.tissues import internal_labels, n_labels

SLAB_VOXELS = 2_000_000  # voxels evaluated together: temporaries stay small, Python overhead stays low


def min_radius(grid: Grid) -> float:
    """Half a voxel diagonal: a sphere this big always contains a voxel centre."""
    return 0.5 * float(np.sqrt(np.sum(np.square(grid.spacing)))) * 1.02


def index_box(lo: np.ndarray, hi: np.ndarray, grid: Grid, pose: Pose) -> tuple[slice, slice, slice] | None:
    """Voxel-index slices (z, y, x) of the grid region that holds a body-frame box; None if outside."""
    c, s = pose.cs
    tx, ty, tz = pose.shift
    u0, v0, w0 = (float(x) for x in lo)
    u1, v1, w1 = (float(x) for x in hi)
    # interval arithmetic of the roll: x = c u - s v + tx, y = s u + c v + ty
    x0 = tx + min(c * u0, c * u1) + min(-s * v0, -s * v1)
    x1 = tx + max(c * u0, c * u1) + max(-s * v0, -s * v1)
    y0 = ty + min(s * u0, s * u1) + min(c * v0, c * v1)
    y1 = ty + max(s * u0, s * u1) + max(c * v0, c * v1)
    out = []
    for ax, (a, b) in ((2, (float(pose.table_w(w0)) + tz, float(pose.table_w(w1)) + tz)), (1, (y0, y1)), (0, (x0, x1))):
        n = grid.shape[2 - ax]
        i0 = max(int(np.floor((a - grid.origin[ax]) / grid.spacing[ax])), 0)
        i1 = min(int(np.ceil((b - grid.origin[ax]) / grid.spacing[ax])) + 1, n)
        if i1 <= i0:
            return None
        out.append(slice(i0, i1))
    return tuple(out)  # type: ignore[return-value]


def rasterize(paints: Sequence[Paint], grid: Grid, pose: Pose, table_y: float | None = None) -> np.ndarray:
    """The internal label map (uint16, (z, y, x)) of a painter's list on ``grid``.

    ``table_y``: LPS y of the table top; a 10 mm carbon plate is drawn below it before the patient.
    """
    out = np.zeros(grid.shape, np.uint16)
    xs, ys, zs = grid.axis(0), grid.axis(1), grid.axis(2)
    if table_y is not None:
        j0, j1 = np.searchsorted(ys, [table_y, table_y + 10.0])
        i0, i1 = np.searchsorted(xs, [-230.0, 230.0])
        out[:, j0:j1, i0:i1] = internal_labels()["table"]
    rmin = min_radius(grid)
    c, s = pose.cs
    tx, ty, tz = pose.shift
    nlab = n_labels()

    # Per paint: its index box and in-plane coordinates (computed once).
    prepared = []
    for p in paints:
        lo, hi = p.shape.bounds()
        box = index_box(lo, hi, grid, pose)
        if box is None:
            continue
        sz, sy, sx = box
        X = (xs[sx] - tx).astype(np.float32)
        Y = (ys[sy] - ty).astype(np.float32)
        if p.shape.rows is not None:
            U = V = None
        else:
            U = (c * X[None, None, :] + s * Y[None, :, None]).astype(np.float32)
            V = (-s * X[None, None, :] + c * Y[None, :, None]).astype(np.float32)
        allowed = None
        if p.allowed is not None:
            allowed = np.zeros(nlab, bool)
            allowed[list(p.allowed)] = True
        prepared.append((p, box, X, Y, U, V, allowed))

    body_w = np.asarray(pose.body_w(zs - tz), np.float32)  # body-frame height of every slice
    slab = max(4, SLAB_VOXELS // (grid.shape[1] * grid.shape[2]))
    for k0 in range(0, grid.shape[0], slab):
        k1 = min(k0 + slab, grid.shape[0])
        for p, (sz, sy, sx), X, Y, U, V, allowed in prepared:
            a, b = max(sz.start, k0), min(sz.stop, k1)
            if a >= b:
                continue
            W = body_w[a:b]
            target = out[a:b, sy, sx]
            if U is None:
                lo, hi = p.shape.rows(X, Y[None, :], W[:, None], c, s, rmin)
                m = (X >= lo[..., None]) & (X <= hi[..., None])
            else:
                m = p.shape.inside(U, V, W[:, None, None], rmin)
            if m.dtype != bool:  # a label-valued region
                lab = np.broadcast_to(m, target.shape)
                m = lab > 0
            else:
                lab = None
                m = np.broadcast_to(m, target.shape)
            if allowed is not None:
                m = m & allowed[target]
            if p.remap is not None:
                lab = p.remap[target]
                m = m & (lab > 0)
            if lab is None:
                np.copyto(target, p.label, where=m, casting="unsafe")
            else:
                np.copyto(target, lab, where=m, casting="unsafe")
    return out

