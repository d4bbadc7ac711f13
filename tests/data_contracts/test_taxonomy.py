import re

import pytest

from data_contracts import anatomy, taxonomy
from data_contracts.taxonomy import Laterality, System, WindowGroup


def test_about_130_categories_with_unique_ids_and_names():
    locs = taxonomy.locations()
    assert 120 <= len(locs) <= 140
    assert len({loc.id for loc in locs}) == len(locs)
    assert len({loc.name.lower() for loc in locs}) == len(locs)
    assert all(re.fullmatch(r"[a-z0-9_]+", loc.id) for loc in locs)


@pytest.mark.parametrize(
    "ids",
    [
        [f"ln_cervical_{lv}_{s}" for lv in ("i", "ii", "iii", "iv", "v", "vi") for s in "lr"],
        ["ln_mediastinal_2r", "ln_mediastinal_2l", "ln_mediastinal_4r", "ln_mediastinal_4l", "ln_mediastinal_7"],
        ["ln_supraclavicular_l", "ln_axillary_r", "ln_hilar_l", "ln_retroperitoneal_paraaortic", "ln_mesenteric",
         "ln_common_iliac_r", "ln_external_iliac_l", "ln_inguinal_r"],
        ["lung_rul", "lung_rml", "lung_rll", "lung_lul", "lung_lll"],
        [f"vertebra_{p}{i}" for p, n in (("c", 7), ("t", 12), ("l", 5)) for i in range(1, n + 1)] + ["sacrum"],
        [f"rib_{i}_{s}" for i in range(1, 13) for s in "lr"],
        [f"liver_s{i}" for i in range(1, 9)],
        ["spleen", "pancreas", "kidney_l", "kidney_r", "adrenal_l", "adrenal_r", "prostate", "nasopharynx",
         "thyroid", "breast_l", "breast_r", "femur_l", "ilium_r"],
    ],
)
def test_required_coverage(ids):
    for i in ids:
        taxonomy.get(i)


def test_every_category_has_a_structure_with_a_label_and_a_window():
    labels = anatomy.label_of()
    for loc in taxonomy.locations():
        assert loc.structures, loc.id
        for s in loc.structures:
            assert s in labels, (loc.id, s)
        assert loc.window in taxonomy.WINDOWS
    assert anatomy.label_location()[labels["vertebra_T7"]] == "vertebra_t7"


def test_window_groups_follow_the_system():
    for loc in taxonomy.locations():
        expected = {System.lung: WindowGroup.lung, System.bone: WindowGroup.bone}.get(loc.system, WindowGroup.soft_tissue)
        assert loc.window is expected, loc.id


def test_paper_window_presets():
    assert taxonomy.window_for("lung_rul") == taxonomy.CTWindow(-600, 1500)
    assert taxonomy.window_for("vertebra_t7") == taxonomy.CTWindow(800, 2600)
    assert taxonomy.window_for("liver_s7") == taxonomy.CTWindow(40, 350)
    assert taxonomy.CTWindow(40, 350).low == -135 and taxonomy.CTWindow(40, 350).high == 215


def test_lateral_pairs_and_synonyms():
    r, l = taxonomy.get("rib_7_r"), taxonomy.get("rib_7_l")
    assert (r.laterality, l.laterality) == (Laterality.right, Laterality.left)
    assert "7th rib" in r.stems and "7th rib" in l.stems
    assert "right 7th rib" == r.name and "7th right rib" in r.synonyms
    assert "RUL" in taxonomy.get("lung_rul").synonyms
    assert "T7" in taxonomy.get("vertebra_t7").synonyms
    assert "segment VII" in taxonomy.get("liver_s7").synonyms
    # no phrase names two different categories, except the documented context-dependent ones
    owners: dict[str, set[str]] = {}
    for loc in taxonomy.locations():
        for term in loc.terms:
            owners.setdefault(term.lower(), set()).add(loc.id)
    shared = {term for term, ids in owners.items() if len(ids) > 1}
    assert shared == set(taxonomy.AMBIGUOUS_TERMS)
    assert owners["s1"] == {"sacrum", "liver_s1"}


def test_class_index_is_stable_order():
    locs = taxonomy.locations()
    assert all(taxonomy.index_of(loc.id) == i for i, loc in enumerate(locs))


def test_mirror_is_the_same_structure_on_the_other_side():
    got = [taxonomy.mirror(taxonomy.get(i)) for i in ("rib_7_r", "ln_cervical_ii_l", "lung_rul", "lung_lll", "liver")]
    assert got == ["rib_7_l", "ln_cervical_ii_r", "lung_lul", "lung_rll", None]
