"""A DICOM image series on disk, and a labelled volume on its grid laid slice by slice onto its instances.

The volume store keeps arrays in (z, y, x) on the CT grid that SimpleITK read (``Geometry``); a SEG frame must name
the CT instance it lies on. Each instance is matched to a z index by its ImagePositionPatient, so the mapping holds
whatever order the files or the reader sorted them in.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom

from data_contracts.errors import PetcapError
from data_contracts.geometry import Geometry


class SeriesMismatch(PetcapError):
    """A labelled volume or a SEG whose geometry does not fit the series it refers to."""

    def __init__(self, message: str, path: str | None = None):
        super().__init__(message, path=path, reason="seg_geometry_mismatch",
                         hint="the segmentation must lie on the CT series' grid (same positions, rows, columns)")


def read_series(folder: Path | str) -> list[pydicom.Dataset]:
    """Every instance of a series folder with pixel data, sorted along the slice normal (head last in LPS)."""
    folder = Path(folder)
    datasets = [pydicom.dcmread(f) for f in sorted(folder.iterdir()) if f.is_file() and not f.name.startswith(".")]
    if not datasets:
        raise PetcapError("the series folder holds no DICOM file", path=str(folder), reason="missing_series")
    return sorted(datasets, key=_normal_offset)


def _normal_offset(ds: pydicom.Dataset) -> float:
    iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
    return float(np.dot(np.cross(iop[:3], iop[3:]), np.asarray(ds.ImagePositionPatient, dtype=float)))


def slice_indices(datasets: list[pydicom.Dataset], grid: Geometry, source: str = "") -> list[int]:
    """The z index of ``grid`` on which each instance lies (one per dataset).

    Raises ``SeriesMismatch`` when an instance's rows, columns, orientation or position do not fall on the grid.
    """
    z, y, x = grid.shape
    direction = np.asarray(grid.direction, dtype=float).reshape(3, 3)
    out = []
    for ds in datasets:
        if (int(ds.Rows), int(ds.Columns)) != (y, x):
            raise SeriesMismatch(f"instance {ds.SOPInstanceUID} is {ds.Rows}x{ds.Columns}, the grid {y}x{x}", source)
        iop = np.asarray(ds.ImageOrientationPatient, dtype=float)
        if not (np.allclose(iop[:3], direction[:, 0], atol=1e-3) and np.allclose(iop[3:], direction[:, 1], atol=1e-3)):
            raise SeriesMismatch(f"instance {ds.SOPInstanceUID} has another orientation than the grid", source)
        index = grid.continuous_index(np.asarray(ds.ImagePositionPatient, dtype=float))  # (z, y, x), fractional
        k = int(round(index[0]))
        if not (0 <= k < z) or np.max(np.abs(index - [k, 0, 0])) > 0.05:
            raise SeriesMismatch(f"instance {ds.SOPInstanceUID} at {list(ds.ImagePositionPatient)} mm lies on no "
                                 f"slice of the grid", source)
        out.append(k)
    return out
