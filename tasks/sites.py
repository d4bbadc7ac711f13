"""A lesion's candidate taxonomy site(s), from an organ segmentation as a hospital has it, and its position.

A real whole-body segmenter (``data_contracts.segmentation``) names organs, bones, lobes and vessels, never
lymph-node stations. So:

* a lesion whose voxels lie mostly (>= half) inside a class with sites gets that class's sites, the one its
  position inside the class suggests first (liver: Couinaud segment from where it lies in the liver's box;
  hip: ilium above the acetabulum, else pubis anteriorly, ischium posteriorly);
* any other lesion (in fat, on a vessel, muscle) gets a site from its position relative to segmented
  landmarks: cervical levels by vertebral level and depth, supraclavicular at the clavicles, axillary
  lateral of the lungs, mediastinal stations by the trachea, carina and aortic arch, hilar beside the carina,
  pleura at the lung surface, abdominal stations by the aorta, liver and vertebral levels, pelvic stations
  by the L5/S1 level, the hips and femoral heads; breast in front of the chest wall.

The first candidate is the derived site; the report decides among several (``tasks.link``). Rules are
approximate, and their agreement with the synthetic truth is measured (``tasks.realism``), not assumed.
LPS: +x patient left, +y posterior, +z superior.
"""

from __future__ import annotations

import numpy as np

from data_contracts import segmentation
from tasks.landmarks import Landmarks

INSIDE_SHARE = 0.5  # a lesion "is in" a class when at least this share of its voxels carries the class


def _side(x: float, mid: float) -> str:
    return "l" if x > mid else "r"


def _liver_order(p: np.ndarray, m: Landmarks) -> tuple[str, ...]:
    e = m.get("liver")
    u = (p[0] - e.lo_mm[0]) / max(1.0, e.hi_mm[0] - e.lo_mm[0])  # 0 = patient's far right
    w = (p[1] - e.lo_mm[1]) / max(1.0, e.hi_mm[1] - e.lo_mm[1])  # 0 = anterior
    v = (p[2] - e.lo_mm[2]) / max(1.0, e.hi_mm[2] - e.lo_mm[2])  # 0 = inferior
    if u > 0.72:
        best = "liver_s2" if v > 0.5 else "liver_s3"
    elif u > 0.55:
        best = "liver_s4"
    elif u > 0.45 and w > 0.55:
        best = "liver_s1"
    elif w > 0.5:
        best = "liver_s7" if v > 0.5 else "liver_s6"
    else:
        best = "liver_s8" if v > 0.5 else "liver_s5"
    return (best, *(f"liver_s{i}" for i in range(1, 9) if f"liver_s{i}" != best))


def _hip_order(cls: str, p: np.ndarray, m: Landmarks) -> tuple[str, ...]:
    e = m.get(cls)
    s = "l" if cls.endswith("left") else "r"
    v = (p[2] - e.lo_mm[2]) / max(1.0, e.hi_mm[2] - e.lo_mm[2])
    best = f"ilium_{s}" if v > 0.45 else (f"pubis_{s}" if p[1] < e.centroid_mm[1] else f"ischium_{s}")
    return (best, *(x for x in (f"ilium_{s}", f"pubis_{s}", f"ischium_{s}") if x != best))


def _z(m: Landmarks, level: str, default: float | None = None) -> float | None:
    z = m.level_z(level)
    return z if z is not None else default


def _clavicle_z(m: Landmarks) -> float | None:
    clav = [e.centroid_mm[2] for n in ("clavicula_left", "clavicula_right") if (e := m.get(n))]
    return float(np.mean(clav)) if clav else None


def _carina_z(m: Landmarks, z: float) -> float:
    """The carina: the trachea's lower end; a map whose trachea stops above T3 (no bronchi) gives T4/T5."""
    trachea, t3 = m.get("trachea"), _z(m, "T3")
    if trachea is not None and (t3 is None or trachea.lo_mm[2] < t3):
        return float(trachea.lo_mm[2])
    t4, t5 = _z(m, "T4"), _z(m, "T5")
    return (t4 + t5) / 2 if t4 is not None and t5 is not None else (t4 or t5 or z)


def _neck(p: np.ndarray, m: Landmarks, mid: float, side: str) -> str:
    spine_y = m.spine_y(p[2])
    depth = (spine_y - p[1]) if spine_y is not None else 30.0  # mm anterior of the vertebral body
    c1, c3, c5 = _z(m, "C1"), _z(m, "C3"), _z(m, "C5")
    c2 = _z(m, "C2")
    clav = _clavicle_z(m)
    if clav is not None and p[2] < clav + 25.0 and abs(p[0] - mid) > 25.0:
        return f"ln_supraclavicular_{side}"
    if abs(p[0] - mid) < 20.0 and depth > 10.0 and c2 is not None and p[2] >= c2 - 5.0:
        return "nasopharynx"  # midline, in front of C1-C2
    if c3 is not None and p[2] >= c3 and depth > 45.0:
        return f"ln_cervical_i_{side}"  # submental / submandibular: high and far anterior
    if abs(p[0] - mid) < 20.0 and depth > 10.0:
        return f"ln_cervical_vi_{side}"
    if depth < 0.0:
        return f"ln_cervical_v_{side}"
    if c3 is not None and p[2] >= c3:
        return f"ln_cervical_ii_{side}"
    if c5 is not None and p[2] >= c5:
        return f"ln_cervical_iii_{side}"
    return f"ln_cervical_iv_{side}"


def _chest(p: np.ndarray, m: Landmarks, mid: float, side: str, near: frozenset[str]) -> str:
    lungs = [e for n, e in m.classes.items() if n.startswith("lung_")]
    lung_lat = max((abs(x - mid) for e in lungs for x in (e.lo_mm[0], e.hi_mm[0])), default=150.0)
    lung_front = min((e.lo_mm[1] for e in lungs), default=p[1] - 1)
    off = abs(p[0] - mid)
    if off > lung_lat - 10.0:
        return f"ln_axillary_{side}"
    if p[1] < lung_front - 10.0 and off > 25.0:
        return f"breast_{side}"
    trachea, aorta = m.get("trachea"), m.get("aorta")
    carina = _carina_z(m, p[2])
    arch = float(aorta.hi_mm[2]) if aorta else _z(m, "T3", p[2])
    tx = float(trachea.centroid_mm[0]) if trachea else mid
    clav = _clavicle_z(m)
    if clav is not None and p[2] > clav - 15.0 and off > 25.0:
        return f"ln_supraclavicular_{side}"
    lung_near = any(n.startswith("lung_") for n in near)
    if off > 0.65 * lung_lat and lung_near:
        return f"pleura_{side}"
    if off > 25.0 and abs(p[2] - carina) < 40.0:
        return f"ln_hilar_{side}"
    if p[2] < carina:
        return "ln_mediastinal_7" if p[2] > carina - 40.0 else "ln_mediastinal_8"
    if p[2] > arch:
        return "ln_mediastinal_2l" if p[0] > tx else "ln_mediastinal_2r"
    if p[0] > tx + 15.0:
        ay = float(aorta.centroid_mm[1]) if aorta else p[1]
        return "ln_mediastinal_6" if p[1] < ay - 20.0 else "ln_mediastinal_5"
    return "ln_mediastinal_4l" if p[0] > tx else "ln_mediastinal_4r"


def _abdomen(p: np.ndarray, m: Landmarks, mid: float) -> str:
    spine_y = m.spine_y(p[2])
    depth = (spine_y - p[1]) if spine_y is not None else 40.0
    t12, l1 = _z(m, "T12"), _z(m, "L1")
    liver = m.get("liver")
    if liver is not None and p[0] < mid - 15.0 and p[2] > liver.lo_mm[2] and depth > 30.0 \
            and p[2] < liver.centroid_mm[2]:
        return "ln_porta_hepatis"
    if depth > 70.0:
        return "ln_mesenteric"
    if t12 is not None and l1 is not None and p[2] >= l1 - 15.0 and depth > 35.0 and abs(p[0] - mid) < 30.0:
        return "ln_celiac"
    return "ln_retroperitoneal_aortocaval" if p[0] < mid else "ln_retroperitoneal_paraaortic"


def _pelvis(p: np.ndarray, m: Landmarks, mid: float, side: str) -> str:
    femurs = [e for n in ("femur_left", "femur_right") if (e := m.get(n))]
    heads = max((float(e.hi_mm[2]) for e in femurs), default=None)
    s1 = m.get("vertebrae_S1") or m.get("sacrum")
    if heads is not None and p[2] < heads + 10.0:
        return f"ln_inguinal_{side}"
    if s1 is not None and p[2] > s1.hi_mm[2] - 15.0:
        return f"ln_common_iliac_{side}"
    hips = [e for n in ("hip_left", "hip_right") if (e := m.get(n))]
    hy = float(np.mean([e.centroid_mm[1] for e in hips])) if hips else p[1]
    return f"ln_external_iliac_{side}" if p[1] < hy else f"ln_internal_iliac_{side}"


def position_site(p: np.ndarray, m: Landmarks, near: frozenset[str] = frozenset()) -> str | None:
    """The site a lesion outside any site-bearing class gets from where it lies among the landmarks."""
    mid = m.midline_x()
    side = _side(float(p[0]), mid)
    c1, t1, t12, l5 = _z(m, "C1"), _z(m, "T1"), _z(m, "T12"), _z(m, "L5")
    if c1 is not None and p[2] > c1 + 10.0:
        return "nasopharynx" if abs(p[0] - mid) < 20.0 else f"ln_cervical_ii_{side}"
    if t1 is not None and p[2] > t1:
        return _neck(p, m, mid, side)
    if t12 is not None and p[2] > t12:
        return _chest(p, m, mid, side, near)
    if l5 is not None and p[2] > l5:
        return _abdomen(p, m, mid)
    if l5 is not None or m.get("sacrum") is not None:
        return _pelvis(p, m, mid, side)
    return None


def lesion_sites(centroid_mm, inside: dict[str, float], m: Landmarks,
                 near: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """Candidate sites, the derived one first. ``inside``: canonical class -> share of the lesion's voxels;
    ``near``: classes within a few mm of the lesion."""
    p = np.asarray(centroid_mm, dtype=float)
    best = max(inside, key=inside.get) if inside else None
    if best is not None and inside[best] >= INSIDE_SHARE:
        sites = segmentation.class_sites()[best]
        if best == "liver":
            return _liver_order(p, m)
        if best.startswith("hip_"):
            return _hip_order(best, p, m)
        if sites:
            return sites
    site = position_site(p, m, near)
    return (site,) if site else ()


def study_lesion_sites(anat: np.ndarray, instances: np.ndarray, geometry, lesions, m: Landmarks,
                       near_mm: float = 6.0) -> dict[int, tuple[str, ...]]:
    """Candidate sites of every lesion of one study. ``anat``: canonical class labels, ``instances``: the
    lesion instance map, both (z, y, x) on ``geometry``; ``lesions``: ``Lesion`` records (bbox, centroid)."""
    from scipy import ndimage

    pad = [max(1, int(np.ceil(near_mm / s))) for s in (geometry.spacing[2], geometry.spacing[1], geometry.spacing[0])]
    out = {}
    for les in lesions:
        z0, y0, x0, z1, y1, x1 = les.bbox
        box = tuple(slice(max(0, a - q), b + q) for a, b, q in zip((z0, y0, x0), (z1, y1, x1), pad))
        mask = instances[box] == les.instance
        labels = anat[box]
        under = labels[mask]
        counts = np.bincount(under, minlength=1)
        inside = {segmentation.CLASSES[k - 1]: counts[k] / under.size for k in np.flatnonzero(counts) if k > 0}
        ring = ndimage.binary_dilation(mask, iterations=max(pad)) & ~mask
        near = frozenset(segmentation.CLASSES[k - 1] for k in np.unique(labels[ring]) if k > 0)
        out[les.instance] = lesion_sites(les.centroid_mm, inside, m, near)
    return out
