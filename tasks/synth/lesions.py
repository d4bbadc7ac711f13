"""Lesions: where a patient's disease sits, what it looks like on CT, how avid it is on PET.

Three steps, each on the grids of one study:

1. ``plan_lesions`` draws *what* a patient has from a disease scenario that fits the tracer (FDG: lymphoma,
   lung, nasopharyngeal, liver, breast cancer; PSMA: prostate cancer) -- groups of lesions at one taxonomy
   location with one CT finding ("two nodes at station 4R", "multiple osteoblastic lesions in T7"), each
   with a size, a true uptake (SUV before the PSF: what a large lesion would read) and the segmenter/report
   flags (about 5 % not in the mask, 5 % not in the report). ``plan_mimics`` adds benign look-alikes
   (reactive nodes, inflammation): imaged like lesions, never in the mask, the truth or the report.
2. ``place_lesions`` puts each lesion inside its structure on the CT label map: an ellipsoid (lobulated
   for masses) clipped to the tissue it may occupy (bone lesions stay in their bone, lung lesions in the
   lung of their side, nodes in soft tissue), kept two voxels away from every other lesion so that
   connected components are instances.
3. ``apply_ct`` writes the CT appearance by window physics (ground glass about -500 HU in lung, osteoblastic
   1200-1600 HU, osteolytic 0-100 HU, hypodense = parenchyma - 10..30 HU, ...); ``pet_activity`` adds the
   uptake to the PET's true-activity map by area-weighting the CT mask onto the PET grid (partial volume);
   the PSF then lowers a small lesion's peak (size-dependent recovery), and ``measure`` reads SUVmax back
   from the final PET at the mask's voxels (what a reader measures) and the long axis from the mask.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from data_contracts import anatomy, taxonomy
from data_contracts.caption import caption_text
from data_contracts.findings import CTFinding, Tracer, ct_findings_for, grade_for_suv
from data_contracts.records import LesionTruth, PetFinding
from data_contracts.taxonomy import Location, System
from tasks.synth import phantom as ph

SUV_RANGE = (1.5, 25.0)
MISSED_FRACTION = 0.05  # in the image and the report, not in the mask (segmenter missed it)
UNREPORTED_FRACTION = 0.05  # in the mask, not in the report (a distractor for linking)
GAP_VOXELS = 2  # free voxels between two lesions
NODE_REACH_MM = 12.0  # how far outside its station region a node's centre may lie


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
# PSMA finds nodal disease early: most PSMA-positive nodes are under 10 mm.
_NODE_PSMA = {F.enlarged_lymph_node: 0.25, F.non_enlarged_lymph_node: 0.7, F.no_ct_correlate: 0.05}
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


# ------------------------------------------------------------------------------------------ placement


@dataclass
class Placed:
    """A lesion on the CT grid: its voxels (inside ``box``), the spec and the measured truth."""

    spec: LesionSpec
    box: tuple[slice, slice, slice]
    mask: np.ndarray  # bool, the box's shape
    center_body: np.ndarray
    structure_label: int  # public anatomy label of its location's structure
    instance: int = 0
    suv_max: float = 0.0
    size_mm: float = 0.0
    center_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)
    activity: float = 0.0  # true activity (SUV) given to its voxels
    extra: dict = field(default_factory=dict)

    @property
    def n_voxels(self) -> int:
        return int(self.mask.sum())


def _internal_of(public_names: list[str]) -> np.ndarray:
    """bool LUT over internal labels: those whose anatomy label is one of ``public_names``."""
    pub = {anatomy.label_of()[n] for n in public_names}
    lut = ph.anatomy_lut()
    return np.isin(lut, list(pub)) & (np.arange(len(lut)) > 0)


def _labels(names: list[str]) -> np.ndarray:
    lut = np.zeros(ph.n_labels(), bool)
    lab = ph.internal_labels()
    lut[[lab[n] for n in names]] = True
    return lut


_SOFT = ["body_fat", "mediastinal_fat", "muscle", "soft", "small_bowel", "vessel"]


def allowed_region(loc: Location) -> tuple[np.ndarray, np.ndarray]:
    """(where the lesion may extend, where its centre may lie) as bool LUTs over internal labels."""
    s = list(loc.structures)
    if loc.system is System.lymph_node:
        stations = s + [f"node_{x}" for x in s]
        return _labels(stations + _SOFT), _labels(stations)
    if loc.system is System.lung:
        side = "right" if loc.laterality is taxonomy.Laterality.right else "left"
        lung = [n for n in anatomy.structures() if (n.startswith("lung_") and n.endswith(side))]
        return _labels(lung + [f"pleura_{side}"]), _internal_of(s)
    if loc.id.startswith("liver_"):
        return _labels([f"liver_segment_{i}" for i in range(1, 9)]), _internal_of(s)
    return _internal_of(s), _internal_of(s)


def _ellipsoid(center: np.ndarray, long_mm: float, ratio: float, rng: np.random.Generator) -> list[ph.Shape]:
    axes = np.array([long_mm / 2, long_mm / 2 * ratio, long_mm / 2 * ratio * rng.uniform(0.85, 1.0)])
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    return [ph.Ellipsoid(center, axes, q)]


def _shapes(spec: LesionSpec, center: np.ndarray, rng: np.random.Generator) -> list[ph.Shape]:
    shapes = _ellipsoid(center, spec.size_mm, spec.short_ratio, rng)
    if spec.ct_finding in (F.mass, F.consolidation) or (spec.ct_finding is F.enlarged_lymph_node
                                                       and spec.size_mm > 25):
        for _ in range(int(rng.integers(1, 3))):  # lobulation
            off = rng.normal(size=3)
            off *= spec.size_mm * 0.22 / np.linalg.norm(off)
            shapes += _ellipsoid(center + off, spec.size_mm * rng.uniform(0.45, 0.65), 0.85, rng)
    return shapes


def _box_coords(box, grid: ph.Grid, pose: ph.Pose):
    """Body coordinates (U, V: (1, ny, nx); W: (nz, 1, 1)) of a box's voxel centres."""
    sz, sy, sx = box
    c, s = pose.cs
    tx, ty, tz = pose.shift
    X = (grid.axis(0)[sx] - tx)[None, None, :]
    Y = (grid.axis(1)[sy] - ty)[None, :, None]
    W = np.asarray(pose.body_w(grid.axis(2)[sz] - tz), float)[:, None, None]
    return (c * X + s * Y).astype(np.float32), (-s * X + c * Y).astype(np.float32), W.astype(np.float32)


def _min_voxels(grid: ph.Grid, min_voxels: int) -> int:
    return max(min_voxels, 4)


def place_lesions(specs: list[LesionSpec], labels: np.ndarray, grid: ph.Grid, pose: ph.Pose,
                  bounds: dict[int, tuple[np.ndarray, np.ndarray]], rng: np.random.Generator,
                  min_voxels: int = 3, attempts: int = 25, why: Counter | None = None) -> list[Placed]:
    """Put every spec inside its structure on the CT label map; specs that find no room are dropped.

    ``bounds``: internal label -> body-frame bounding box (``phantom.structure_bounds``), to search only
    near the structure. Lesions keep ``GAP_VOXELS`` free voxels between each other. ``why`` counts the
    reasons attempts failed (diagnostics).
    """
    why = Counter() if why is None else why
    occupied = np.zeros(labels.shape, bool)
    placed: list[Placed] = []
    lab = ph.internal_labels()
    nmin = _min_voxels(grid, min_voxels)
    vox_mm = np.array(grid.spacing)[::-1]  # z, y, x
    for spec in specs:
        loc = spec.location
        extend, centre_ok = allowed_region(loc)
        targets = [lab[s] for s in loc.structures]
        # search box: union of the bounds of every internal label that may hold the centre
        boxes = [bounds[i] for i in np.flatnonzero(centre_ok) if i in bounds]
        if not boxes:
            why["no structure bounds"] += 1
            continue
        lo = np.min([b[0] for b in boxes], axis=0)
        hi = np.max([b[1] for b in boxes], axis=0)
        node = loc.system is System.lymph_node
        reach = NODE_REACH_MM if node else 0.0  # a node may sit just beside its station's outline
        sbox = ph.index_box(lo - reach, hi + reach, grid, pose)
        if sbox is None:
            why["outside the field of view"] += 1
            continue
        sub = labels[sbox]
        ok = centre_ok[sub]
        if node and ok.any():
            steps = max(1, int(round(reach / min(grid.spacing))))
            ok = ndimage.binary_dilation(ok, iterations=steps) & extend[sub]
        cand = np.flatnonzero(ok)
        if cand.size == 0:
            why["structure not on the grid"] += 1
            continue
        sub_shape = tuple(s.stop - s.start for s in sbox)
        done = None
        for attempt in range(attempts):
            idx = np.unravel_index(int(cand[rng.integers(cand.size)]), sub_shape)
            zyx = np.array([idx[i] + sbox[i].start for i in range(3)], float)
            center = pose.to_body(grid.point_of(zyx)[None])[0]
            size = spec.size_mm * (0.85 ** (attempt // 4))
            trial = LesionSpec(**{**spec.__dict__, "size_mm": size})
            shapes = _shapes(trial, center, rng)
            los, his = zip(*(s.bounds() for s in shapes))
            box = ph.index_box(np.min(los, axis=0), np.max(his, axis=0), grid, pose)
            if box is None:
                continue
            # pad the box so the gap check sees neighbours
            box = tuple(slice(max(b.start - GAP_VOXELS - 1, 0), min(b.stop + GAP_VOXELS + 1, n))
                        for b, n in zip(box, labels.shape))
            U, V, W = _box_coords(box, grid, pose)
            m = np.zeros(tuple(b.stop - b.start for b in box), bool)
            for s in shapes:
                m |= np.broadcast_to(s.inside(U, V, W, 0.0), m.shape)
            m &= extend[labels[box]]
            m = _largest_component(m)
            if m.sum() < nmin:
                m = _grow(m, extend[labels[box]], nmin)
            if m is None or m.sum() < nmin:
                why["too few voxels"] += 1
                continue
            if _touches_edge(m, box, labels.shape):  # keep every lesion whole inside the field of view
                why["cut by the field of view"] += 1
                continue
            if occupied[box][ndimage.binary_dilation(m, iterations=GAP_VOXELS, structure=np.ones((3, 3, 3)))].any():
                why["too close to another lesion"] += 1
                continue
            under = labels[box][m]
            if loc.system in (System.organ, System.bone) or loc.id.startswith("lung_"):
                # most of the lesion must lie in the location's own structure
                if np.isin(under, [lab[s] for s in loc.structures] + _children(loc)).mean() < 0.5:
                    why["mostly outside its structure"] += 1
                    continue
            done = Placed(spec=trial, box=box, mask=m, center_body=center,
                          structure_label=anatomy.label_of()[loc.structures[0]])
            break
        if done is None:
            why[f"dropped {loc.id}"] += 1
            continue
        occupied[done.box] |= done.mask
        pts = np.argwhere(done.mask) + np.array([b.start for b in done.box])
        done.center_mm = tuple(float(x) for x in grid.point_of(pts.mean(axis=0)))
        # the lesion's long axis: what its voxels span, but never more than the shape drawn (a coarse grid
        # grows a small node to a few voxels that span more than the node)
        done.size_mm = min(long_axis_mm(pts, vox_mm), _drawn_long_axis(shapes))
        placed.append(done)
        del targets
    return placed


def _drawn_long_axis(shapes: list[ph.Shape]) -> float:
    """Long axis (mm) of a lesion's drawn ellipsoids: the largest extent of their bounding union."""
    lo = np.min([s.center - np.max(s.axes) for s in shapes], axis=0)
    hi = np.max([s.center + np.max(s.axes) for s in shapes], axis=0)
    return float(max(2 * np.max(shapes[0].axes), np.max(hi - lo) if len(shapes) > 1 else 0.0))


def _touches_edge(m: np.ndarray, box: tuple[slice, slice, slice], shape: tuple[int, ...]) -> bool:
    for ax, (b, n) in enumerate(zip(box, shape)):
        if b.start == 0 and np.take(m, 0, axis=ax).any():
            return True
        if b.stop == n and np.take(m, m.shape[ax] - 1, axis=ax).any():
            return True
    return False


def _children(loc: Location) -> list[int]:
    """Internal labels that belong to the location's structures (marrow, cortex, nodes, ...)."""
    return list(np.flatnonzero(_internal_of(list(loc.structures))))


def _largest_component(m: np.ndarray) -> np.ndarray:
    lab, n = ndimage.label(m)
    if n <= 1:
        return m
    sizes = np.bincount(lab.ravel())[1:]
    return lab == (1 + int(np.argmax(sizes)))


def _grow(m: np.ndarray, ok: np.ndarray, nmin: int) -> np.ndarray | None:
    """Dilate a too-small lesion inside its allowed tissue until it has ``nmin`` voxels (coarse grids)."""
    if not m.any():
        return None
    for _ in range(4):
        m = ndimage.binary_dilation(m) & ok
        if m.sum() >= nmin:
            return m
    return m


def long_axis_mm(points_zyx: np.ndarray, vox_mm: np.ndarray) -> float:
    """Extent of a voxel set along its principal axis, plus one voxel (mm)."""
    p = points_zyx * vox_mm
    if len(p) < 2:
        return float(vox_mm.max())
    c = p - p.mean(axis=0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    proj = c @ vt[0]
    step = float(np.abs(vt[0]) @ vox_mm)
    return float(proj.max() - proj.min() + step)


def number_instances(placed: list[Placed]) -> None:
    """Instances 1..n: lesions in the mask first, in raster order of their first voxel (as a connected-
    component labelling of the mask numbers them), then the ones the segmenter missed; benign look-alikes
    keep instance 0."""
    def first_voxel(p: Placed) -> tuple[int, int, int]:
        z, y, x = np.argwhere(p.mask)[0]
        return (z + p.box[0].start, y + p.box[1].start, x + p.box[2].start)

    lesions = [p for p in placed if not p.spec.benign]
    ordered = sorted((p for p in lesions if p.spec.in_mask), key=first_voxel)
    ordered += sorted((p for p in lesions if not p.spec.in_mask), key=first_voxel)
    for i, p in enumerate(ordered, start=1):
        p.instance = i
    placed.sort(key=lambda p: (p.instance == 0, p.instance))  # benign look-alikes (instance 0) last


# ------------------------------------------------------------------------------------------ CT and PET


def apply_ct(hu: np.ndarray, labels: np.ndarray, placed: list[Placed], hu_table: np.ndarray,
             rng: np.random.Generator) -> None:
    """Write each lesion's CT appearance into noise-free HU (int16, in place)."""
    for p in placed:
        f = p.spec.ct_finding
        view = hu[p.box]
        m = p.mask
        n = int(m.sum())
        if f is F.no_ct_correlate:
            continue
        if f is F.ground_glass_opacity:
            vals = rng.normal(rng.uniform(-560, -440), 35, n)
        elif f in (F.solid_nodule, F.mass, F.enlarged_lymph_node, F.non_enlarged_lymph_node):
            vals = rng.normal(rng.uniform(30, 48), 6, n)
        elif f is F.soft_tissue_thickening:
            vals = rng.normal(rng.uniform(40, 55), 6, n)
        elif f is F.consolidation:
            vals = rng.normal(rng.uniform(20, 40), 8, n)
            vals[rng.random(n) < 0.08] = -900  # air bronchogram
        elif f is F.osteolytic:
            vals = rng.normal(rng.uniform(10, 90), 12, n)
        elif f is F.osteoblastic:
            vals = rng.normal(rng.uniform(1250, 1550), 60, n)
        elif f is F.mixed_bone_lesion:
            pts = np.argwhere(m).astype(float)
            d = np.linalg.norm((pts - pts.mean(axis=0)) * np.array([1, 1, 1]), axis=1)
            core = d < np.quantile(d, 0.45)
            vals = np.where(core, rng.normal(50, 15, n), rng.normal(1300, 80, n))
        elif f is F.hypodense_lesion:
            base = hu_table[labels[p.box][m]].astype(float)
            vals = base - rng.uniform(12, 30) + rng.normal(0, 4, n)
        else:  # pragma: no cover - every finding is handled above
            raise ValueError(f"no CT appearance for {f}")
        view[m] = np.clip(np.rint(vals), -1024, 3071).astype(np.int16)


def pet_activity(true_suv: np.ndarray, pet_grid: ph.Grid, ct_grid: ph.Grid, placed: list[Placed],
                 fwhm_mm: float, rng: np.random.Generator) -> None:
    """Add each lesion's uptake to the PET true-activity map (in place).

    The CT mask is area-weighted onto the PET grid (the fraction of each PET voxel the lesion fills) and
    filled with the lesion's true uptake. Nothing compensates the PSF: ``pet_image`` blurs a small lesion's
    peak away as a scanner does, so SUVmax rises with size towards the true uptake.
    """
    ratio = float(np.prod(ct_grid.spacing) / np.prod(pet_grid.spacing))
    sigma = [fwhm_mm / 2.3548 / pet_grid.spacing[a] for a in (2, 1, 0)]  # z, y, x voxels
    pad = np.ceil(3 * np.array(sigma)).astype(int) + 1
    shape = np.array(pet_grid.shape)
    for p in placed:
        pts = np.argwhere(p.mask) + np.array([b.start for b in p.box])
        cont = _index(pet_grid, _points(ct_grid, pts))
        idx = np.rint(cont).astype(int)
        keep = np.all((idx >= 0) & (idx < shape), axis=1)
        if not keep.any():
            continue
        idx, cont = idx[keep], cont[keep]
        lo = np.maximum(idx.min(axis=0) - pad, 0)
        hi = np.minimum(idx.max(axis=0) + pad + 1, shape)
        box = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
        frac = np.zeros(tuple(hi - lo), np.float32)
        np.add.at(frac, tuple((idx - lo).T), np.float32(ratio))
        np.minimum(frac, 1.0, out=frac)
        local = true_suv[box]
        bg = float(np.median(local[frac > 0]))
        act = max(p.spec.target_suv, bg * 1.3 + 0.3)  # some contrast to its own tissue, even in the liver
        p.activity = float(act)
        local *= 1 - frac
        local += act * frac


def _points(grid: ph.Grid, zyx: np.ndarray) -> np.ndarray:
    return np.stack([grid.origin[a] + grid.spacing[a] * zyx[:, 2 - a] for a in range(3)], axis=1)


def _index(grid: ph.Grid, xyz: np.ndarray) -> np.ndarray:
    return np.stack([(xyz[:, 2 - a] - grid.origin[2 - a]) / grid.spacing[2 - a] for a in range(3)], axis=1)


def measure(pet: np.ndarray, pet_grid: ph.Grid, ct_grid: ph.Grid, placed: list[Placed]) -> None:
    """SUVmax of each lesion on the final PET, read at its CT voxels by trilinear interpolation."""
    for p in placed:
        pts = np.argwhere(p.mask) + np.array([b.start for b in p.box])
        coords = _index(pet_grid, _points(ct_grid, pts)).T
        vals = ndimage.map_coordinates(pet, coords, order=1, mode="nearest")
        p.suv_max = round(float(vals.max()), 2)


def truths(study_key: str, placed: list[Placed], tracer: Tracer) -> list[LesionTruth]:
    out = []
    for p in placed:
        if p.spec.benign:
            continue
        pet = PetFinding(tracer=tracer, grade=grade_for_suv(p.suv_max))
        out.append(LesionTruth(
            study_key=study_key, instance=p.instance, location_id=p.spec.location_id,
            ct_finding=p.spec.ct_finding, pet_finding=pet, suv_max=p.suv_max, size_mm=round(p.size_mm, 1),
            center_mm=tuple(round(c, 2) for c in p.center_mm), caption=caption_text(
                p.spec.location_id, p.spec.ct_finding, pet), in_mask=p.spec.in_mask, reported=p.spec.reported))
    return out


def lesion_mask(shape: tuple[int, int, int], placed: list[Placed]) -> np.ndarray:
    """The binary mask the segmenter writes: lesions with ``in_mask`` (uint8)."""
    out = np.zeros(shape, np.uint8)
    for p in placed:
        if p.spec.in_mask:
            out[p.box][p.mask] = 1
    return out


def relabel_anatomy(anat: np.ndarray, placed: list[Placed]) -> None:
    """Nodes and pleural lesions take their station's/pleura's label in the anatomy map (in place)."""
    for p in placed:
        if p.spec.benign:
            continue
        loc = p.spec.location
        if loc.system is System.lymph_node or loc.id.startswith("pleura"):
            anat[p.box][p.mask] = p.structure_label
