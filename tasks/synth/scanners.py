"""Scanner profiles per vendor and scale, and how each scanner turns a labelled phantom into CT and PET.

A ``ScannerProfile`` holds what differs between vendors in the paper's cohort: CT matrix, field of view and
slice thickness; PET matrix, slice spacing and resolution (post-reconstruction PSF FWHM); CT and PET noise;
the SUV calibration offset of the site's dose calibrator; and the injected activity per tracer. Three
scales: ``full`` (clinical size: 512x512 CT, 2-3 mm slices), ``demo`` (small, for the minutes-long demo) and
``tiny`` (unit tests). CT noise and PET noise are the clinical ones at every scale (a model trained at demo
scale must see the noise it will meet), and CT noise rises with the patient's girth.

``ct_base`` maps internal labels to HU through per-tissue tables (cancellous bone falling with age) and gives
bone a cortical rim; ``add_ct_noise`` blurs that with the scanner's resolution (partial volume at every
edge) and adds tissue texture and scanner noise that is correlated between neighbouring voxels, as a
reconstruction kernel makes it (int16). ``pet_image`` blurs a true-activity map (SUV) with the PSF and adds
count noise whose variance follows the local activity (Poisson-like), then applies the calibration factor.
Both work in z-chunks so a full-scale study needs no float copy of the whole CT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from data_contracts.findings import Tracer, Vendor
from tasks.synth import phantom as ph

SCALES = ("tiny", "demo", "full")


@dataclass(frozen=True)
class ScannerProfile:
    vendor: Vendor
    scale: str
    model: str
    ct_matrix: int
    ct_fov_mm: float
    ct_slice_mm: float
    pet_matrix: int
    pet_fov_mm: float
    pet_slice_mm: float
    pet_fwhm_mm: float  # resolution after reconstruction and post-filter
    ct_noise_hu: float  # soft-tissue noise SD at this scale
    pet_noise_cv: float  # relative noise SD at SUV 2 (liver) at this scale
    suv_calibration: float  # nominal calibration factor (drawn per study around this)
    dose_mbq_per_kg: tuple[tuple[Tracer, float], ...]
    uptake_min: tuple[tuple[Tracer, float, float], ...]  # (tracer, lo, hi) minutes injection -> scan

    @property
    def ct_pixel_mm(self) -> float:
        return self.ct_fov_mm / self.ct_matrix

    @property
    def pet_pixel_mm(self) -> float:
        return self.pet_fov_mm / self.pet_matrix

    def dose_per_kg(self, tracer: Tracer) -> float:
        return dict(self.dose_mbq_per_kg)[tracer]

    def uptake_range(self, tracer: Tracer) -> tuple[float, float]:
        return {t: (lo, hi) for t, lo, hi in self.uptake_min}[tracer]


# Full-scale protocol per vendor: (model, CT matrix, CT FOV, CT slice, PET matrix, PET FOV, PET slice,
# PSF FWHM, CT noise, PET noise CV, SUV calibration, FDG MBq/kg, PSMA MBq/kg).
_FULL = {
    Vendor.siemens: ("Biograph Vision 600", 512, 500.0, 2.0, 220, 880.0, 3.0, 5.0, 14.0, 0.11, 1.00, 3.5, 3.8),
    Vendor.ge: ("Discovery MI", 512, 500.0, 2.5, 192, 700.0, 2.79, 6.4, 17.0, 0.14, 0.975, 3.7, 4.0),
    Vendor.united_imaging: ("uMI 780", 512, 600.0, 3.0, 192, 600.0, 2.68, 4.5, 12.0, 0.10, 1.025, 3.0, 3.3),
}
# Demo and tiny: (CT matrix, CT slice, PET matrix, PET slice, extra FWHM in mm).
_SMALL = {
    "demo": {
        Vendor.siemens: (128, 5.0, 128, 5.0, 2.0),
        Vendor.ge: (128, 4.0, 112, 4.0, 2.0),
        Vendor.united_imaging: (144, 4.5, 128, 4.5, 2.0),
    },
    "tiny": {
        Vendor.siemens: (64, 8.0, 64, 8.0, 6.0),
        Vendor.ge: (64, 7.0, 56, 7.0, 6.0),
        Vendor.united_imaging: (72, 8.0, 64, 8.0, 6.0),
    },
}
_UPTAKE = ((Tracer.fdg, 55.0, 75.0), (Tracer.psma, 80.0, 120.0))


def profile(vendor: Vendor, scale: str) -> ScannerProfile:
    """The protocol of ``vendor`` at ``scale`` (tiny | demo | full)."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose from {SCALES}")
    model, ctm, ctfov, ctsl, petm, petfov, petsl, fwhm, ctn, petcv, cal, fdg, psma = _FULL[vendor]
    if scale != "full":  # bigger voxels, a wider PSF; the noise a reader sees stays the clinical one
        ctm, ctsl, petm, petsl, extra = _SMALL[scale][vendor]
        fwhm = float(np.hypot(fwhm, extra + 0.6 * petfov / petm))
    return ScannerProfile(vendor, scale, model, ctm, ctfov, ctsl, petm, petfov, petsl, float(fwhm), float(ctn),
                          float(petcv), cal, ((Tracer.fdg, fdg), (Tracer.psma, psma)), _UPTAKE)


def grids(prof: ScannerProfile, z_range: tuple[float, float], table_z0: float = 0.0) -> tuple[ph.Grid, ph.Grid]:
    """CT and PET grids covering ``z_range`` (LPS mm), centred on the scanner axis (x = y = 0).

    Slices start at ``z_range[0]`` on the CT; the PET's slices start at the same position so both
    series cover the same table travel.
    """
    z0, z1 = z_range
    out = []
    for m, fov, dz in ((prof.ct_matrix, prof.ct_fov_mm, prof.ct_slice_mm),
                       (prof.pet_matrix, prof.pet_fov_mm, prof.pet_slice_mm)):
        px = fov / m
        nz = int(np.ceil((z1 - z0) / dz)) + 1
        o = -fov / 2 + px / 2
        out.append(ph.Grid((nz, m, m), (px, px, dz), (o, o, round(z0 + table_z0, 3))))
    return out[0], out[1]


# ------------------------------------------------------------------------------------------ CT formation

CHUNK = 32  # slices per chunk


@dataclass(frozen=True)
class CTTables:
    hu: np.ndarray  # int16 per internal label
    sd: np.ndarray  # float32 texture + scanner noise SD per label
    bone: np.ndarray  # bool per label: gets a cortical rim
    cortical_hu: float


REF_GIRTH = 1.02  # the girth at which a profile's CT noise holds
NOISE_GIRTH_POWER = 3.0  # CT noise ~ girth^3: a thicker patient attenuates more (with girth^2 the heaviest
# tercile's liver noise came out 1.21x the lightest's, under the 1.3x target: docs/realism/demo_seed6161.md;
# girth^3 on a fresh seed: 1.47x, demo_seed8484.md)
CANCELLOUS_HU_PER_YEAR = 2.2  # vertebral cancellous bone loses density with age (osteopenia)


def ct_tables(prof: ScannerProfile, rng: np.random.Generator, age: float = 60.0, girth: float = REF_GIRTH
              ) -> CTTables:
    """Per-label HU (with a little between-patient variation), noise SD and bone flags.

    Cancellous bone (spine, pelvis) falls with ``age``; scanner noise rises with ``girth``.
    """
    hu = {}
    for name, t in ph.TISSUES.items():
        jitter = 0.0 if name in ("air", "gas", "table") else rng.normal(0, 4 if not t.bone else 25)
        hu[name] = t.hu + jitter
    hu["lung"] = float(rng.uniform(-880, -820))
    osteo = -CANCELLOUS_HU_PER_YEAR * (age - 60.0)
    for name in ("bone_spine", "bone_pelvis"):
        hu[name] = max(hu[name] + osteo, 60.0)
    noise = prof.ct_noise_hu * (girth / REF_GIRTH) ** NOISE_GIRTH_POWER
    sd = {name: float(np.hypot(t.hu_sd, noise if name != "air" else noise * 0.6))
          for name, t in ph.TISSUES.items()}
    return CTTables(
        hu=np.round(ph.tissue_lut(hu)).astype(np.int16),
        sd=ph.tissue_lut(sd),
        bone=ph.tissue_lut({n: float(t.bone) for n, t in ph.TISSUES.items()}) > 0,
        cortical_hu=float(rng.uniform(1150, 1450)),
    )


CORTEX_MM = 1.5  # cortical shell thickness of vertebrae, ribs and flat bones


def ct_base(labels: np.ndarray, tables: CTTables, pixel_mm: float = 1.0) -> np.ndarray:
    """Noise-free HU (int16) from labels, with a one-voxel cortical rim where bone meets non-bone.

    The rim is the cortex partial-volumed into a voxel of ``pixel_mm``: fully cortical (> 1000 HU) at
    clinical pixel size, a blend with the cancellous value in the bigger voxels of the demo scale.
    """
    hu = tables.hu[labels]
    nz = labels.shape[0]
    f = min(1.0, CORTEX_MM / pixel_mm)
    cort = tables.cortical_hu
    for k0 in range(0, nz, CHUNK):
        k1 = min(k0 + CHUNK, nz)
        a, b = max(k0 - 1, 0), min(k1 + 1, nz)
        bone = tables.bone[labels[a:b]]
        interior = bone.copy()
        interior[:, 1:, :] &= bone[:, :-1, :]
        interior[:, :-1, :] &= bone[:, 1:, :]
        interior[:, :, 1:] &= bone[:, :, :-1]
        interior[:, :, :-1] &= bone[:, :, 1:]
        interior[1:] &= bone[:-1]
        interior[:-1] &= bone[1:]
        np.logical_xor(bone, interior, out=interior)  # the rim: bone without bone on every side
        rim = interior[k0 - a:k0 - a + (k1 - k0)]
        view = hu[k0:k1]
        inner = view[rim].astype(np.float32)
        view[rim] = np.maximum(inner, inner + f * (cort - inner)).astype(np.int16)
    return hu


class NoiseBank:
    """Gaussian samples for a whole volume at the cost of a copy: one fresh bank per study, read through
    random windows (one per slice) with random signs. A full-scale CT needs ~150 M samples; drawing them
    costs seconds, a window copy microseconds, and no two neighbouring slices share a window."""

    SIZE = 1 << 22

    def __init__(self, rng: np.random.Generator, slice_size: int, total: int):
        self.rng = rng
        self.size = min(self.SIZE, total)  # a small volume draws every sample fresh
        self.bank = rng.standard_normal(self.size + slice_size, dtype=np.float32)
        self.n = slice_size

    def slices(self, k: int) -> np.ndarray:
        """(k, n) samples; each row a window of the bank."""
        offs = self.rng.integers(0, self.size, k)
        sign = self.rng.choice(np.array([-1.0, 1.0], np.float32), k)
        out = np.empty((k, self.n), np.float32)
        for i in range(k):
            np.multiply(self.bank[offs[i]:offs[i] + self.n], sign[i], out=out[i])
        return out


# Scanner resolution as a gaussian (voxels): partial volume at every edge. In-plane: a voxel's footprint plus
# the kernel's blur; along z: the slice sensitivity profile.
PV_SIGMA_XY = 0.6
PV_SIGMA_Z = 0.45
# In-plane correlation of the noise (voxels): a reconstruction kernel correlates neighbouring voxels
# (neighbour correlation ~ exp(-1 / (4 sigma^2)) = 0.6 at 0.7, less the uncorrelated texture).
NOISE_SIGMA_XY = 0.7
HALO = 1  # slices read beyond a chunk for the z blur
KERNEL_TRUNCATE = 2.0  # gaussians cut at one voxel at these sigmas: 3-tap kernels, cheap on 150 M voxels


def _unit_kernel_gain(sigma: float) -> float:
    """SD of white noise of SD 1 after a 2-D gaussian filter of ``sigma`` voxels (to renormalise it)."""
    d = np.zeros((15, 15), np.float32)
    d[7, 7] = 1.0
    k = ndimage.gaussian_filter(d, sigma, mode="constant", truncate=KERNEL_TRUNCATE)
    return float(np.sqrt(np.sum(k.astype(np.float64) ** 2)))


def add_ct_noise(hu: np.ndarray, labels: np.ndarray, tables: CTTables, rng: np.random.Generator) -> np.ndarray:
    """The scanner's blur (partial volume), tissue texture and correlated scanner noise, in place on int16 HU
    (chunked along z; values clipped to -1024..3071)."""
    nz = hu.shape[0]
    bank = NoiseBank(rng, hu[0].size, hu.size)
    gain = np.float32(1.0 / _unit_kernel_gain(NOISE_SIGMA_XY))
    below = None  # the original (unblurred) slices just below the chunk, already overwritten in ``hu``
    for k0 in range(0, nz, CHUNK):
        k1 = min(k0 + CHUNK, nz)
        top = min(k1 + HALO, nz)
        parts = ([below] if below is not None else []) + [hu[k0:top].astype(np.float32)]
        block = np.concatenate(parts) if len(parts) > 1 else parts[0]
        lo = 0 if below is None else below.shape[0]
        below = hu[max(k1 - HALO, k0):k1].astype(np.float32)
        ndimage.gaussian_filter(block, (PV_SIGMA_Z, PV_SIGMA_XY, PV_SIGMA_XY), output=block, mode="nearest",
                                truncate=KERNEL_TRUNCATE)
        out = block[lo:lo + (k1 - k0)]
        noise = bank.slices(k1 - k0).reshape(out.shape)
        ndimage.gaussian_filter(noise, (0, NOISE_SIGMA_XY, NOISE_SIGMA_XY), output=noise, mode="wrap",
                                truncate=KERNEL_TRUNCATE)
        noise *= gain
        noise *= tables.sd[labels[k0:k1]]
        out += noise
        np.clip(out, -1024, 3071, out=out)
        np.rint(out, out=out)
        hu[k0:k1] = out
    return hu


# ----------------------------------------------------------------------------------------- PET formation


def suv_table(tracer: Tracer, rng: np.random.Generator, brown_fat: bool = False) -> np.ndarray:
    """Physiological SUV per internal label for one patient (float32), tracer-specific.

    ``brown_fat``: the patient's brown fat is activated (cold, young, lean): FDG SUV 2.5-9 there.
    """
    vals = {}
    for name, t in ph.TISSUES.items():
        base = t.fdg if tracer is Tracer.fdg else t.psma
        vals[name] = base * float(np.exp(rng.normal(0, t.suv_sd))) if base > 0 else 0.0
    if tracer is Tracer.fdg:
        vals["myocardium"] = float(np.exp(rng.uniform(np.log(1.8), np.log(14.0))))  # fasting state varies
        vals["urine"] = float(np.exp(rng.uniform(np.log(6.0), np.log(60.0))))
        vals["brain"] = float(rng.uniform(5.5, 10.0))
        if brown_fat:
            vals["brown_fat"] = float(np.exp(rng.uniform(np.log(2.5), np.log(9.0))))
    else:
        vals["urine"] = float(np.exp(rng.uniform(np.log(5.0), np.log(40.0))))
    return ph.tissue_lut(vals)


def pet_true(labels_pet: np.ndarray, suv: np.ndarray) -> np.ndarray:
    """Noise-free, unblurred activity (SUV) on the PET grid."""
    return suv[labels_pet]


def pet_image(true_suv: np.ndarray, grid: ph.Grid, prof: ScannerProfile, calibration: float,
              rng: np.random.Generator) -> np.ndarray:
    """What the scanner reports: PSF blur, Poisson-like noise (variance ~ activity), calibration; float32.

    Noise is added before the PSF blur so it is spatially correlated like reconstructed PET noise; its
    amplitude is set so that, after the blur, a region of SUV 2 shows ``prof.pet_noise_cv``.
    """
    sigma_mm = prof.pet_fwhm_mm / 2.3548
    sigma = [sigma_mm / grid.spacing[2], sigma_mm / grid.spacing[1], sigma_mm / grid.spacing[0]]  # z, y, x
    gain = float(np.sqrt((2 * np.sqrt(np.pi)) ** 3 * np.prod(sigma)))  # white-noise SD lost to the blur
    ref = 2.0
    k = prof.pet_noise_cv * ref / np.sqrt(ref) * gain  # noise SD = k * sqrt(activity) before the blur
    out = np.empty_like(true_suv, dtype=np.float32)
    bank = NoiseBank(rng, true_suv[0].size, true_suv.size)
    for k0 in range(0, true_suv.shape[0], CHUNK):
        k1 = min(k0 + CHUNK, true_suv.shape[0])
        a = true_suv[k0:k1]
        n = bank.slices(k1 - k0).reshape(a.shape)
        n *= np.sqrt(np.maximum(a, 0.0)) * np.float32(k)
        n += a
        out[k0:k1] = n
    ndimage.gaussian_filter(out, sigma, output=out, mode="nearest", truncate=3.0)
    np.maximum(out, 0.0, out=out)
    out *= np.float32(calibration)
    return out


def recovery(diameter_mm: float, fwhm_mm: float, pixel_mm: float) -> float:
    """Peak recovery of a uniform sphere after a gaussian PSF (partial-volume effect), in (0, 1]."""
    sigma = np.hypot(fwhm_mm / 2.3548, pixel_mm / np.sqrt(12))
    r = diameter_mm / 2
    x = r / (np.sqrt(2) * sigma)
    from math import erf

    return float(max(erf(x) - np.sqrt(2 / np.pi) * (r / sigma) * np.exp(-x * x), 0.05))
