"""The painter's helpers every anatomy part uses: reference coordinates scaled to the patient, shapes
appended to the list by structure name, and the vertebral levels the rest of the anatomy hangs on."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from tasks.synth.phantom.patients import REF_HEIGHT, Patient
from tasks.synth.phantom.shapes import Capsule, Ellipsoid, Paint, Shape
from tasks.synth.phantom.tissues import internal_labels

SPINE_LEVELS = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
_SEG_LEN = np.array([15, 15, 15.5, 16, 16.5, 17, 18, 19, 20, 20.5, 21, 21.5, 22, 22.5, 23.5, 24.5, 26, 27.5, 29,
                     31, 33, 35, 36, 36.0])
_SEG_LEN = _SEG_LEN * 590.0 / _SEG_LEN.sum()  # C1 top (1575) to L5 bottom (985) in the reference man
_SPINE_TOP = 1575.0
# Vertebral-body centre depth (v) along the spine: cervical and lumbar lordosis, thoracic kyphosis.
_SPINE_V = ([1590, 1500, 1460, 1420, 1380, 1280, 1180, 1110, 1050, 985, 960],
            [14, 6, 12, 30, 45, 57, 52, 40, 24, 30, 36])

_SPINE_V_MEAN = 36.0  # curvature scales the depth's deviations from this


@dataclass
class Level:
    name: str
    top: float  # w of the top endplate
    bottom: float  # w of the bottom endplate
    disc_bottom: float  # w of the bottom of the disc below
    v: float  # body centre depth
    au: float  # body half-width
    av: float  # body half-depth
    canal_r: float
    canal_v: float

    @property
    def mid(self) -> float:
        return (self.top + self.bottom) / 2


# Arms raised (left side; u mirrored for the right): shoulder, elbow beside the head, wrist above it.
ARMS_UP = ((172.0, 16.0, 1420.0), (150.0, 30.0, 1700.0), (-40.0, 36.0, 1810.0))


# Keyframes of the long axis in the reference man (mm): soles, knee, hip, the vertebral endplates from the bottom
# of L5 (985) to the top of C1 (1575), vertex; ``Patient.segment_stretch`` holds one factor per segment.
def _reference_keyframes() -> np.ndarray:
    spine = _SPINE_TOP - np.concatenate([[0.0], np.cumsum(_SEG_LEN)])  # C1 top .. L5 bottom
    return np.concatenate([[0.0, 500.0, 905.0], spine[::-1], [REF_HEIGHT]])


def proportions_warp(patient: Patient) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The patient's proportions as a ``Pose.warp``: body-frame keyframes -> stretched keyframes.

    Segment lengths are multiplied by ``segment_stretch`` and then rescaled so that the patient keeps the
    drawn height; limb/torso ratio and each vertebra's height vary, the landmarks stay in order. Beyond
    the soles and the vertex (arms raised above the head) the map continues with slope 1.
    """
    body = _reference_keyframes() * patient.vscale
    if not patient.segment_stretch:
        return (), ()
    seg = np.diff(body) * np.asarray(patient.segment_stretch, float)
    seg *= (body[-1] - body[0]) / seg.sum()
    table = np.concatenate([[body[0]], body[0] + np.cumsum(seg)])
    body = np.concatenate([[body[0] - 2000.0], body, [body[-1] + 2000.0]])
    table = np.concatenate([[table[0] - 2000.0], table, [table[-1] + 2000.0]])
    return tuple(float(x) for x in body), tuple(float(x) for x in table)


class Painter:
    """Turns reference coordinates (a 1750 mm man) into the patient's and appends paints by structure name."""

    def __init__(self, patient: Patient):
        self.pt = patient
        self.sv = patient.vscale
        self.sl = patient.lscale
        self.lab = internal_labels()
        self.ops: list[Paint] = []
        self.female = patient.sex == "F"
        g = patient.girth
        self.fat_mm = float(np.clip(4.0 + 32.0 * (g - 0.85), 3.0, 22.0))  # subcutaneous fat, chest
        self.levels = self._spine_levels()

    # -- helpers -----------------------------------------------------------------------------------
    def point(self, u: float, v: float, w: float) -> np.ndarray:
        """A reference-man point (mm) in this patient's body frame."""
        return np.array([u * self.sl, v * self.sl, w * self.sv])

    def axes(self, au: float, av: float, aw: float, k: float = 1.0) -> np.ndarray:
        """Reference-man half-axes (mm) scaled to this patient (times ``k``)."""
        return np.array([au * self.sl, av * self.sl, aw * self.sv]) * k

    def radius(self, r: float) -> float:
        return r * self.sl

    def add(self, shape: Shape, name: str, allowed: Sequence[str] | None = None, labels: Sequence[str] = ()):
        """Append a paint; ``labels``: the structures a label-valued shape may return (for bounds)."""
        allowed_ids = None if allowed is None else frozenset(0 if a == "outside" else self.lab[a] for a in allowed)
        self.ops.append(Paint(shape, self.lab[name], allowed_ids, name, tuple(self.lab[n] for n in labels)))

    def ellipsoid(self, name, c, a, rot=None, thin=False, allowed=None, k=1.0):
        self.add(Ellipsoid(self.point(*c), self.axes(*a, k=k), rot, thin), name, allowed)

    def tube(self, name, pts, radii, thin=False, allowed=None):
        pts = [self.point(*p) for p in pts]
        radii = np.broadcast_to(np.asarray(radii, float), (len(pts),)) * self.sl
        for i in range(len(pts) - 1):
            self.add(Capsule(pts[i], pts[i + 1], float(radii[i]), float(radii[i + 1]), thin), name, allowed)

    def organ_dw(self, organ: str) -> float:
        """The patient's head-foot offset of an organ relative to the spine (reference mm)."""
        return self.pt.organ_shift.get(organ, 0.0)

    def sided(self, u: float, side: str) -> float:
        return u if side == "left" else -u

    # -- spine -------------------------------------------------------------------------------------
    def _spine_levels(self) -> list[Level]:
        out = []
        top = _SPINE_TOP
        for i, name in enumerate(SPINE_LEVELS):
            ln = _SEG_LEN[i]
            f = i / 23.0
            bottom = top - 0.78 * ln
            mid = (top + bottom) / 2
            v = float(np.interp(mid, _SPINE_V[0][::-1], _SPINE_V[1][::-1]))
            v = _SPINE_V_MEAN + (v - _SPINE_V_MEAN) * self.pt.spine_curvature
            au, av = 12.0 + 14.0 * f**1.1, 8.5 + 8.5 * f
            canal_r = 9.5 - 2.0 * np.sin(np.pi * min(f * 1.25, 1.0))  # narrower in the thoracic spine
            canal_v = v + av + canal_r + 1.5
            out.append(Level(name, top, bottom, top - ln, v, au, av, canal_r, canal_v))
            top -= ln
        return out

    def level(self, name: str) -> Level:
        return self.levels[SPINE_LEVELS.index(name)]

