import numpy as np
import pytest
from scipy import ndimage

from data_contracts import segmentation
from data_contracts.geometry import Geometry
from tasks.landmarks import Landmarks
from tasks.realism import images

GEOM = Geometry((20, 40, 40), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def test_white_noise_reads_zero_correlation_and_a_fifth_box_ratio():
    rng = np.random.default_rng(0)
    v = rng.normal(0, 10, (20, 60, 60))
    roi = np.ones(v.shape, bool)
    assert abs(images.neighbour_correlation(v, roi)) < 0.03
    assert images.box_mean_sd_ratio(v, roi) == pytest.approx(0.2, abs=0.02)


def test_smoothed_noise_reads_correlated():
    rng = np.random.default_rng(1)
    v = ndimage.gaussian_filter(rng.normal(0, 10, (20, 80, 80)), (0, 1.0, 1.0))
    roi = np.ones(v.shape, bool)
    assert 0.5 < images.neighbour_correlation(v, roi) < 0.9
    assert images.box_mean_sd_ratio(v, roi) > 0.35


def test_inbetween_share_is_zero_for_hard_edges_and_high_with_partial_volume():
    inside = np.zeros((3, 40, 40), bool)
    inside[:, 10:30, 10:30] = True
    hard = np.where(inside, 40.0, -850.0)
    assert images.inbetween_share(hard, inside, images.LUNG_REF) == 0.0
    soft = ndimage.gaussian_filter(hard, (0, 0.8, 0.8))
    assert images.inbetween_share(soft, inside, images.LUNG_REF) > 0.3


def test_liver_figures_from_a_labelled_volume():
    lab = segmentation.label_of()
    anat = np.zeros(GEOM.shape, np.uint16)
    anat[2:18, 5:35, 5:35] = lab["liver"]
    rng = np.random.default_rng(2)
    ct = np.where(anat > 0, 60.0, -100.0) + rng.normal(0, 12, GEOM.shape)
    pet = np.where(anat > 0, 2.0, 0.5) * (1 + rng.normal(0, 0.12, GEOM.shape))
    lesions = np.zeros(GEOM.shape, np.uint16)
    lesions[8:11, 18:21, 18:21] = 1
    ct[lesions > 0] = 300.0  # excluded with a margin: must not move the median or SD
    marks = Landmarks.from_labels(anat, GEOM)
    f = images.study_image_figures(ct, pet, anat, lesions, GEOM, marks)
    assert f["liver_hu"] == pytest.approx(60, abs=1.5)
    assert f["liver_noise_hu"] == pytest.approx(12, abs=1.0)
    assert f["liver_suv_mean"] == pytest.approx(2.0, abs=0.05)
    assert f["liver_pet_cv"] == pytest.approx(0.12, abs=0.015)
    assert np.isnan(f["kidney_suv_max"]) and np.isnan(f["cancellous_hu"])


def test_body_diameter_is_the_median_effective_diameter_of_the_body_slices():
    """A 60-voxel-radius disc at 2 mm reads 240 mm: the table (a smaller region) and the air inside the body (a
    filled hole) do not change it; the median skips a slice with no body."""
    ct = np.full((4, 140, 140), -1000.0)
    yy, xx = np.mgrid[:140, :140]
    r = np.hypot(yy - 65, xx - 70)
    for k, radius in ((0, 60), (1, 50), (2, 60)):
        ct[k][r <= radius] = 40.0
        ct[k][r <= 20] = -900.0  # lung air inside: a hole, filled
        ct[k][132:136, 10:130] = 200.0  # the table, apart from the body
    geom = Geometry((4, 140, 140), (2.0, 2.0, 3.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert images.body_diameter_mm(ct, geom) == pytest.approx(240.0, abs=1.0)  # median of 240, 200, 240 mm
    assert images.body_diameter_mm(ct[1:2], geom) == pytest.approx(200.0, abs=1.0)
    assert np.isnan(images.body_diameter_mm(ct[3:], geom))  # air only
