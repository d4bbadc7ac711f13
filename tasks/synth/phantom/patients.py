"""Patient sampling: sex, height, girth, build, roll on the table, organ sizes."""

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
    return Patient(sex, height, girth, build, roll, organs, int(rng.integers(0, 2**31)))


def reference_patient(sex: str = "M") -> Patient:
    """The reference adult without variation (tests, previews)."""
    return Patient(sex, REF_HEIGHT if sex == "M" else 1650.0, 1.0, 1.0, 0.0,
                   {"liver": 1.0, "spleen": 1.0, "kidney": 1.0, "heart": 1.0, "bladder": 1.0}, 0)

