"""Where voxels and the patient are: the project's voxel grid (axial, LPS) and the patient's pose on the table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from data_contracts.geometry import Geometry

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass(frozen=True)
class Grid(Geometry):
    """The project's voxel grid (``data_contracts.geometry.Geometry``: array order (z, y, x); spacing/origin
    in (x, y, z) mm, LPS) with the identity direction a scanner's axial series has, and the axis helpers the
    rasterizer needs."""

    direction: tuple[float, ...] = IDENTITY

    def axis(self, i: int) -> np.ndarray:
        """Coordinates (mm) of voxel centres along x (0), y (1) or z (2)."""
        n = self.shape[2 - i]
        return (self.origin[i] + self.spacing[i] * np.arange(n)).astype(np.float64)

    @property
    def n_voxels(self) -> int:
        return int(np.prod(self.shape))

    def index_of(self, xyz: Sequence[float]) -> np.ndarray:
        """Continuous (z, y, x) index of an LPS point."""
        return np.array([(xyz[2 - a] - self.origin[2 - a]) / self.spacing[2 - a] for a in range(3)])

    def point_of(self, zyx: Sequence[float]) -> np.ndarray:
        """LPS (x, y, z) of a (z, y, x) index."""
        return np.array([self.origin[a] + self.spacing[a] * zyx[2 - a] for a in range(3)])


@dataclass(frozen=True)
class Pose:
    """Where the patient lies: body frame (u, v, w) -> LPS (x, y, z) by a roll about z, a shift, and a
    non-rigid stretch along the long axis.

    ``warp`` = (body w keyframes, table w keyframes), both increasing: the patient's own proportions (leg
    length, each vertebra's height) as a monotone piecewise-linear map of the reference layout; empty = rigid.
    """

    roll_deg: float = 0.0
    shift: tuple[float, float, float] = (0.0, 0.0, 0.0)  # LPS position of the body-frame origin
    warp: tuple[tuple[float, ...], tuple[float, ...]] = ((), ())

    @property
    def cs(self) -> tuple[float, float]:
        t = np.deg2rad(self.roll_deg)
        return float(np.cos(t)), float(np.sin(t))

    def table_w(self, w):
        """Body-frame height(s) -> height(s) along the table (before the shift)."""
        if not self.warp[0]:
            return w
        return np.interp(w, self.warp[0], self.warp[1])

    def body_w(self, t):
        """Height(s) along the table (before the shift) -> body-frame height(s)."""
        if not self.warp[0]:
            return t
        return np.interp(t, self.warp[1], self.warp[0])

    def to_lps(self, uvw: np.ndarray) -> np.ndarray:
        """(..., 3) body points -> (..., 3) LPS points."""
        c, s = self.cs
        u, v, w = uvw[..., 0], uvw[..., 1], uvw[..., 2]
        tx, ty, tz = self.shift
        return np.stack([c * u - s * v + tx, s * u + c * v + ty, self.table_w(w) + tz], axis=-1)

    def to_body(self, xyz: np.ndarray) -> np.ndarray:
        c, s = self.cs
        tx, ty, tz = self.shift
        x, y, z = xyz[..., 0] - tx, xyz[..., 1] - ty, xyz[..., 2] - tz
        return np.stack([c * x + s * y, -s * x + c * y, self.body_w(z)], axis=-1)
