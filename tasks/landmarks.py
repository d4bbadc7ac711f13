"""Anatomical landmarks of one study, read off its organ-segmenter label map.

A site's label map may name its classes the TotalSegmentator way (``vertebrae_T7``, ``clavicula_left``,
``urinary_bladder``) or with older/other spellings (``vertebra_T7``, ``clavicle_left``, ``liver_segment_3``,
``ilium_left``); ``canonical_class`` folds each onto a class of ``data_contracts.segmentation`` (or None for
a structure the class set does not have, e.g. a lymph-node station). ``Landmarks`` then holds, per canonical
class, its voxel count, bounding box and centroid in LPS millimetres, and the scan's extent: what site
derivation (``tasks.sites``) and the realism check (``tasks.realism``) need, with no image intensity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from data_contracts import segmentation
from data_contracts.geometry import Geometry

_ALIASES: tuple[tuple[str, str], ...] = (
    (r"^vertebra_([CTLS]\d+)$", r"vertebrae_\1"),
    (r"^clavicle_(left|right)$", r"clavicula_\1"),
    (r"^adrenal_(left|right)$", r"adrenal_gland_\1"),
    (r"^liver_segment_\d$", "liver"),
    (r"^(ilium|pubis|ischium|hip)_(left|right)$", r"hip_\2"),
    (r"^bladder$", "urinary_bladder"),
    (r"^thyroid$", "thyroid_gland"),
    (r"^heart_.*$", "heart"),
)


def canonical_class(name: str) -> str | None:
    """The ``data_contracts.segmentation`` class a label-map structure name means, or None."""
    name = name.strip()
    if name in segmentation.label_of():
        return name
    for pattern, repl in _ALIASES:
        if re.match(pattern, name):
            out = re.sub(pattern, repl, name)
            return out if out in segmentation.label_of() else None
    return None


def canonical_lut(names: dict[str, str] | dict[int, str]) -> np.ndarray:
    """uint16 LUT: a label map's label -> canonical class label (0 where the class set has no such class)."""
    pairs = {int(k): canonical_class(v) for k, v in names.items()}
    lut = np.zeros(max([0, *pairs]) + 1, np.uint16)
    for k, cls in pairs.items():
        if cls is not None:
            lut[k] = segmentation.label_of()[cls]
    return lut


@dataclass(frozen=True)
class Extent:
    voxels: int
    lo_mm: np.ndarray  # (x, y, z) LPS, voxel centres
    hi_mm: np.ndarray
    centroid_mm: np.ndarray


@dataclass
class Landmarks:
    """Per canonical class: extent in LPS mm; plus the scan's z range (superior = larger z in LPS)."""

    classes: dict[str, Extent] = field(default_factory=dict)
    scan_z: tuple[float, float] = (0.0, 0.0)  # (inferior, superior) mm
    scan_lo_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))
    scan_hi_mm: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def from_labels(cls, labels: np.ndarray, geometry: Geometry) -> Landmarks:
        """``labels``: (z, y, x) canonical class labels (``canonical_lut`` applied) on ``geometry``."""
        lo, hi = geometry.bounds_mm()
        out = cls(scan_z=(float(lo[2]), float(hi[2])), scan_lo_mm=lo, scan_hi_mm=hi)
        n = len(segmentation.CLASSES) + 1
        counts = np.bincount(labels.ravel(), minlength=n)[:n]
        present = [int(k) for k in np.flatnonzero(counts) if k > 0]
        if not present:
            return out
        objects = ndimage.find_objects(labels, max_label=n - 1)  # any integer dtype: no full-size copy
        for k in present:
            sl = objects[k - 1]
            inside = labels[sl] == k
            idx = np.argwhere(inside).astype(float) + [s.start for s in sl]
            mm = geometry.index_to_mm(idx)
            out.classes[segmentation.CLASSES[k - 1]] = Extent(int(counts[k]), mm.min(axis=0), mm.max(axis=0),
                                                             mm.mean(axis=0))
        return out

    def get(self, name: str) -> Extent | None:
        return self.classes.get(name)

    def level_z(self, vertebra: str) -> float | None:
        """Centroid z of a vertebra class (``"T7"``), if segmented."""
        e = self.classes.get(f"vertebrae_{vertebra}")
        return float(e.centroid_mm[2]) if e else None

    def midline_x(self) -> float:
        """x of the spine (mean of the vertebral centroids), else the scan's centre."""
        xs = [e.centroid_mm[0] for n, e in self.classes.items() if n.startswith("vertebrae_")]
        return float(np.mean(xs)) if xs else float((self.scan_lo_mm[0] + self.scan_hi_mm[0]) / 2)

    def spine_y(self, z: float) -> float | None:
        """y (posterior +) of the vertebral body nearest in z."""
        vs = [e for n, e in self.classes.items() if n.startswith("vertebrae_")]
        if not vs:
            return None
        e = min(vs, key=lambda e: abs(e.centroid_mm[2] - z))
        return float(e.centroid_mm[1])
