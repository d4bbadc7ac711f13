"""Patient sampling: sex, height, girth, build, roll on the table, organ sizes, and the proportions that make
one patient's anatomy more than a rescaled reference man: leg and trunk lengths and every vertebra's height
(``segment_stretch``), spine curvature, organ positions relative to the spine, brown fat."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

REF_HEIGHT = 1750.0  # mm, the reference anatomy is laid out for this height

@dataclass(frozen=True)
class Patient:
    sex: str  # "M" | "F"
    height_mm: float
    girth: float  # 0.85 (lean) .. 1.35 (obese): subcutaneous and visceral fat
    build: float  # skeletal width factor, ~0.94 .. 1.06
    roll_deg: float  # rotation about the long axis on the table
    organ_scale: dict[str, float] = field(default_factory=dict)  # liver, spleen, kidney, heart, bladder
    bowel_seed: int = 0  # layout of small-bowel loops and gas
    # Non-rigid proportions: a length factor per segment of the long axis (lower leg, thigh, pelvis, each
    # vertebra C1..L5 from the top, head; see ``painter.proportions_warp``); empty = the reference's.
    segment_stretch: tuple[float, ...] = ()
    spine_curvature: float = 1.0  # x the reference's cervical/lumbar lordosis and thoracic kyphosis
    organ_shift: dict[str, float] = field(default_factory=dict)  # organ -> head-foot offset (mm, + = up)
    arms_up: bool = False  # arms raised above the head (most oncological PET/CT) or down by the sides
    brown_fat: bool = False  # activated brown fat (FDG-avid supraclavicular and paravertebral fat)

    @property
    def weight_kg(self) -> float:
        bmi = 23.5 * self.girth**1.5 * (0.96 if self.sex == "F" else 1.0)
        return round(float(bmi * (self.height_mm / 1000) ** 2), 1)

    @property
    def vscale(self) -> float:
        return self.height_mm / REF_HEIGHT

    @property
    def lscale(self) -> float:
        return self.build * self.vscale**0.8


def sample_patient(rng: np.random.Generator, sex: str | None = None) -> Patient:
    """A plausible adult: height 1.5-1.95 m by sex, girth, build, a few degrees of roll, organ sizes."""
    sex = sex or ("M" if rng.random() < 0.5 else "F")
    mean = 1760.0 if sex == "M" else 1630.0
    height = float(np.clip(rng.normal(mean, 70.0), 1500.0, 1950.0))
    girth = float(np.clip(rng.lognormal(np.log(1.02), 0.11), 0.85, 1.35))
    build = float(np.clip(rng.normal(1.0, 0.025), 0.94, 1.06))
    roll = float(rng.uniform(-4.0, 4.0))
    organs = {k: float(np.clip(rng.normal(1.0, sd), 0.75, 1.35)) for k, sd in
              (("liver", 0.08), ("spleen", 0.12), ("kidney", 0.06), ("heart", 0.06))}
    organs["bladder"] = float(rng.uniform(0.5, 1.4))
    bowel_seed = int(rng.integers(0, 2**31))
    # Proportions from a stream of their own (``rng`` is left where it was: the draws after a patient's, its
    # vendor, tracer and visits, stay what they were before proportions existed).
    rng = np.random.default_rng([bowel_seed, 5])
    # A leg factor (both leg segments), per-region spine factors times per-level factors.
    legs = float(rng.lognormal(0.0, 0.045))
    region = {r: float(rng.lognormal(0.0, 0.05)) for r in "CTL"}
    stretch = [legs * float(rng.lognormal(0.0, 0.02)) for _ in range(2)]
    stretch.append(float(rng.lognormal(0.0, 0.06)))  # pelvis
    levels = [region["C" if i < 7 else "T" if i < 19 else "L"] * float(rng.lognormal(0.0, 0.07))
              for i in range(24)]  # C1..C7, T1..T12, L1..L5
    stretch += levels[::-1]  # keyframes run up the body: L5 first
    stretch.append(float(rng.lognormal(0.0, 0.03)))  # head
    curvature = float(np.clip(rng.normal(1.0, 0.2), 0.6, 1.4))
    shift = {k: float(rng.normal(0.0, sd)) for k, sd in (("liver", 12.0), ("spleen", 15.0), ("kidney", 15.0),
                                                            ("heart", 10.0), ("bladder", 8.0), ("stomach", 15.0))}
    brown = bool(rng.random() < 0.12 * float(np.clip(1.6 - girth, 0.3, 1.0)) / 0.6)
    return Patient(sex, height, girth, build, roll, organs, bowel_seed, tuple(stretch), curvature, shift, False,
                   brown)


def reference_patient(sex: str = "M") -> Patient:
    """The reference adult without variation (tests, previews)."""
    return Patient(sex, REF_HEIGHT if sex == "M" else 1650.0, 1.0, 1.0, 0.0,
                   {"liver": 1.0, "spleen": 1.0, "kidney": 1.0, "heart": 1.0, "bladder": 1.0}, 0)

