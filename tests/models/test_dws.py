import numpy as np
import pytest
import torch

from data_contracts import taxonomy
from data_contracts.settings import Settings
from models.dws import (
    DynamicWindow,
    DynamicWindowd,
    NormalizePET,
    NormalizePETd,
    dynamic_window_batch,
    location_of,
    top1_reaches,
)

THR = Settings().dws_threshold  # 0.95
LUNG, BONE, SOFT = "lung_rul", "sternum", "spleen"


def _np(x):
    return np.asarray(torch.as_tensor(x), dtype=np.float64)


def test_window_numbers_level_maps_to_half_and_edges_clip():
    dws = DynamicWindow(THR)
    hu = np.array([-600.0, 800.0, 40.0, -1350.0, 150.0, -3000.0, 3000.0], dtype=np.float32)
    lung = _np(dws(hu, LUNG, 1.0))
    assert lung[0] == pytest.approx(0.5) and lung[3] == 0.0 and lung[4] == pytest.approx(1.0)
    assert lung[5] == 0.0 and lung[6] == 1.0  # clipped
    bone = _np(dws(hu, BONE, 1.0))  # L800 W2600: [-500, 2100]
    assert bone[1] == pytest.approx(0.5) and bone[0] == 0.0  # -600 HU below the bone window's -500: clipped
    assert bone[2] == pytest.approx((40 + 500) / 2600, abs=1e-6)
    soft = _np(dws(hu, SOFT, 1.0))  # L40 W350: [-135, 215]
    assert soft[2] == pytest.approx(0.5) and soft[0] == 0.0 and soft[1] == 1.0
    assert np.all((lung >= 0) & (lung <= 1)) and np.all((bone >= 0) & (bone <= 1))


def test_rule_at_boundary_inclusive():
    dws = DynamicWindow(THR)
    hu = np.array([-600.0])
    assert _np(dws(hu, LUNG, 0.95))[0] == pytest.approx(0.5)  # region window (>= 0.95)
    assert _np(dws(hu, LUNG, 0.9499))[0] == 0.0  # soft tissue: -600 HU below -135
    # the localizer's float32 0.95 counts as 0.95, also as a top-5 vector
    assert dws.window(LUNG, torch.tensor([0.95, 0.03], dtype=torch.float32)) == taxonomy.window_for(LUNG)
    assert dws.window(LUNG, np.float32(0.95)) == taxonomy.window_for(LUNG)
    assert dws.window(LUNG, np.float32(0.9499)) == taxonomy.WINDOWS[taxonomy.WindowGroup.soft_tissue]
    # class index and string id are the same location
    assert dws.window(taxonomy.index_of(BONE), 0.99) == taxonomy.window_for(BONE)


def test_disabled_is_one_fixed_soft_tissue_window():
    dws = DynamicWindow(THR, enabled=False)
    for loc in (LUNG, BONE, SOFT):
        assert dws.window(loc, 1.0) == taxonomy.WINDOWS[taxonomy.WindowGroup.soft_tissue]
    assert _np(dws(np.array([40.0]), LUNG, 1.0))[0] == pytest.approx(0.5)


def test_dict_wrapper_reads_top5_vectors_and_keeps_other_keys():
    t = DynamicWindowd("ct", THR)
    ct = torch.full((1, 2, 2, 2), 800.0)
    out = t({"ct": ct, "pet": ct.clone(), "top_ids": torch.tensor([taxonomy.index_of(BONE), 0, 1, 2, 3]),
             "top_conf": np.array([0.96, 0.01, 0.01, 0.01, 0.01], dtype=np.float32)})
    assert torch.allclose(torch.as_tensor(out["ct"]), torch.full((1, 2, 2, 2), 0.5))
    assert torch.equal(out["pet"], ct)  # untouched
    low = t({"ct": ct, "top_ids": [BONE], "top_conf": [0.5]})
    assert torch.allclose(torch.as_tensor(low["ct"]), torch.ones(1, 2, 2, 2))  # soft tissue: 800 HU clipped to 1
    with pytest.raises(KeyError, match="top_conf"):
        t({"ct": ct, "top_ids": [BONE]})


def test_pet_normalisation_fixed_suv_range():
    suv = np.array([-1.0, 0.0, 7.5, 15.0, 30.0], dtype=np.float32)
    expected = [0.0, 0.0, 0.5, 1.0, 1.0]
    assert _np(NormalizePET(15.0)(suv)).tolist() == pytest.approx(expected)
    assert _np(NormalizePETd("pet", Settings().pet_suv_max)({"pet": suv})["pet"]).tolist() == pytest.approx(expected)
    with pytest.raises(ValueError):
        NormalizePET(0.0)


def test_batch_rule_matches_the_transform():
    g = torch.Generator().manual_seed(0)
    ct = torch.rand(64, 1, 3, 3, 3, generator=g) * 4000 - 1500
    top1 = torch.randint(0, len(taxonomy.locations()), (64,), generator=g)
    conf = torch.tensor([0.95, 0.9499, 1.0, 0.2] * 16, dtype=torch.float32)
    for enabled in (True, False):
        batch = dynamic_window_batch(ct, top1, conf, THR, enabled)
        one = DynamicWindow(THR, enabled)
        for i in range(64):
            assert torch.allclose(batch[i], torch.as_tensor(one(ct[i], top1[i], conf[i])), atol=1e-6)


def test_bad_inputs_are_named():
    with pytest.raises(KeyError, match="nowhere"):
        location_of("nowhere")
    with pytest.raises(IndexError):
        location_of(len(taxonomy.locations()))
    with pytest.raises(ValueError):
        DynamicWindow(1.5)
    assert top1_reaches(0.95, 0.95) and not top1_reaches(0.95, 0.95, strict=True)
