"""The voxel grid of a stored volume, in ITK terms, and resampling onto it.

Arrays are stored in (z, y, x) order; the grid is described the ITK/DICOM way in the LPS patient frame:
``spacing`` and ``origin`` in (x, y, z) mm, ``direction`` the row-major 3x3 whose columns are the image
axes, ``origin`` the centre of voxel (0, 0, 0). Physical point of index (i, j, k) = (x, y, z index):
``origin + direction @ (spacing * (i, j, k))`` — exactly SimpleITK's ``TransformIndexToPhysicalPoint``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

Vec3 = tuple[float, float, float]
AXIS_TOLERANCE = 1e-5  # direction cosines below this count as 0 (header rounding)


@dataclass(frozen=True)
class Geometry:
    shape: tuple[int, int, int]  # (z, y, x) voxels
    spacing: Vec3  # (x, y, z) mm
    origin: Vec3  # (x, y, z) mm, LPS
    direction: tuple[float, ...]  # row-major 3x3

    @classmethod
    def of(cls, image: sitk.Image) -> Geometry:
        x, y, z = image.GetSize()
        return cls((z, y, x), tuple(image.GetSpacing()), tuple(image.GetOrigin()), tuple(image.GetDirection()))

    # ---- attributes in the store (plain JSON) ----
    def to_attrs(self) -> dict:
        return {"shape": list(self.shape), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction)}

    @classmethod
    def from_attrs(cls, attrs: dict) -> Geometry:
        """The grid ``to_attrs`` wrote (raises KeyError, TypeError or ValueError for a missing or bad field)."""
        return cls(tuple(int(v) for v in attrs["shape"]), tuple(float(v) for v in attrs["spacing"]),
                   tuple(float(v) for v in attrs["origin"]), tuple(float(v) for v in attrs["direction"]))

    def image(self, array: np.ndarray) -> sitk.Image:
        """A SimpleITK image of ``array`` ((z, y, x), this grid's shape) placed on this grid."""
        if tuple(array.shape) != self.shape:
            raise ValueError(f"array of shape {tuple(array.shape)} on a grid of shape {self.shape}")
        image = sitk.GetImageFromArray(array)
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    # ---- coordinates ----
    @property
    def matrix(self) -> np.ndarray:
        """3x3 map from (x, y, z) index offsets to LPS millimetres."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3) @ np.diag(self.spacing)

    def index_to_mm(self, zyx: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """LPS millimetres of (possibly fractional) (z, y, x) indices; shape (..., 3) in, (..., 3) out."""
        ijk = np.asarray(zyx, dtype=float)[..., ::-1]
        return ijk @ self.matrix.T + np.asarray(self.origin)

    def continuous_index(self, points_mm: np.ndarray) -> np.ndarray:
        """(..., 3) LPS mm -> (..., 3) continuous (z, y, x) indices (``index_to_mm``'s inverse)."""
        ijk = (np.asarray(points_mm, dtype=float) - np.asarray(self.origin)) @ np.linalg.inv(self.matrix).T
        return ijk[..., ::-1]

    def axis_mm(self, axis: int) -> int:
        """The LPS axis (0 x, 1 y, 2 z) that array axis ``axis`` (z, y, x order) runs along (largest cosine)."""
        return int(np.argmax(np.abs(np.asarray(self.direction).reshape(3, 3)[:, 2 - axis])))

    def separable(self, tolerance: float = AXIS_TOLERANCE) -> bool:
        """Whether every array axis is parallel to one LPS axis (direction a signed permutation matrix)."""
        d = np.abs(np.asarray(self.direction, dtype=float).reshape(3, 3))
        big = d > tolerance
        return bool((big.sum(axis=0) == 1).all() and (big.sum(axis=1) == 1).all())

    def bounds_mm(self) -> tuple[np.ndarray, np.ndarray]:
        """LPS (x, y, z) minimum and maximum over the centres of the grid's 8 corner voxels."""
        last = np.asarray(self.shape, dtype=float) - 1.0
        corners = np.array([[z, y, x] for z in (0.0, last[0]) for y in (0.0, last[1]) for x in (0.0, last[2])])
        mm = self.index_to_mm(corners)
        return mm.min(axis=0), mm.max(axis=0)

    def scan_position(self, point_mm: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """Where an LPS point lies in the scanned box: (x, y, z) each in [0, 1] (clipped), independent of the
        array's axis order and flips (0 = the patient's right / anterior / inferior end of the scan)."""
        lo, hi = self.bounds_mm()
        span = np.where(hi > lo, hi - lo, 1.0)
        return np.clip((np.asarray(point_mm, dtype=float) - lo) / span, 0.0, 1.0)

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def same_grid(self, other: Geometry, mm_tol: float = 1e-3, rel_tol: float = 1e-4) -> bool:
        """Same shape, spacing, origin and direction (within rounding of header text)."""
        return (self.shape == other.shape
                and np.allclose(self.spacing, other.spacing, rtol=rel_tol, atol=0)
                and np.allclose(self.origin, other.origin, rtol=0, atol=max(mm_tol, rel_tol * max(self.spacing)))
                and np.allclose(self.direction, other.direction, atol=rel_tol))

    def describe_difference(self, other: Geometry) -> str:
        parts = []
        for name in ("shape", "spacing", "origin", "direction"):
            a, b = getattr(self, name), getattr(other, name)
            if not np.allclose(a, b, atol=1e-3) or np.shape(a) != np.shape(b):
                parts.append(f"{name} {tuple(round(v, 4) for v in a)} vs {tuple(round(v, 4) for v in b)}")
        return "; ".join(parts) or "grids differ"

    # ---- derived grids ----
    def crop(self, start: tuple[int, int, int], stop: tuple[int, int, int]) -> Geometry:
        """The sub-grid of voxels [start, stop) in (z, y, x)."""
        shape = tuple(int(b - a) for a, b in zip(start, stop))
        origin = tuple(float(v) for v in self.index_to_mm(start))
        return Geometry(shape, self.spacing, origin, self.direction)  # type: ignore[arg-type]

    def with_spacing(self, spacing: Vec3) -> Geometry:
        """A grid of the same orientation and field of view (voxel edges kept) at another spacing."""
        old = np.asarray(self.spacing)
        new = np.asarray(spacing, dtype=float)
        extent = old * np.asarray(self.shape[::-1])  # (x, y, z) mm edge to edge
        size_xyz = np.maximum(1, np.round(extent / new)).astype(int)
        corner = self.index_to_mm((-0.5, -0.5, -0.5))  # outer corner of voxel (0, 0, 0)
        direction = np.asarray(self.direction, dtype=float).reshape(3, 3)
        origin = corner + direction @ (new / 2)
        return Geometry(tuple(int(v) for v in size_xyz[::-1]), tuple(float(v) for v in new),  # type: ignore
                        tuple(float(v) for v in origin), self.direction)  # type: ignore[arg-type]

    def resample(self, image: sitk.Image, interpolator: int = sitk.sitkLinear,
                 pixel_type: int = sitk.sitkFloat32, default: float = 0.0) -> sitk.Image:
        """``image`` resampled onto this grid (identity transform: both grids live in the same LPS frame).

        Points outside ``image`` get ``default`` (0: no activity / background).
        """
        f = sitk.ResampleImageFilter()
        f.SetSize([int(v) for v in self.shape[::-1]])
        f.SetOutputSpacing(self.spacing)
        f.SetOutputOrigin(self.origin)
        f.SetOutputDirection(self.direction)
        f.SetInterpolator(interpolator)
        f.SetDefaultPixelValue(default)
        f.SetOutputPixelType(pixel_type)
        return f.Execute(image)

    def overlaps(self, other: Geometry) -> bool:
        """Whether the two grids' fields of view (axis-aligned LPS boxes) intersect."""
        def box(g: Geometry) -> tuple[np.ndarray, np.ndarray]:
            z, y, x = g.shape
            corners = np.array([[a, b, c] for a in (-0.5, z - 0.5) for b in (-0.5, y - 0.5) for c in (-0.5, x - 0.5)])
            pts = g.index_to_mm(corners)
            return pts.min(0), pts.max(0)

        lo1, hi1 = box(self)
        lo2, hi2 = box(other)
        return bool(np.all(lo1 < hi2) and np.all(lo2 < hi1))
