import numpy as np

from data_contracts import segmentation
from data_contracts.geometry import Geometry
from tasks.landmarks import Landmarks
from tasks.realism import position

LAB = segmentation.label_of()


def _marks(z_lo_index: int, nz: int, arms_up: bool) -> Landmarks:
    """A 1-D-ish body: skull at the top, femurs at the bottom, z index = mm (1 mm slices)."""
    geom = Geometry((nz, 8, 8), (1.0, 1.0, 1.0), (0.0, 0.0, float(z_lo_index)), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    a = np.zeros(geom.shape, np.uint16)

    def put(name, z0, z1):  # in mm (absolute)
        a[max(0, z0 - z_lo_index):max(0, z1 - z_lo_index), 2:4, 2:4] = LAB[name]

    put("skull", 160, 190)
    put("vertebrae_C1", 150, 155)
    put("clavicula_left", 120, 123)
    put("humerus_left", 130, 150) if arms_up else put("humerus_left", 80, 115)
    put("femur_left", 0, 40)
    return Landmarks.from_labels(a, geom)


def test_scan_range_and_arms_from_landmarks():
    whole = _marks(-20, 230, arms_up=False)  # below the femurs to above the skull
    assert (position.scan_top(whole), position.scan_bottom(whole), position.arms(whole)) == \
        ("vertex", "knee_or_below", "down")
    cut = _marks(20, 150, arms_up=True)  # mid-thigh to inside the skull
    assert (position.scan_top(cut), position.scan_bottom(cut), position.arms(cut)) == \
        ("skull_base", "mid_thigh", "up")


def test_fraction_spread_and_level_rule():
    rigid = [{"T1": 0.30, "T2": 0.32, "T3": 0.34} for _ in range(5)]
    sd, gap = position.fraction_spread(rigid)
    assert sd == 0.0 and abs(gap - 0.02) < 1e-9
    assert position.level_rule_lopo(rigid) == (1.0, 15)
    rng = np.random.default_rng(0)
    loose = [{lv: f + rng.normal(0, 0.05) for lv, f in p.items()} for p in rigid * 4]
    assert position.fraction_spread(loose)[0] > 0.03
    assert position.level_rule_lopo(loose)[0] < 0.7
