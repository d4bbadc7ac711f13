"""The analytic phantom: every structure drawn, shapes symmetric and alike where they must be, fast paths exact."""

import numpy as np
import pytest

from data_contracts import anatomy, taxonomy
from data_contracts.findings import Vendor
from tasks.synth import phantom as ph
from tasks.synth import scanners as sc


def _labels(sex: str, scale: str, vendor: Vendor = Vendor.siemens, pose: ph.Pose | None = None):
    pt = ph.reference_patient(sex)
    ct, _ = sc.grids(sc.profile(vendor, scale), (-20.0, pt.height_mm + 20.0))
    return ph.rasterize(ph.build_phantom(pt), ct, pose or ph.Pose(), None), ct


@pytest.fixture(scope="module")
def tiny_m():
    return _labels("M", "tiny")


@pytest.mark.parametrize("scale", ["tiny", "demo"])
def test_every_taxonomy_category_has_its_structure_drawn(scale):
    present: set[str] = set()
    for sex in ("M", "F"):
        labels, _ = _labels(sex, scale, Vendor.united_imaging)
        counts = np.bincount(ph.anatomy_lut()[labels].ravel(), minlength=len(anatomy.structures()) + 1)
        present |= {s for s, lab in anatomy.label_of().items() if counts[lab] > 0}
    missing_locations = [loc.id for loc in taxonomy.locations() if not set(loc.structures) <= present]
    assert missing_locations == []
    assert set(anatomy.structures()) <= present  # background structures too (uterus: F, prostate: M)


def test_sex_specific_organs(tiny_m):
    labels_m, _ = tiny_m
    labels_f, _ = _labels("F", "tiny")
    lab = anatomy.label_of()
    am, af = ph.anatomy_lut()[labels_m], ph.anatomy_lut()[labels_f]
    assert (am == lab["prostate"]).any() and not (am == lab["uterus"]).any()
    assert (af == lab["uterus"]).any() and not (af == lab["prostate"]).any()
    # breasts are much larger in the female phantom
    assert (af == lab["breast_left"]).sum() > 4 * (am == lab["breast_left"]).sum()


def test_internal_labels_map_to_their_parents():
    lut = ph.anatomy_lut()
    lab, pub = ph.internal_labels(), anatomy.label_of()
    for name, public in pub.items():
        assert lab[name] == public and lut[public] == public
    assert lut[lab["femur_marrow_left"]] == pub["femur_left"]
    assert lut[lab["heart_blood"]] == pub["heart"]
    assert lut[lab["node_ln_mediastinal_7"]] == pub["ln_mediastinal_7"]
    assert lut[lab["table"]] == 0 and lut[lab["airway"]] == 0
    assert len(ph.tissue_of_label()) == ph.n_labels()


def test_skeleton_is_left_right_symmetric():
    """With no roll and a grid symmetric about x = 0, paired bones mirror each other."""
    pt = ph.reference_patient("M")
    grid = ph.Grid((240, 80, 160), (4.0, 4.0, 8.0), (-318.0, -158.0, -20.0))  # x centres symmetric about 0
    labels = ph.rasterize(ph.build_phantom(pt), grid, ph.Pose(), None)
    lab = anatomy.label_of()
    mirrored = labels[:, :, ::-1]
    for k in (1, 4, 7, 10, 12):
        right = labels == lab[f"rib_right_{k}"]
        left_mirrored = mirrored == lab[f"rib_left_{k}"]
        iou = (right & left_mirrored).sum() / (right | left_mirrored).sum()
        assert iou > 0.9, (k, iou)
    for name in ("vertebra_T7", "vertebra_L3", "sacrum"):
        m = labels == lab[name]
        assert ((m & m[:, :, ::-1]).sum() / m.sum()) > 0.9, name


def test_vertebrae_and_ribs_change_size_slowly():
    """Neighbouring vertebrae and ribs differ by little in volume: a small patch cannot tell the level."""
    pt = ph.reference_patient("M")
    grid = ph.Grid((720, 108, 124), (2.5, 2.5, 2.5), (-153.75, -133.75, -20.0))  # the whole rib cage
    labels = ph.rasterize(ph.build_phantom(pt), grid, ph.Pose(), None)
    lab = anatomy.label_of()
    vols = np.array([(labels == lab[f"vertebra_{n}"]).sum() for n in ph.SPINE_LEVELS], float)
    ratios = vols[1:] / vols[:-1]
    assert np.all(ratios > 0.8) and np.all(ratios < 1.3), dict(zip(ph.SPINE_LEVELS[1:], ratios.round(2)))
    assert vols[-1] > 2 * vols[0]  # but lumbar vertebrae are clearly bigger than cervical ones
    ribs = np.array([(labels == lab[f"rib_left_{k}"]).sum() for k in range(2, 11)], float)  # ribs 2-10 alike
    assert np.all(ribs[1:] / ribs[:-1] > 0.7) and np.all(ribs[1:] / ribs[:-1] < 1.45), ribs


def test_row_intervals_equal_voxel_tests():
    """The closed-form row solver of convex shapes paints exactly what the voxel test says."""
    rng = np.random.default_rng(3)
    grid = ph.Grid((30, 40, 50), (3.0, 2.5, 4.0), (-60.0, -50.0, -60.0))
    for roll in (0.0, 3.5, -2.0):
        pose = ph.Pose(roll, (4.0, -3.0, 1.0))
        q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
        shapes = [
            ph.Ellipsoid(np.array([5.0, -4.0, 2.0]), np.array([30.0, 18.0, 25.0]), q),
            ph.Ellipsoid(np.array([-8.0, 3.0, -5.0]), np.array([12.0, 22.0, 9.0])),
            ph.Slab(ph.Profile(np.array([-50.0, 0.0, 50.0]), np.array([30.0, 40.0, 25.0]),
                               np.array([20.0, 25.0, 18.0]), np.array([0.0, 3.0, -2.0]),
                               np.array([-5.0, 0.0, 5.0])), -40.0, 45.0, flat_back=0.8),
        ]
        for shape in shapes:
            fast = ph.rasterize([ph.Paint(shape, 1)], grid, pose)
            slow_shape = ph.Implicit(*shape.bounds(), shape.inside)
            slow = ph.rasterize([ph.Paint(slow_shape, 1)], grid, pose)
            assert fast.sum() > 100
            assert (fast != slow).sum() <= 0.002 * fast.sum()  # float32 rounding at the surface only


def test_roll_and_shift_move_the_patient():
    pt = ph.reference_patient("M")
    ops = ph.build_phantom(pt)
    grid = ph.Grid((60, 100, 100), (5.0, 5.0, 8.0), (-247.5, -247.5, 1000.0))
    lab = anatomy.label_of()["kidney_left"]

    def centroid(pose):
        m = ph.rasterize(ops, grid, pose) == lab
        return np.array([grid.point_of(c) for c in [np.argwhere(m).mean(axis=0)]])[0]

    c0 = centroid(ph.Pose())
    c1 = centroid(ph.Pose(0.0, (20.0, -10.0, 16.0)))
    assert np.allclose(c1 - c0, [20.0, -10.0, 16.0], atol=2.5)
    c2 = centroid(ph.Pose(10.0))
    expected = ph.Pose(10.0).to_lps(ph.Pose().to_body(c0[None]))[0]
    assert np.allclose(c2[:2], expected[:2], atol=3.0)
    p = np.array([[12.0, -30.0, 900.0]])
    assert np.allclose(ph.Pose(3.0, (1, 2, 3)).to_body(ph.Pose(3.0, (1, 2, 3)).to_lps(p)), p)


def test_patients_vary_within_plausible_ranges():
    rng = np.random.default_rng(0)
    pts = [ph.sample_patient(rng) for _ in range(300)]
    h = np.array([p.height_mm for p in pts])
    assert h.min() >= 1500 and h.max() <= 1950 and h.std() > 50
    assert {p.sex for p in pts} == {"M", "F"}
    assert all(abs(p.roll_deg) <= 4 for p in pts)
    w = np.array([p.weight_kg for p in pts])
    assert 40 < w.min() and w.max() < 150
    bmi = w / (h / 1000) ** 2
    assert 17 < bmi.min() and bmi.max() < 45


def test_girth_adds_fat_not_organs():
    lean = ph.Patient("M", 1750.0, 0.9, 1.0, 0.0, {}, 0)
    obese = ph.Patient("M", 1750.0, 1.3, 1.0, 0.0, {}, 0)
    grid = ph.Grid((40, 120, 120), (4.0, 4.0, 8.0), (-238.0, -238.0, 1000.0))
    lab = ph.internal_labels()
    a = ph.rasterize(ph.build_phantom(lean), grid, ph.Pose())
    b = ph.rasterize(ph.build_phantom(obese), grid, ph.Pose())
    assert (b == lab["body_fat"]).sum() > 1.5 * (a == lab["body_fat"]).sum()
    liver = [lab[f"liver_segment_{i}"] for i in range(1, 9)]
    assert abs(np.isin(b, liver).sum() / np.isin(a, liver).sum() - 1) < 0.05


def test_proportions_stretch_each_segment_and_keep_the_height():
    assert ph.proportions_warp(ph.reference_patient("M")) == ((), ())
    rng = np.random.default_rng(0)
    heights = []
    for _ in range(30):
        pt = ph.sample_patient(rng, "M")
        body, table = (np.array(k) for k in ph.proportions_warp(pt))
        assert np.all(np.diff(body) > 0) and np.all(np.diff(table) > 0)
        pose = ph.Pose(0.0, (0.0, 0.0, 0.0), ph.proportions_warp(pt))
        assert pose.table_w(0.0) == pytest.approx(0.0) and pose.table_w(pt.height_mm) == pytest.approx(pt.height_mm)
        assert pose.body_w(pose.table_w(1234.5)) == pytest.approx(1234.5)
        b = ph.Builder(pt)
        l1, l5 = b.level("L1"), b.level("L5")
        heights.append((pose.table_w(l1.top * pt.vscale) - pose.table_w(l5.disc_bottom * pt.vscale)) / pt.height_mm)
    assert np.std(heights) > 0.004  # the lumbar spine's share of the height varies (rigid scaling: 0)


def test_arms_up_put_the_humeri_beside_the_head():
    lab = anatomy.label_of()
    down = ph.reference_patient("M")
    up = ph.Patient(**{**down.__dict__, "arms_up": True})
    grid = ph.Grid((60, 40, 64), (8.0, 8.0, 8.0), (-252.0, -156.0, 1300.0))
    for pt, above in ((down, False), (up, True)):
        labels = ph.rasterize(ph.build_phantom(pt), grid, ph.Pose(), None)
        z = np.argwhere(ph.anatomy_lut()[labels] == lab["humerus_left"])[:, 0]
        assert bool(grid.point_of((z.max(), 0, 0))[2] > 1600.0) is above
