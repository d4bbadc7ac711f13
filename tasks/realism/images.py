"""Image figures of one ingested study (CT in HU, PET in SUVbw, canonical anatomy labels, lesion instances).

Everything here reads only what a hospital delivers (images + an organ segmentation), so it runs unchanged
on a real drop. ``study_image_figures`` returns a dict of per-study numbers (NaN where the structure is not
in the field of view); ``tasks.realism.table`` pools them over the cohort.

Definitions (all on the stored grid):

* ROI of an organ: its class voxels, lesion voxels dilated by 10 mm removed, eroded by ``erode_mm``.
* CT noise: SD of HU in the liver ROI (texture included, as an ROI measurement on a real scan is).
* Neighbour correlation: Pearson correlation of x-neighbour HU pairs inside the liver ROI.
* SD(5x5 mean) / SD(voxel): in-plane 5x5 box means whose whole window lies in the ROI, their SD over the
  SD of the ROI voxels (white noise: 0.2).
* In-between HU at an edge: the 1-voxel shell on both sides of a boundary (in-plane), the share of its
  voxels whose HU lies 10-90 % of the way between the two sides' reference values (skin: air -1000 vs
  fat -100, anterior half of the body so the table never counts; lung: the lobes' surface, -850 vs 40).
* Cancellous bone: median HU of lumbar vertebrae L1-L4 eroded by 5 mm (the cortex and posterior elements
  fall away).
* PET: liver SUVmean and CV (SD / mean) in the liver ROI; blood pool = mean SUV in the aorta eroded by 4 mm;
  kidney SUVmax over both kidney classes.
* Salivary / lacrimal uptake (no segmenter class): SUVmax in boxes placed from the cervical spine and the
  skull (parotid/submandibular: C3 to 30 mm above C1, 15-70 mm off the midline; lacrimal: 40-90 mm above C1,
  15-50 mm off the midline, >= 30 mm anterior of the skull's centre), lesions excluded.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from data_contracts import segmentation
from data_contracts.geometry import Geometry
from tasks.landmarks import Landmarks

LAB = segmentation.label_of()
SKIN_REF = (-1000.0, -100.0)
LUNG_REF = (-850.0, 40.0)
SALIVARY_PRESENT_SUV = 5.0
LACRIMAL_PRESENT_SUV = 3.0


def _iters(mm: float, geometry: Geometry) -> int:
    return max(1, int(math.ceil(mm / min(geometry.spacing))))


def _box(mask: np.ndarray, pad: int = 0) -> tuple[slice, ...] | None:
    sl = ndimage.find_objects(mask.astype(np.uint8))
    if not sl or sl[0] is None:
        return None
    return tuple(slice(max(0, s.start - pad), min(n, s.stop + pad)) for s, n in zip(sl[0], mask.shape))


def organ_roi(anat: np.ndarray, lesions: np.ndarray, names: tuple[str, ...], geometry: Geometry,
              erode_mm: float) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """(crop, ROI mask within the crop) of the union of ``names`` classes, lesions removed, eroded."""
    organ = np.isin(anat, [LAB[n] for n in names])
    pad = _iters(12.0, geometry) + 1
    box = _box(organ, pad)
    if box is None:
        return None
    roi = organ[box]
    near = ndimage.binary_dilation(lesions[box] > 0, iterations=_iters(10.0, geometry))
    roi = ndimage.binary_erosion(roi & ~near, iterations=_iters(erode_mm, geometry))
    return (box, roi) if roi.sum() >= 20 else None


def neighbour_correlation(values: np.ndarray, roi: np.ndarray) -> float:
    """Pearson correlation of x-neighbour pairs both inside ``roi``."""
    pair = roi[..., 1:] & roi[..., :-1]
    a, b = values[..., 1:][pair], values[..., :-1][pair]
    if a.size < 10 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def box_mean_sd_ratio(values: np.ndarray, roi: np.ndarray, size: int = 5) -> float:
    """SD of in-plane ``size``x``size`` means (window wholly in ``roi``) over the SD of the ROI voxels."""
    v = np.where(roi, values, 0.0).astype(np.float64)
    frac = ndimage.uniform_filter(roi.astype(np.float64), size=(1, size, size), mode="constant")
    mean = ndimage.uniform_filter(v, size=(1, size, size), mode="constant")
    full = frac > 1 - 1e-9
    if full.sum() < 10:
        return float("nan")
    return float(mean[full].std() / values[roi].std())


IN_BETWEEN = (0.1, 0.9)  # a voxel is "in between" 10-90 % of the way from one side's value to the other's


def _between(values: np.ndarray, ref: tuple[float, float]) -> float:
    lo, hi = sorted(ref)
    f = (values - lo) / (hi - lo)
    return float(np.mean((f > IN_BETWEEN[0]) & (f < IN_BETWEEN[1])))


def inbetween_share(ct: np.ndarray, inside: np.ndarray, ref: tuple[float, float]) -> float:
    """Share of the in-plane 1-voxel shell on both sides of ``inside``'s edge with HU 10-90 % of the way
    between the two reference values."""
    st = ndimage.generate_binary_structure(3, 1)
    st[0], st[2] = False, False  # in-plane only
    shell = ndimage.binary_dilation(inside, st) & ~ndimage.binary_erosion(inside, st)
    if shell.sum() < 10:
        return float("nan")
    return _between(ct[shell], ref)


def _body(ct: np.ndarray) -> np.ndarray:
    """Per slice: the largest connected region above -200 HU (excludes the table and the air), holes filled."""
    out = np.zeros(ct.shape, bool)
    for k in range(ct.shape[0]):
        lab, n = ndimage.label(ct[k] > -200)
        if n:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            out[k] = ndimage.binary_fill_holes(lab == int(sizes.argmax()))
    return out


def skin_inbetween(ct: np.ndarray, step: int = 4) -> float:
    """In-between share at the skin, anterior half of the body, every ``step``-th slice."""
    sub = ct[::step]
    body = _body(sub)
    if body.sum() == 0:
        return float("nan")
    ys = np.nonzero(body)[1]
    anterior = np.zeros_like(body)
    anterior[:, : int(np.median(ys)), :] = True  # LPS: +y posterior, row index grows posteriorly
    st = ndimage.generate_binary_structure(3, 1)
    st[0], st[2] = False, False
    shell = (ndimage.binary_dilation(body, st) & ~ndimage.binary_erosion(body, st)) & anterior
    if shell.sum() < 10:
        return float("nan")
    return _between(sub[shell], SKIN_REF)


def _region_suvmax(pet: np.ndarray, lesions: np.ndarray, geometry: Geometry, x_off: tuple[float, float],
                   z_rng: tuple[float, float], mid_x: float, y_max: float | None = None) -> float:
    """SUVmax in the voxels |x - mid| in x_off, z in z_rng (and y < y_max), lesions dilated 10 mm excluded."""
    nz, ny, nx = pet.shape
    zz = geometry.index_to_mm(np.stack([np.arange(nz), np.zeros(nz), np.zeros(nz)], 1))[:, 2]
    xx = geometry.index_to_mm(np.stack([np.zeros(nx), np.zeros(nx), np.arange(nx)], 1))[:, 0]
    yy = geometry.index_to_mm(np.stack([np.zeros(ny), np.arange(ny), np.zeros(ny)], 1))[:, 1]
    kz = np.flatnonzero((zz >= z_rng[0]) & (zz <= z_rng[1]))
    if kz.size == 0:
        return float("nan")
    off = np.abs(xx - mid_x)
    kx = (off >= x_off[0]) & (off <= x_off[1])
    ky = yy < y_max if y_max is not None else np.ones(ny, bool)
    sub = pet[kz[0]:kz[-1] + 1][:, ky][:, :, kx]
    les = lesions[kz[0]:kz[-1] + 1][:, ky][:, :, kx] > 0
    if les.any():
        les = ndimage.binary_dilation(les, iterations=_iters(10.0, geometry))
    vals = sub[~les]
    return float(vals.max()) if vals.size else float("nan")


def body_diameter_mm(ct: np.ndarray, geometry: Geometry) -> float:
    """Effective diameter of the body's cross-section (2 sqrt(area / pi), median over the slices given): the
    patient size that sets CT noise at a given dose, read off the image (weight also grows with height)."""
    body = _body(ct)
    areas = body.reshape(body.shape[0], -1).sum(axis=1) * geometry.spacing[0] * geometry.spacing[1]
    areas = areas[areas > 0]
    return float(2.0 * np.sqrt(np.median(areas) / np.pi)) if areas.size else float("nan")


def study_image_figures(ct: np.ndarray, pet: np.ndarray, anat: np.ndarray, lesions: np.ndarray,
                        geometry: Geometry, marks: Landmarks) -> dict[str, float]:
    """Per-study image numbers; ``anat`` holds canonical labels (``tasks.landmarks.canonical_lut``)."""
    nan = float("nan")
    out: dict[str, float] = {k: nan for k in (
        "liver_hu", "liver_noise_hu", "noise_corr", "box5_ratio", "liver_suv_mean", "liver_pet_cv",
        "blood_pool_suv", "kidney_suv_max", "cancellous_hu", "skin_inbetween", "lung_inbetween",
        "salivary_suv_max", "lacrimal_suv_max", "body_diameter_mm")}
    liver = organ_roi(anat, lesions, ("liver",), geometry, erode_mm=8.0)
    if liver is not None:
        box, roi = liver
        out["body_diameter_mm"] = body_diameter_mm(ct[box[0]], geometry)
        hu = ct[box].astype(np.float64)
        out["liver_hu"] = float(np.median(hu[roi]))
        out["liver_noise_hu"] = float(hu[roi].std())
        out["noise_corr"] = neighbour_correlation(hu - hu[roi].mean(), roi)
        out["box5_ratio"] = box_mean_sd_ratio(hu, roi)
        suv = pet[box].astype(np.float64)[roi]
        out["liver_suv_mean"] = float(suv.mean())
        out["liver_pet_cv"] = float(suv.std() / suv.mean()) if suv.mean() > 0 else nan
    aorta = organ_roi(anat, lesions, ("aorta",), geometry, erode_mm=4.0)
    if aorta is not None:
        out["blood_pool_suv"] = float(pet[aorta[0]][aorta[1]].mean())
    kidneys = np.isin(anat, [LAB["kidney_left"], LAB["kidney_right"]])
    if kidneys.any():
        out["kidney_suv_max"] = float(pet[kidneys].max())
    bone = organ_roi(anat, lesions, tuple(f"vertebrae_L{i}" for i in range(1, 5)), geometry, erode_mm=5.0)
    if bone is not None:
        out["cancellous_hu"] = float(np.median(ct[bone[0]][bone[1]]))
    out["skin_inbetween"] = skin_inbetween(ct)
    lungs = np.isin(anat, [LAB[n] for n in segmentation.CLASSES if n.startswith("lung_")])
    box = _box(lungs, 2)
    if box is not None:
        out["lung_inbetween"] = inbetween_share(ct[box], lungs[box], LUNG_REF)
    c1, c3 = marks.level_z("C1"), marks.level_z("C3")
    mid = marks.midline_x()
    if c1 is not None and c3 is not None:
        out["salivary_suv_max"] = _region_suvmax(pet, lesions, geometry, (15.0, 70.0), (c3, c1 + 30.0), mid)
    skull = marks.get("skull")
    if c1 is not None and skull is not None and skull.hi_mm[2] >= c1 + 90.0:
        out["lacrimal_suv_max"] = _region_suvmax(pet, lesions, geometry, (15.0, 50.0), (c1 + 40.0, c1 + 90.0), mid,
                                                 y_max=float(skull.centroid_mm[1]) - 30.0)
    return out
