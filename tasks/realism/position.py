"""Position figures: scan range, arm position, and how much the scan position alone gives away.

All from the organ segmentation's landmarks (``tasks.landmarks.Landmarks``), so they run on a real drop:

* scan top: ``vertex`` (the skull lies wholly inside, >= 5 mm below the top slice), ``skull_base`` (the top
  slice cuts the skull, or lies at most 60 mm above C1), ``neck_or_lower``; scan bottom: ``mid_thigh`` (the
  bottom slice cuts a femur), ``knee_or_below`` (both femurs wholly inside),
  ``pelvis_or_higher`` (no femur);
* arms: ``up`` when the humeri's centroid lies above the clavicles' centroid, ``down`` below, else unknown;
* vertebra position: a vertebra's centroid as a fraction of the scan from its top; per level the SD over
  patients (one study each), and a leave-one-patient-out rule that names each vertebra by the level whose
  mean fraction in the other patients is nearest.
"""

from __future__ import annotations

import numpy as np

from tasks.landmarks import Landmarks

LEVELS = (*(f"C{i}" for i in range(1, 8)), *(f"T{i}" for i in range(1, 13)), *(f"L{i}" for i in range(1, 6)))
MARGIN_MM = 5.0


def scan_top(m: Landmarks) -> str:
    top = m.scan_z[1]
    skull = m.get("skull")
    if skull is not None and skull.hi_mm[2] <= top - MARGIN_MM:
        return "vertex"
    c1 = m.level_z("C1")
    if skull is not None or (c1 is not None and top - c1 <= 60.0):
        return "skull_base"
    return "neck_or_lower"


def scan_bottom(m: Landmarks) -> str:
    bottom = m.scan_z[0]
    femurs = [e for n in ("femur_left", "femur_right") if (e := m.get(n)) is not None]
    if not femurs:
        return "pelvis_or_higher"
    if any(e.lo_mm[2] <= bottom + MARGIN_MM for e in femurs):
        return "mid_thigh"
    return "knee_or_below"


def arms(m: Landmarks) -> str | None:
    hum = [e for n in ("humerus_left", "humerus_right") if (e := m.get(n)) is not None]
    cla = [e for n in ("clavicula_left", "clavicula_right") if (e := m.get(n)) is not None]
    if not hum or not cla:
        return None
    h = float(np.mean([e.centroid_mm[2] for e in hum]))
    c = float(np.mean([e.centroid_mm[2] for e in cla]))
    return "up" if h > c else "down"


def vertebra_fractions(m: Landmarks) -> dict[str, float]:
    """Level -> centroid position as a fraction of the scan length from its top (superior end)."""
    lo, hi = m.scan_z
    if hi <= lo:
        return {}
    return {lv: (hi - z) / (hi - lo) for lv in LEVELS if (z := m.level_z(lv)) is not None}


def fraction_spread(per_patient: list[dict[str, float]], min_patients: int = 3) -> tuple[float, float]:
    """(median over levels of the between-patient SD of the fraction, median gap between adjacent levels'
    mean fractions)."""
    sds, means = [], {}
    for lv in LEVELS:
        vals = [p[lv] for p in per_patient if lv in p]
        if len(vals) >= min_patients:
            sds.append(float(np.std(vals, ddof=1)))
            means[lv] = float(np.mean(vals))
    gaps = [abs(means[b] - means[a]) for a, b in zip(LEVELS, LEVELS[1:]) if a in means and b in means]
    return (float(np.median(sds)) if sds else float("nan"), float(np.median(gaps)) if gaps else float("nan"))


def level_rule_lopo(per_patient: list[dict[str, float]]) -> tuple[float, int]:
    """(accuracy, vertebrae scored) of naming each vertebra by the nearest mean fraction of the others."""
    hits = total = 0
    for i, held in enumerate(per_patient):
        others = [p for j, p in enumerate(per_patient) if j != i]
        means = {lv: float(np.mean(v)) for lv in LEVELS if (v := [p[lv] for p in others if lv in p])}
        if not means:
            continue
        names = list(means)
        ref = np.array([means[n] for n in names])
        for lv, f in held.items():
            total += 1
            hits += names[int(np.argmin(np.abs(ref - f)))] == lv
    return (hits / total if total else float("nan")), total
