"""Lesion imaging: each placed lesion's CT appearance, its PET uptake, the SUVmax a reader measures, the truth.

``apply_ct`` writes the CT appearance by window physics (ground glass about -500 HU in lung, osteoblastic
1200-1600 HU, osteolytic 0-100 HU, hypodense = parenchyma - 10..30 HU, ...); ``pet_activity`` adds the
uptake to the PET's true-activity map by area-weighting the CT mask onto the PET grid (partial volume; the
PSF then lowers a small lesion's peak); ``measure`` reads SUVmax back from the final PET at the mask's
voxels; ``truths`` and ``lesion_mask`` give the ground truth and the segmenter's lesion mask.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from data_contracts.caption import caption_text
from data_contracts.findings import CTFinding, Tracer, grade_for_suv
from data_contracts.records import LesionTruth, PetFinding
from tasks.synth import phantom as ph
from tasks.synth.lesion_placement import Placed

F = CTFinding


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
            d = np.linalg.norm(pts - pts.mean(axis=0), axis=1)
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
        cont = pet_grid.continuous_index(ct_grid.index_to_mm(pts))
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


def measure(pet: np.ndarray, pet_grid: ph.Grid, ct_grid: ph.Grid, placed: list[Placed]) -> None:
    """SUVmax of each lesion on the final PET, read at its CT voxels by trilinear interpolation."""
    for p in placed:
        pts = np.argwhere(p.mask) + np.array([b.start for b in p.box])
        coords = pet_grid.continuous_index(ct_grid.index_to_mm(pts)).T
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
