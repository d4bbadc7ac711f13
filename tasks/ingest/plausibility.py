"""Is a readable study physically plausible? Checks that turn silently wrong SUVs into named quarantine reasons.

A file can be whole and still wrong: a body weight in grams (SUV x1000), a dose in Bq labelled MBq (SUV x1e-6),
an injection clock time after the scan with no date, an all-negative PET, a spacing in micrometres, a 2-slice
"volume", or a PET from another patient. Each check raises ``IngestError`` with its own reason and the numbers
(bands in ``settings.ingest.plausibility``):

* ``implausible_weight``  body weight outside 20-300 kg
* ``implausible_uptake``  injection to scan start outside 10-300 min
* ``implausible_dose``    injected activity outside the tracer's MBq band
* ``implausible_spacing`` a CT or PET voxel edge outside 0.3-10 mm
* ``too_few_slices``      fewer slices than ``min_slices``
* ``negative_pet``        no positive SUV at all, or more than 1 % of voxels below -1 SUV
* ``implausible_reference_uptake``  the SUVmean of the liver (excluding lesions), or of the blood pool in the
  aorta where the label map has no usable liver, outside the tracer's wide physiological band. This is the
  check that catches wrong units the header does not reveal and a PET that belongs to another patient (its
  activity does not sit in this CT's liver). Labels are looked up by structure name in the label table.
* ``pet_ct_mismatch``     the PET's axial field of view ends more than ``max_axial_offset_mm`` from the CT's, or its
                          body outline does not match the CT's (Dice below ``min_body_dice``): the
  PET of another patient, which the liver band alone may miss (the tiny cohort: Dice 0.94 for a study's own
  PET, 0.62-0.64 for another patient's; liver SUVmean 2.1 vs 1.4-1.6, inside the band).

``verify_stored`` re-runs every check on a study already in the store (what the tests assert for every study:
nothing implausible gets in).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import SimpleITK as sitk

from data_contracts import segmentation
from data_contracts.settings import PlausibilitySettings
from tasks.ingest.errors import IngestError
from data_contracts.geometry import Geometry

NEGATIVE_SUV = -1.0  # a voxel below this is not noise around zero
BODY_HU = -400.0  # CT body outline


def _outside(value: float, band: tuple[float, float]) -> bool:
    return not (band[0] <= value <= band[1])


def check_acquisition(weight_kg: float, uptake_min: float, dose_mbq: float, tracer: str, source: str,
                      bands: PlausibilitySettings) -> None:
    if _outside(weight_kg, bands.weight_kg):
        hint = " (grams given as kg?)" if weight_kg > 1000 else ""
        raise IngestError("implausible_weight", source, f"body weight {weight_kg:g} kg outside "
                                                        f"{bands.weight_kg[0]:g}-{bands.weight_kg[1]:g} kg{hint}")
    if _outside(uptake_min, bands.uptake_min):
        raise IngestError("implausible_uptake", source, f"injection to scan start {uptake_min:.1f} min outside "
                                                        f"{bands.uptake_min[0]:g}-{bands.uptake_min[1]:g} min")
    band = bands.dose_mbq.get(tracer)
    if band is not None and _outside(dose_mbq, band):
        hint = " (Bq or kBq given as MBq?)" if dose_mbq > 1e4 else " (GBq given as MBq?)" if dose_mbq < 5 else ""
        raise IngestError("implausible_dose", source, f"injected {dose_mbq:g} MBq of {tracer} outside "
                                                      f"{band[0]:g}-{band[1]:g} MBq{hint}")


def check_grid(grid: Geometry, source: str, bands: PlausibilitySettings) -> None:
    lo, hi = bands.spacing_mm
    bad = [s for s in grid.spacing if not lo <= s <= hi]
    if bad:
        raise IngestError("implausible_spacing", source, f"voxel spacing {tuple(round(s, 4) for s in grid.spacing)} mm:"
                                                         f" {bad[0]:g} mm outside {lo:g}-{hi:g} mm")
    if grid.shape[0] < bands.min_slices:
        raise IngestError("too_few_slices", source, f"{grid.shape[0]} slices, at least {bands.min_slices} needed")


def check_pet_values(suv: np.ndarray, source: str, bands: PlausibilitySettings) -> None:
    """``suv``: the PET in SUV (any shape)."""
    top = float(suv.max()) if suv.size else 0.0
    if top <= 0:
        raise IngestError("negative_pet", source, f"no positive SUV (maximum {top:g}): not an emission image")
    below = int(np.count_nonzero(suv < NEGATIVE_SUV))
    if below > bands.min_negative_fraction * suv.size:
        raise IngestError("negative_pet", source, f"{below} of {suv.size} voxels ({100 * below / suv.size:.1f} %) "
                                                  f"below {NEGATIVE_SUV:g} SUV (minimum {float(suv.min()):g})")


# ------------------------------------------------------------------------------------- the check grid
# The body and reference-region checks run on the PET's own grid coarsened to >= CHECK_MM per axis: about a
# million voxels for a whole body (never the 150 M-voxel CT grid); a liver is still ~7,000 voxels, the aorta a
# tube ~4 voxels wide, plenty for a wide band.
CHECK_MM = 6.0


@dataclass(frozen=True)
class CheckVolumes:
    """PET (SUV, linear), CT (HU, nearest; ``OUTSIDE`` beyond the CT's field of view), anatomy labels and lesion
    mask (nearest) on the check grid, arrays (z, y, x)."""

    grid: Geometry
    suv: np.ndarray
    ct: np.ndarray
    labels: np.ndarray | None
    lesions: np.ndarray | None


OUTSIDE = -5000.0


def check_volumes(pet_suv: sitk.Image, ct_hu: sitk.Image, labels: sitk.Image | None,
                  lesions: sitk.Image | None) -> CheckVolumes:
    """The four volumes on the check grid (the PET grid coarsened to ``CHECK_MM``)."""
    native = Geometry.of(pet_suv)
    grid = native.with_spacing(tuple(max(s, CHECK_MM) for s in native.spacing))

    def on(image, interpolator, pixel, default):
        return sitk.GetArrayFromImage(grid.resample(image, interpolator, pixel, default))

    return CheckVolumes(
        grid, on(pet_suv, sitk.sitkLinear, sitk.sitkFloat32, 0.0),
        on(ct_hu, sitk.sitkNearestNeighbor, ct_hu.GetPixelID(), OUTSIDE),  # its own type: no whole-volume cast
        on(labels, sitk.sitkNearestNeighbor, sitk.sitkUInt16, 0) if labels is not None else None,
        on(lesions, sitk.sitkNearestNeighbor, sitk.sitkUInt8, 0) if lesions is not None else None,
    )


# ------------------------------------------------------------------------------------- reference region
@cache
def reference_labels(region: str) -> tuple[int, ...]:
    """Label values of a reference region in the delivered segmenter map (``data_contracts.segmentation``, the
    class set ingest checks the map against), by class name: ``liver`` (the organ or its segments) or
    ``blood_pool`` (the aorta)."""
    names = {"liver": lambda n: n == "liver" or n.startswith("liver_segment"),
             "blood_pool": lambda n: n in ("aorta", "thoracic_aorta", "aorta_blood")}[region]
    return tuple(sorted(v for n, v in segmentation.label_of().items() if names(n)))


def reference_uptake(v: CheckVolumes, bands: PlausibilitySettings) -> tuple[str, float, float] | None:
    """(region, SUVmean, region mL) of the first usable reference region (lesions excluded), or None when the
    label map has neither."""
    if v.labels is None:
        return None
    for region in ("liver", "blood_pool"):
        inside = np.isin(v.labels, reference_labels(region))
        if v.lesions is not None:
            inside &= v.lesions == 0
        ml = float(inside.sum() * v.grid.voxel_ml)
        if ml >= bands.min_reference_ml:
            return region, float(v.suv[inside].mean()), ml
    return None


def check_reference(found: tuple[str, float, float] | None, tracer: str, source: str,
                    bands: PlausibilitySettings) -> None:
    if found is None:
        return
    region, mean, ml = found
    band = (bands.liver_suv if region == "liver" else bands.blood_pool_suv).get(tracer)
    if band is not None and _outside(mean, band):
        raise IngestError("implausible_reference_uptake", source,
                          f"{region} SUVmean {mean:.3g} ({ml:.0f} mL) outside {band[0]:g}-{band[1]:g} for {tracer}: "
                          "wrong units, wrong dose or weight, or a PET of another patient")


# ------------------------------------------------------------------------------------- body outline
def body_dice(v: CheckVolumes) -> float | None:
    """Dice of the body outlines inside both fields of view: CT body = HU > -400; PET body = SUV above a quarter
    of the median SUV inside the CT body (relative, so units do not matter). None when too little overlaps."""
    both = v.ct > OUTSIDE
    body_ct = both & (v.ct > BODY_HU)
    if body_ct.sum() < 100:
        return None
    threshold = 0.25 * float(np.median(v.suv[body_ct]))
    body_pet = both & (v.suv > threshold)
    return float(2 * np.count_nonzero(body_ct & body_pet) / (body_ct.sum() + body_pet.sum()))


def axial_offset_mm(pet: Geometry, ct: Geometry) -> float:
    """How far the PET's axial field of view lies from the CT's: the larger of the two end offsets (mm, along the
    LPS z axis). PET and CT of one acquisition are planned over the same range; another patient's PET, scanned
    from another start to another stop, lies centimetres away."""
    (plo, phi), (clo, chi) = pet.bounds_mm(), ct.bounds_mm()
    return float(max(abs(plo[2] - clo[2]), abs(phi[2] - chi[2])))


def check_fov(offset_mm: float, source: str, bands: PlausibilitySettings) -> None:
    if offset_mm > bands.max_axial_offset_mm:
        raise IngestError("pet_ct_mismatch", source, f"the PET's axial field of view ends {offset_mm:.0f} mm from "
                                                     f"the CT's (> {bands.max_axial_offset_mm:g} mm): a PET of "
                                                     f"another patient or scan")


def check_body(dice: float | None, source: str, bands: PlausibilitySettings) -> None:
    if dice is not None and dice < bands.min_body_dice:
        raise IngestError("pet_ct_mismatch", source, f"PET and CT body outlines overlap with Dice {dice:.2f} "
                                                     f"(< {bands.min_body_dice:g}): a PET of another patient or scan")


# ------------------------------------------------------------------------------------- a stored study
def verify_stored(stored, bands: PlausibilitySettings) -> list[str]:
    """Every plausibility problem of a complete study in the store (``tasks.ingest.store.StoredStudy``), as
    one line each; empty when it passes."""
    problems = []
    study = stored.study
    acq = study.acquisition
    sid = stored.study_id
    pet = np.asarray(stored.pet[...])
    grid = stored.geometry
    volumes = check_volumes(
        stored.pet_geometry.image(pet), grid.image(np.asarray(stored.ct[...])),
        grid.image(np.asarray(stored.anatomy[...])) if stored.anatomy is not None else None,
        grid.image(np.asarray(stored.lesions[...] > 0, dtype=np.uint8)))
    checks = [
        lambda: check_acquisition(acq.patient_weight_kg, acq.uptake_minutes, acq.injected_dose_mbq,
                                  study.tracer.value, sid, bands),
        lambda: check_grid(stored.geometry, f"{sid}/ct", bands),
        lambda: check_grid(stored.pet_geometry, f"{sid}/pet", bands),
        lambda: check_pet_values(pet, f"{sid}/pet", bands),
        lambda: check_reference(reference_uptake(volumes, bands), study.tracer.value, f"{sid}/pet", bands),
        lambda: check_body(body_dice(volumes), f"{sid}/pet", bands),
    ]
    for check in checks:
        try:
            check()
        except IngestError as e:
            problems.append(str(e))
    return problems

