"""The whole phantom: every anatomy part painted in order, and what lesion placement needs from the list."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from tasks.synth.phantom.body import BodyPainter
from tasks.synth.phantom.lymph_nodes import NodePainter
from tasks.synth.phantom.organs import OrganPainter
from tasks.synth.phantom.patients import Patient
from tasks.synth.phantom.shapes import Paint
from tasks.synth.phantom.skeleton import SkeletonPainter


class Builder(BodyPainter, OrganPainter, SkeletonPainter, NodePainter):
    """Turns a ``Patient`` into the painter's list (later paints overwrite earlier ones)."""

    def build(self) -> list[Paint]:
        self.body_outline()
        self.head()
        self.neck()
        self.thorax()
        self.abdomen()
        self.pelvis_organs()
        self.spine()
        self.ribs_and_shoulder()
        self.pelvis_and_legs()
        self.node_stations()
        self.brown_fat()
        self.lung_vessels()
        return self.ops


def build_phantom(patient: Patient) -> list[Paint]:
    """The painter's list of one patient (body frame, mm)."""
    return Builder(patient).build()


def body_extent(patient: Patient) -> tuple[float, float]:
    """(w_min, w_max) of the patient in the body frame: soles to vertex."""
    return 0.0, patient.height_mm


def structure_bounds(paints: Sequence[Paint]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Internal label -> body-frame bounding box of everything painted with it (for lesion placement)."""
    out: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    for p in paints:
        lo, hi = p.shape.bounds()
        for lab in p.labels or (p.label,):
            if lab in out:
                out[lab] = (np.minimum(out[lab][0], lo), np.maximum(out[lab][1], hi))
            else:
                out[lab] = (lo, hi)
    return out
