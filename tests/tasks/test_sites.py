import numpy as np

from data_contracts import segmentation
from data_contracts.geometry import Geometry
from tasks.landmarks import Landmarks, canonical_class, canonical_lut
from tasks.sites import lesion_sites

LAB = segmentation.label_of()


def test_canonical_names_fold_onto_the_class_set_and_stations_vanish():
    assert canonical_class("vertebra_T7") == "vertebrae_T7"
    assert canonical_class("liver_segment_3") == "liver" and canonical_class("pubis_left") == "hip_left"
    assert canonical_class("ln_mediastinal_7") is None and canonical_class("pleura_right") is None
    lut = canonical_lut({"1": "liver_segment_2", "2": "ln_axillary_left"})
    assert list(lut) == [0, LAB["liver"], 0]
    assert not any(n.startswith("ln_") for n in segmentation.CLASSES)


def _marks() -> Landmarks:
    """A torso on 2 mm voxels: vertebrae along z at x = 0, lungs either side, a liver low on the right."""
    geom = Geometry((200, 100, 100), (2.0, 2.0, 2.0), (-100.0, -100.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    a = np.zeros(geom.shape, np.uint16)
    levels = [f"C{i}" for i in range(1, 8)] + [f"T{i}" for i in range(1, 13)] + [f"L{i}" for i in range(1, 6)]
    for i, lv in enumerate(levels):  # C1 at the top (z index 190), 8 slices each
        z1 = 198 - 8 * i
        a[z1 - 6:z1, 55:62, 47:53] = LAB[f"vertebrae_{lv}"]
    a[60:140, 30:75, 10:40] = LAB["lung_upper_lobe_right"]  # patient's right = -x = low index
    a[60:140, 30:75, 60:90] = LAB["lung_upper_lobe_left"]
    a[30:58, 30:70, 10:45] = LAB["liver"]
    return Landmarks.from_labels(a, geom)


def test_inside_a_class_gives_its_sites_and_outside_gives_a_position_site():
    m = _marks()
    assert lesion_sites((0, 17, 2 * 150 + 0), {"vertebrae_T1": 0.9}, m) == ("vertebra_t1",)
    liver = lesion_sites((-60, 0, 2 * 45), {"liver": 1.0}, m)
    assert sorted(liver) == [f"liver_s{i}" for i in range(1, 9)]
    assert lesion_sites((0, 17, 300), {"vertebrae_T1": 0.3}, m) != ("vertebra_t1",)  # mostly outside it
    axilla = lesion_sites((-95, -10, 200), {}, m)  # lateral of the right lung, chest level
    assert axilla == ("ln_axillary_r",)
    neck = lesion_sites((30, 0, 2 * 180), {}, m)  # left, anterior, below C3
    assert neck[0].startswith("ln_cervical_") and neck[0].endswith("_l")
