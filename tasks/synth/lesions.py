"""Lesion plans: where a patient's disease sits, what it looks like on CT, how avid it is on PET.

``plan_lesions`` draws *what* a patient has from a disease scenario that fits the tracer (FDG: lymphoma,
lung, nasopharyngeal, liver, breast cancer; PSMA: prostate cancer) -- groups of lesions at one taxonomy
location with one CT finding ("two nodes at station 4R", "multiple osteoblastic lesions in T7"), each with a
size, a true uptake (SUV before the PSF: what a large lesion would read) and the segmenter/report flags
(about 5 % not in the mask, 5 % not in the report). ``plan_mimics`` adds benign look-alikes (reactive nodes,
inflammation): imaged like lesions, never in the mask, the truth or the report.

The plan is then placed on the CT label map (``lesion_placement``: inside its structure, two voxels from
every other lesion) and imaged (``lesion_imaging``: CT appearance by window physics, PET uptake with partial
volume and the PSF's size-dependent recovery, SUVmax measured on the final PET).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_contracts import taxonomy
from data_contracts.findings import CTFinding, Tracer, ct_findings_for
from data_contracts.taxonomy import Location, System

MISSED_FRACTION = 0.05  # in the image and the report, not in the mask (segmenter missed it)
UNREPORTED_FRACTION = 0.05  # in the mask, not in the report (a distractor for linking)


# ------------------------------------------------------------------------------------------ the plan


@dataclass
class LesionSpec:
    """One lesion before placement."""

    location_id: str
    ct_finding: CTFinding
    size_mm: float  # intended long axis
    short_ratio: float  # short axes / long axis
    target_suv: float  # true uptake (SUV) of the lesion's tissue, before the PSF's partial-volume loss
    group: int  # lesions of one group share location and finding
    in_mask: bool = True
    reported: bool = True
    benign: str = ""  # a benign look-alike ("reactive node", "inflammation"): imaged, never a lesion

    @property
    def location(self) -> Location:
        return taxonomy.get(self.location_id)


# Scenario: (name, weight, sites). A site: (location ids, weight, findings with weights or None for default,
# max group size). Location ids may end in "*" (prefix match) or "_?" (either side).
Site = tuple[tuple[str, ...], float, dict[CTFinding, float] | None, int]
F = CTFinding

_BONE_FDG = {F.osteolytic: 0.5, F.mixed_bone_lesion: 0.2, F.osteoblastic: 0.1, F.no_ct_correlate: 0.2}
_BONE_PSMA = {F.osteoblastic: 0.6, F.mixed_bone_lesion: 0.15, F.osteolytic: 0.05, F.no_ct_correlate: 0.2}
_NODE = {F.enlarged_lymph_node: 0.65, F.non_enlarged_lymph_node: 0.3, F.no_ct_correlate: 0.05}
# PSMA finds nodal disease early: most PSMA-positive nodes are under 10 mm (with 25 % of them enlarged a
# 24-patient cohort's share under 10 mm came out 0.45: docs/realism/demo_seed6161.md; 15 % on a fresh seed:
# 0.73, demo_seed8484.md).
_NODE_PSMA = {F.enlarged_lymph_node: 0.15, F.non_enlarged_lymph_node: 0.8, F.no_ct_correlate: 0.05}
_LUNG = {F.solid_nodule: 0.45, F.ground_glass_opacity: 0.2, F.mass: 0.15, F.consolidation: 0.1,
         F.no_ct_correlate: 0.1}
_AXIAL = ("vertebra_*", "sacrum", "ilium_?", "pubis_?", "ischium_?", "rib_*", "sternum", "femur_?", "humerus_?",
          "scapula_?", "clavicle_?", "skull")
_ORGAN_FINDINGS: dict[str, dict[CTFinding, float]] = {
    "liver_": {F.hypodense_lesion: 0.7, F.mass: 0.2, F.no_ct_correlate: 0.1},
    "spleen": {F.hypodense_lesion: 0.7, F.no_ct_correlate: 0.3},
    "kidney_": {F.mass: 0.6, F.hypodense_lesion: 0.4},
    "adrenal_": {F.mass: 0.8, F.no_ct_correlate: 0.2},
    "pancreas": {F.mass: 0.5, F.hypodense_lesion: 0.5},
    "prostate": {F.no_ct_correlate: 0.6, F.mass: 0.4},
    "nasopharynx": {F.soft_tissue_thickening: 0.6, F.mass: 0.4},
    "thyroid": {F.mass: 0.4, F.hypodense_lesion: 0.3, F.no_ct_correlate: 0.3},
    "breast_": {F.mass: 0.85, F.no_ct_correlate: 0.15},
    "esophagus": {F.soft_tissue_thickening: 0.7, F.mass: 0.3},
    "stomach": {F.soft_tissue_thickening: 0.7, F.mass: 0.3},
    "colon": {F.soft_tissue_thickening: 0.6, F.mass: 0.2, F.no_ct_correlate: 0.2},
    "bladder": {F.soft_tissue_thickening: 0.7, F.mass: 0.3},
}

SCENARIOS: dict[Tracer, list[tuple[str, float, list[Site]]]] = {
    Tracer.fdg: [
        ("lymphoma", 0.30, [
            (("ln_cervical_*", "ln_supraclavicular_?"), 3.0, None, 3),
            (("ln_axillary_?", "ln_mediastinal_*", "ln_hilar_?"), 3.0, None, 3),
            (("ln_retroperitoneal_*", "ln_mesenteric", "ln_celiac", "ln_porta_hepatis"), 2.0, None, 3),
            (("ln_common_iliac_?", "ln_external_iliac_?", "ln_internal_iliac_?", "ln_inguinal_?"), 2.0, None, 3),
            (("spleen",), 0.8, {F.hypodense_lesion: 0.5, F.no_ct_correlate: 0.5}, 3),
            (_AXIAL, 0.8, {F.no_ct_correlate: 0.7, F.osteolytic: 0.3}, 3),
        ]),
        ("lung_cancer", 0.30, [
            (("lung_*",), 3.0, {F.mass: 0.4, F.solid_nodule: 0.35, F.ground_glass_opacity: 0.1,
                               F.consolidation: 0.1, F.no_ct_correlate: 0.05}, 2),
            (("ln_hilar_?", "ln_mediastinal_*", "ln_supraclavicular_?"), 3.0, None, 2),
            (("pleura_?",), 0.6, {F.solid_nodule: 0.5, F.mass: 0.3, F.no_ct_correlate: 0.2}, 3),
            (("adrenal_?",), 0.7, None, 1),
            (("liver_*",), 0.8, None, 3),
            (_AXIAL, 1.5, _BONE_FDG, 4),
        ]),
        ("nasopharyngeal", 0.15, [
            (("nasopharynx",), 2.0, None, 1),
            (("ln_cervical_*",), 4.0, None, 3),
            (("ln_supraclavicular_?",), 0.8, None, 2),
            (("lung_*",), 0.6, {F.solid_nodule: 0.8, F.no_ct_correlate: 0.2}, 3),
            (("liver_*",), 0.5, None, 2),
            (_AXIAL, 1.0, _BONE_FDG, 3),
        ]),
        ("liver_cancer", 0.10, [
            (("liver_*",), 4.0, None, 3),
            (("ln_porta_hepatis", "ln_celiac", "ln_retroperitoneal_*"), 2.0, None, 2),
            (("lung_*",), 1.0, {F.solid_nodule: 0.9, F.no_ct_correlate: 0.1}, 3),
            (_AXIAL, 0.8, _BONE_FDG, 2),
            (("esophagus", "stomach", "colon", "pancreas", "kidney_?", "thyroid", "bladder"), 0.6, None, 1),
        ]),
        ("breast_cancer", 0.15, [
            (("breast_?",), 2.0, None, 1),
            (("ln_axillary_?", "ln_supraclavicular_?", "ln_mediastinal_*"), 3.0, None, 3),
            (("liver_*",), 1.0, None, 3),
            (("lung_*", "pleura_?"), 0.8, {F.solid_nodule: 0.8, F.no_ct_correlate: 0.2}, 2),
            (_AXIAL, 2.0, _BONE_FDG, 4),
        ]),
    ],
    Tracer.psma: [
        ("prostate_cancer", 1.0, [
            (("prostate",), 2.0, None, 1),
            (("ln_common_iliac_?", "ln_external_iliac_?", "ln_internal_iliac_?"), 3.0, None, 3),
            (("ln_retroperitoneal_*", "ln_inguinal_?", "ln_mesenteric"), 1.2, None, 2),
            (("ln_mediastinal_*", "ln_supraclavicular_?", "ln_cervical_*", "ln_hilar_?"), 0.6, None, 2),
            (_AXIAL, 4.0, _BONE_PSMA, 5),
            (("lung_*",), 0.4, {F.solid_nodule: 0.8, F.no_ct_correlate: 0.2}, 2),
            (("liver_*",), 0.3, None, 2),
        ]),
    ],
}
ANY_SITE_FRACTION = 0.12  # groups at a uniformly drawn taxonomy location (coverage of rare categories)


def _expand(patterns: tuple[str, ...], sex: str) -> list[str]:
    ids = [loc.id for loc in taxonomy.locations()]
    out: list[str] = []
    for p in patterns:
        if p.endswith("*"):
            out += [i for i in ids if i.startswith(p[:-1])]
        elif p.endswith("_?"):
            out += [p[:-1] + "l", p[:-1] + "r"]
        else:
            out.append(p)
    if sex == "F":
        out = [i for i in out if i != "prostate"]
    return out


def default_findings(loc: Location, tracer: Tracer) -> dict[CTFinding, float]:
    if loc.system is System.bone:
        return _BONE_PSMA if tracer is Tracer.psma else _BONE_FDG
    if loc.system is System.lymph_node:
        return _NODE_PSMA if tracer is Tracer.psma else _NODE
    if loc.system is System.lung:
        if loc.id.startswith("pleura"):
            return {F.solid_nodule: 0.5, F.mass: 0.3, F.no_ct_correlate: 0.2}
        return _LUNG
    for prefix, table in _ORGAN_FINDINGS.items():
        if loc.id.startswith(prefix):
            return table
    return {f: 1.0 for f in ct_findings_for(loc.system)}


def _pick(rng: np.random.Generator, table: dict) -> object:
    keys = list(table)
    p = np.array([table[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _size(finding: CTFinding, loc: Location, rng: np.random.Generator, tracer: Tracer = Tracer.fdg
          ) -> tuple[float, float]:
    """(long axis mm, short/long ratio) for a finding."""
    u = rng.uniform
    if finding is F.enlarged_lymph_node:
        short = float(np.exp(u(np.log(11.0), np.log(20.0 if tracer is Tracer.psma else 32.0))))
        long = min(short * u(1.1, 1.6), 60.0)
        return long, short / long
    if finding is F.non_enlarged_lymph_node:
        short = u(4.0, 7.5) if tracer is Tracer.psma else u(5.0, 9.5)
        long = short * u(1.0, 1.3)
        return long, short / long
    if finding is F.no_ct_correlate and loc.system is System.lymph_node:  # avid, yet not seen on CT: small
        return float(u(4.0, 9.0)), float(u(0.7, 0.95))
    ranges = {
        F.solid_nodule: (6, 28), F.ground_glass_opacity: (8, 30), F.consolidation: (20, 50), F.mass: (18, 55),
        F.osteolytic: (8, 35), F.osteoblastic: (6, 30), F.mixed_bone_lesion: (10, 35), F.hypodense_lesion: (8, 45),
        F.soft_tissue_thickening: (12, 35), F.no_ct_correlate: (6, 20),
    }
    lo, hi = ranges[finding]
    if finding is F.mass and loc.system is System.lung:
        lo, hi = 30, 60
    return float(np.exp(u(np.log(lo), np.log(hi)))), float(u(0.6, 0.95))


def _target_suv(tracer: Tracer, loc: Location, finding: CTFinding, rng: np.random.Generator) -> float:
    """True uptake (SUV): FDG lesions 3-19x the liver's, PSMA lesions higher; the PSF lowers what a small
    lesion reads (measured SUVmax / liver SUVmean: median about 3), so SUVmax depends on size as on a real
    scanner."""
    lo, hi = (5.5, 38.0) if tracer is Tracer.fdg else (5.0, 60.0)
    if finding is F.non_enlarged_lymph_node:
        hi = 22.0 if tracer is Tracer.fdg else 40.0
    if finding is F.no_ct_correlate:
        lo = max(lo, 3.0)
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def plan_lesions(tracer: Tracer, sex: str, n: int, rng: np.random.Generator) -> tuple[str, list[LesionSpec]]:
    """A disease scenario for the tracer and ``n`` lesions in groups; returns (scenario name, specs)."""
    scen = [s for s in SCENARIOS[tracer] if not (s[0] == "breast_cancer" and sex == "M")]
    weights = np.array([s[1] for s in scen])
    name, _, sites = scen[int(rng.choice(len(scen), p=weights / weights.sum()))]
    specs: list[LesionSpec] = []
    group = 0
    all_ids = [loc.id for loc in taxonomy.locations() if not (sex == "F" and loc.id == "prostate")]
    first = True
    while len(specs) < n:
        if rng.random() < ANY_SITE_FRACTION and not first:
            loc_id, findings, max_group = str(rng.choice(all_ids)), None, 2
        else:
            site = sites[0] if first else sites[int(rng.choice(len(sites), p=_site_p(sites)))]
            ids = _expand(site[0], sex)
            loc_id, findings, max_group = str(rng.choice(ids)), site[2], site[3]
        first = False
        loc = taxonomy.get(loc_id)
        table = {f: w for f, w in (findings or default_findings(loc, tracer)).items()
                 if loc.system in _systems(f)} or default_findings(loc, tracer)
        finding = _pick(rng, table)
        k = 1
        if max_group > 1:
            r = rng.random()
            k = 1 if r < 0.6 else 2 if r < 0.82 else int(rng.integers(3, max_group + 2))
        k = max(1, min(k, max_group + 1, n - len(specs)))
        for _ in range(k):
            size, ratio = _size(finding, loc, rng, tracer)
            specs.append(LesionSpec(loc_id, finding, size, ratio, _target_suv(tracer, loc, finding, rng), group))
        group += 1
    for s in specs:  # segmenter misses and report distractors (never both on one lesion)
        r = rng.random()
        s.in_mask = not (r < MISSED_FRACTION)
        s.reported = not (MISSED_FRACTION <= r < MISSED_FRACTION + UNREPORTED_FRACTION)
    return name, specs


# Benign look-alikes: (kind, tracer, probability per study, location patterns, finding, size range (mm),
# uptake range (SUV)). Reactive nodes are small and mildly avid; inflammation (pneumonia) is a consolidation.
MIMICS: tuple[tuple[str, Tracer, float, tuple[str, ...], CTFinding, tuple[float, float], tuple[float, float]], ...] = (
    ("reactive node", Tracer.fdg, 0.30, ("ln_cervical_ii_?", "ln_axillary_?", "ln_inguinal_?"),
     F.non_enlarged_lymph_node, (6.0, 11.0), (3.0, 6.0)),
    ("reactive node", Tracer.psma, 0.15, ("ln_inguinal_?", "ln_axillary_?"), F.non_enlarged_lymph_node,
     (6.0, 11.0), (2.5, 5.0)),
    ("inflammation", Tracer.fdg, 0.08, ("lung_*",), F.consolidation, (20.0, 40.0), (2.5, 6.0)),
)


def plan_mimics(tracer: Tracer, sex: str, rng: np.random.Generator) -> list[LesionSpec]:
    """Benign look-alikes for one study (often none): imaged like lesions, never in the mask or the truth."""
    out: list[LesionSpec] = []
    for kind, tr, p, patterns, finding, (lo, hi), (s_lo, s_hi) in MIMICS:
        if tr is not tracer or rng.random() >= p:
            continue
        ids = _expand(patterns, sex)
        for _ in range(int(rng.integers(1, 3)) if kind == "reactive node" else 1):
            size = float(rng.uniform(lo, hi))
            out.append(LesionSpec(str(rng.choice(ids)), finding, size, float(rng.uniform(0.7, 0.95)),
                                  float(rng.uniform(s_lo, s_hi)), group=-1, in_mask=False, reported=False,
                                  benign=kind))
    return out


def _site_p(sites: list[Site]) -> np.ndarray:
    w = np.array([s[1] for s in sites], float)
    return w / w.sum()


def _systems(f: CTFinding):
    from data_contracts.findings import CT_FINDINGS

    return CT_FINDINGS[f].systems
