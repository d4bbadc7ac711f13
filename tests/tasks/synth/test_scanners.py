"""Scanner profiles and image formation: distinct vendors, HU and SUV per tissue, PSF and count noise."""

import itertools

import numpy as np
import pytest
from scipy import ndimage

from data_contracts.findings import Tracer, Vendor
from data_contracts.settings import Settings
from tasks.synth import cohort as co
from tasks.synth import phantom as ph
from tasks.synth import scanners as sc

VENDORS = list(Vendor)


@pytest.mark.parametrize("scale", sc.SCALES)
def test_vendor_profiles_are_distinct(scale):
    profiles = [sc.profile(v, scale) for v in VENDORS]
    for a, b in itertools.combinations(profiles, 2):
        assert (a.ct_pixel_mm, a.ct_slice_mm) != (b.ct_pixel_mm, b.ct_slice_mm)
        assert a.pet_fwhm_mm != b.pet_fwhm_mm
        assert a.pet_noise_cv != b.pet_noise_cv and a.ct_noise_hu != b.ct_noise_hu
        assert (a.pet_pixel_mm, a.pet_slice_mm) != (b.pet_pixel_mm, b.pet_slice_mm)
    assert len({p.suv_calibration for p in profiles}) == 3
    assert all(0.97 <= p.suv_calibration <= 1.03 for p in profiles)


def test_full_scale_is_clinical_size():
    for v in VENDORS:
        p = sc.profile(v, "full")
        assert p.ct_matrix == 512 and 2.0 <= p.ct_slice_mm <= 3.0 and 0.9 <= p.ct_pixel_mm <= 1.2
        assert 4.0 <= p.pet_fwhm_mm <= 7.0 and p.pet_pixel_mm < 4.5
        ct, pet = sc.grids(p, (-1800.0, 0.0))
        assert 600 <= ct.shape[0] <= 910 and 150e6 <= ct.n_voxels <= 250e6
        assert pet.shape[0] * pet.spacing[2] >= 1800.0
    demo = [sc.profile(v, "demo") for v in VENDORS]
    assert all(p.ct_matrix <= 160 and p.ct_slice_mm >= 4.0 for p in demo)
    # bigger voxels, the same noise: a model trained at demo scale sees clinical noise
    for v in VENDORS:
        assert sc.profile(v, "demo").ct_noise_hu == sc.profile(v, "full").ct_noise_hu
        assert sc.profile(v, "demo").pet_noise_cv == sc.profile(v, "full").pet_noise_cv


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="unknown scale"):
        sc.profile(Vendor.ge, "huge")


@pytest.fixture(scope="module")
def studies():
    """One FDG and one PSMA demo study of United Imaging (the commonest vendor), without lesions."""
    out = {}
    for plan in co.plan_cohort(12, 5, "demo", Settings()):
        if plan.vendor is Vendor.united_imaging and plan.tracer not in out:
            out[plan.tracer] = co.generate_study(plan, specs=[])
        if len(out) == 2:
            break
    assert set(out) == {Tracer.fdg, Tracer.psma}
    return out


def _mean(values, labels, names, inner=False):
    lab = ph.internal_labels()
    m = np.isin(labels, [lab[n] for n in names])
    if inner:  # away from edges (partial volume on the PET, the cortical rim on the CT)
        m = ndimage.binary_erosion(m, iterations=2)
    assert m.sum() > 20, names
    return float(values[m].mean()), float(values[m].std())


def test_hu_per_tissue(studies):
    g = studies[Tracer.fdg]
    hu, labels = g.study.ct.array, g.labels_ct
    assert hu.dtype == np.int16
    assert -1010 <= hu[labels == 0].mean() <= -990
    # inside each region (edges are partial-volumed with their neighbours)
    lung = _mean(hu, labels, ["lung_lower_lobe_right", "lung_upper_lobe_left"], inner=True)[0]
    fat = _mean(hu, labels, ["body_fat"], inner=True)[0]
    muscle = _mean(hu, labels, ["muscle"], inner=True)[0]
    liver = _mean(hu, labels, [f"liver_segment_{i}" for i in range(1, 9)], inner=True)[0]
    spine = _mean(hu, labels, ["vertebra_L2", "vertebra_L3", "vertebra_L4"], inner=False)[0]
    assert -900 <= lung <= -800
    assert -120 <= fat <= -80
    assert 30 <= muscle <= 60
    assert 47 <= liver <= 63 and liver > muscle
    assert 200 <= spine <= 700  # cancellous bone with its cortex, partial-volumed at demo scale
    # inside the vertebral bodies: cancellous bone (180 +/- 60 HU in adults)
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)
    core = ndimage.binary_erosion(np.isin(labels, [ph.internal_labels()[f"vertebra_L{i}"] for i in range(1, 6)]),
                                  st, iterations=2)
    assert 120 <= np.median(hu[ndimage.binary_erosion(core)]) <= 260


def test_cortical_rim_at_clinical_pixel_size():
    """At 1 mm pixels the one-voxel rim where bone meets soft tissue is cortical bone (> 1000 HU)."""
    lab = ph.internal_labels()
    labels = np.full((6, 40, 40), lab["muscle"], np.uint16)
    labels[1:5, 10:30, 10:30] = lab["vertebra_L3"]
    tables = sc.ct_tables(sc.profile(Vendor.siemens, "full"), np.random.default_rng(0))
    hu = sc.ct_base(labels, tables, pixel_mm=0.98)
    assert hu[2, 10, 15] > 1000 and hu[2, 29, 20] > 1000 and hu[1, 20, 20] > 1000  # sides and endplate
    assert 120 <= hu[2, 20, 20] <= 280  # cancellous inside (the table's adult at 60)
    assert hu[2, 5, 5] < 100
    coarse = sc.ct_base(labels, tables, pixel_mm=4.0)
    assert hu[2, 20, 20] < coarse[2, 10, 15] < hu[2, 10, 15]  # partial volume at demo pixel size


def test_suv_per_tissue(studies):
    fdg, psma = studies[Tracer.fdg], studies[Tracer.psma]

    def suv(g, names):
        pet = g.study.pet.array
        return _mean(pet, g.labels_pet, names, inner=True)[0]

    liver = [f"liver_segment_{i}" for i in range(1, 9)]
    assert 1.5 <= suv(fdg, liver) <= 3.2
    assert suv(fdg, ["brain"]) > 4.0
    assert suv(fdg, ["bladder"]) > 2 * suv(fdg, liver)
    assert suv(fdg, ["muscle"]) < 1.2 and suv(fdg, ["body_fat"]) < 0.8 and suv(fdg, ["lung_lower_lobe_right"]) < 1
    assert suv(psma, ["brain"]) < 0.6
    assert suv(psma, ["parotid_left", "parotid_right"]) > 5.0
    assert suv(psma, ["kidney_left", "kidney_right"]) > 10.0
    assert suv(psma, liver) > suv(fdg, liver)
    assert suv(psma, ["spleen"]) > 3.0


def test_pet_noise_and_calibration_follow_the_profile(studies):
    g = studies[Tracer.fdg]
    liver = [f"liver_segment_{i}" for i in range(1, 9)]
    mean, sd = _mean(g.study.pet.array, g.labels_pet, liver, inner=True)
    true_mean = _mean(g.true_pet, g.labels_pet, liver, inner=True)[0]
    assert abs(mean / (true_mean * g.study.pet_calibration) - 1) < 0.05
    expected = g.profile.pet_noise_cv * np.sqrt(2.0 / true_mean)  # CV falls as 1/sqrt(activity)
    assert 0.5 * expected < sd / mean < 1.8 * expected


def test_psf_blurs_a_point_to_the_profile_fwhm():
    p = sc.profile(Vendor.ge, "full")
    grid = ph.Grid((41, 41, 41), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    true = np.zeros(grid.shape, np.float32)
    true[20, 20, 20] = 1000.0
    p0 = sc.ScannerProfile(**{**p.__dict__, "pet_noise_cv": 0.0})
    img = sc.pet_image(true, grid, p0, 1.0, np.random.default_rng(0))
    line = img[20, 20]
    half = line > line.max() / 2
    assert abs(half.sum() * 2.0 - p.pet_fwhm_mm) <= 2.0
    assert abs(img.sum() - 1000.0) < 1.0


def test_recovery_falls_for_small_lesions():
    r = [sc.recovery(d, 6.0, 4.0) for d in (4, 8, 16, 32, 64)]
    assert all(a < b for a, b in zip(r, r[1:]))
    assert r[0] < 0.3 and r[-1] > 0.95


# ------------------------------------------------------------------------------------------ issue 14 physics


def _uniform_liver(shape=(4, 96, 96)):
    lab = ph.internal_labels()
    return np.full(shape, lab["liver_segment_5"], np.uint16)


def test_ct_noise_is_correlated_like_a_reconstruction_kernel():
    """Neighbour correlation 0.3-0.7 and SD(5x5 mean) / SD(voxel) >= 0.35 (white noise: 0 and 0.2)."""
    labels = _uniform_liver()
    tables = sc.ct_tables(sc.profile(Vendor.united_imaging, "tiny"), np.random.default_rng(1))
    hu = sc.add_ct_noise(sc.ct_base(labels, tables), labels, tables, np.random.default_rng(2)).astype(float)
    r = hu - hu.mean()
    corr = np.corrcoef(r[:, :, 1:].ravel(), r[:, :, :-1].ravel())[0, 1]
    m5 = ndimage.uniform_filter(r, (1, 5, 5))[:, 4:-4, 4:-4]
    assert 0.3 <= corr <= 0.7
    assert m5.std() / r.std() >= 0.35
    assert 10.0 <= r.std() <= 20.0  # liver noise 15 +/- 5 HU, at the tiny scale too


def test_ct_noise_rises_with_girth_and_cancellous_bone_falls_with_age():
    prof = sc.profile(Vendor.ge, "demo")
    lab = ph.internal_labels()
    thin = sc.ct_tables(prof, np.random.default_rng(0), girth=0.9)
    obese = sc.ct_tables(prof, np.random.default_rng(0), girth=1.25)
    assert obese.sd[lab["liver_segment_1"]] >= 1.3 * thin.sd[lab["liver_segment_1"]]
    young = sc.ct_tables(prof, np.random.default_rng(0), age=40)
    old = sc.ct_tables(prof, np.random.default_rng(0), age=80)
    spine = lab["vertebra_L2"]
    assert young.hu[spine] - old.hu[spine] >= 60
    assert 120 <= old.hu[spine] <= 240 <= young.hu[spine] <= 300


def test_every_edge_is_partial_volumed():
    """A voxel on either side of a fat/muscle edge holds an in-between value (noise-free tables)."""
    lab = ph.internal_labels()
    labels = np.full((6, 32, 32), lab["body_fat"], np.uint16)
    labels[:, :, 16:] = lab["muscle"]
    tables = sc.ct_tables(sc.profile(Vendor.siemens, "tiny"), np.random.default_rng(0))
    quiet = sc.CTTables(tables.hu, np.zeros_like(tables.sd), tables.bone, tables.cortical_hu)
    hu = sc.add_ct_noise(sc.ct_base(labels, quiet), labels, quiet, np.random.default_rng(0)).astype(float)
    fat, muscle = float(tables.hu[lab["body_fat"]]), float(tables.hu[lab["muscle"]])
    row = hu[3, 16]
    assert row[0] == fat and row[-1] == muscle
    for edge in (row[15], row[16]):
        f = (edge - fat) / (muscle - fat)
        assert 0.1 < f < 0.9


def test_pet_recovery_grows_with_lesion_size():
    """Spheres of one true uptake read a higher SUVmax the bigger they are (PSF partial volume)."""
    prof = sc.profile(Vendor.united_imaging, "demo")
    grid = ph.Grid((40, 64, 64), (prof.pet_pixel_mm,) * 2 + (prof.pet_slice_mm,), (0.0, 0.0, 0.0))
    zz, yy, xx = np.meshgrid(*[np.arange(n) * s for n, s in zip(grid.shape, grid.spacing[::-1])], indexing="ij")
    true = np.full(grid.shape, 0.5, np.float32)
    centres = [(60.0, 60.0), (60.0, 180.0), (180.0, 60.0), (180.0, 180.0)]
    for (cy, cx), d in zip(centres, (6.0, 12.0, 24.0, 40.0)):
        true[(zz - 90.0) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2 <= (d / 2) ** 2] = 10.0
    pet = sc.pet_image(true, grid, prof, 1.0, np.random.default_rng(0))
    peaks = [pet[:, int(cy / grid.spacing[1]) - 3:int(cy / grid.spacing[1]) + 4,
                 int(cx / grid.spacing[0]) - 3:int(cx / grid.spacing[0]) + 4].max() for cy, cx in centres]
    assert peaks[0] < peaks[1] < peaks[2] and peaks[0] < 0.6 * 10.0 and peaks[3] > 0.8 * 10.0


def test_liver_pet_noise_is_clinical_at_every_training_scale():
    lab = ph.internal_labels()
    for scale in ("demo", "full"):
        prof = sc.profile(Vendor.ge, scale)
        grid = ph.Grid((30, 48, 48), (prof.pet_pixel_mm,) * 2 + (prof.pet_slice_mm,), (0.0, 0.0, 0.0))
        suv = np.zeros(ph.n_labels(), np.float32)
        suv[lab["liver_segment_5"]] = 2.0
        true = sc.pet_true(np.full(grid.shape, lab["liver_segment_5"], np.uint16), suv)
        pet = sc.pet_image(true, grid, prof, 1.0, np.random.default_rng(0))[5:-5, 5:-5, 5:-5]
        assert 0.10 <= pet.std() / pet.mean() <= 0.15, scale
