"""Localization and CT-finding accuracy by word matching with the taxonomy's and findings' synonyms."""

import pytest

from data_contracts import taxonomy
from data_contracts.caption import caption_text
from data_contracts.findings import CTFinding, Tracer, UptakeGrade, ct_findings_for
from data_contracts.records import PetFinding
from tasks.evaluate.matching import (
    ct_finding_correct,
    ct_finding_mentions,
    location_correct,
    location_mentions,
    normalize,
)


@pytest.mark.parametrize("caption, truth, expected", [
    ("R7 rib, osteolytic destruction", "rib_7_r", True),
    ("right 7th rib, osteolytic destruction", "rib_7_r", True),
    ("left 7th rib, osteolytic destruction", "rib_7_r", False),
    ("L7 rib lesion", "rib_7_r", False),
    ("7th rib on the right, sclerotic", "rib_7_r", True),  # stem + side word
    ("7th rib, sclerotic", "rib_7_r", False),  # no side: ambiguous
    ("Th7 vertebral body with lytic change", "vertebra_t7", True),
    ("t7 vertebral body , osteolytic destruction", "vertebra_t7", True),  # PTB-tokenized form
    ("T8 vertebral body, osteolytic destruction", "vertebra_t7", False),
    ("Couinaud segment VII hypodense lesion", "liver_s7", True),
    ("S1, lytic", "sacrum", False),  # S1: sacrum or liver segment I
    ("liver S1, hypodense", "liver_s1", True),
    ("no location words at all", "spleen", False),
])
def test_location_hand_cases(caption, truth, expected):
    assert location_correct(caption, truth) is expected


@pytest.mark.parametrize("caption, truth, expected", [
    ("left axillary lymph node, non-enlarged lymph node with mild FDG uptake", "non_enlarged_lymph_node", True),
    ("left axillary lymph node, non-enlarged lymph node with mild FDG uptake", "enlarged_lymph_node", False),
    ("left axillary lymph node, enlarged lymph node with mild FDG uptake", "enlarged_lymph_node", True),
    ("right upper lobe , ground glass opacity with increased fdg uptake", "ground_glass_opacity", True),
    ("right upper lobe, GGO", "ground_glass_opacity", True),
    ("right upper lobe, solid nodule", "ground_glass_opacity", False),
    ("T7 vertebral body, sclerotic focus", "osteoblastic", True),
    ("T7 vertebral body, mixed lytic and sclerotic", "mixed_bone_lesion", True),
    ("T7 vertebral body, increased FDG uptake without CT correlate", "no_ct_correlate", True),
    ("T7 vertebral body with increased FDG uptake", "osteolytic", False),
])
def test_ct_finding_hand_cases(caption, truth, expected):
    assert ct_finding_correct(caption, truth) is expected


def test_every_canonical_caption_is_matched_to_its_own_location_and_finding():
    """All 134 locations x their CT findings x grades: the reference caption scores 100 % on both."""
    n = 0
    for loc in taxonomy.locations():
        for finding in ct_findings_for(loc.system):
            text = caption_text(loc.id, finding, PetFinding(tracer=Tracer.fdg, grade=UptakeGrade.moderate))
            assert location_correct(text, loc.id), text
            assert ct_finding_correct(text, finding), text
            n += 1
    assert n > 300


def test_every_unambiguous_synonym_names_its_location():
    seen: dict[str, set[str]] = {}
    for loc in taxonomy.locations():
        for term in loc.terms:
            seen.setdefault(normalize(term), set()).add(loc.id)
    for loc in taxonomy.locations():
        for term in loc.terms:
            if len(seen[normalize(term)]) == 1:
                assert location_mentions(term) == [frozenset({loc.id})], term


def test_mentions_in_reading_order_and_unknown_ids_raise():
    assert location_mentions("left 7th rib and T7 vertebral body") == [frozenset({"rib_7_l"}),
                                                                       frozenset({"vertebra_t7"})]
    assert ct_finding_mentions("lytic then sclerotic") == [frozenset({"osteolytic"}), frozenset({"osteoblastic"})]
    with pytest.raises(KeyError):
        location_correct("x", "no_such_location")
    with pytest.raises(ValueError):
        ct_finding_correct("x", "no_such_finding")
    assert CTFinding("osteolytic")


def test_location_correct_at_the_stated_level():
    from tasks.evaluate.matching import location_correct_at_level

    caption = "subcarinal lymph node (station 7), enlarged lymph node with increased FDG uptake"
    assert location_correct_at_level(caption, "ln_mediastinal")  # any mediastinal station
    assert location_correct_at_level(caption, "ln_mediastinal_7")
    assert not location_correct_at_level(caption, "ln_mediastinal_4r")
    assert not location_correct_at_level(caption, "ln_hilar")
    assert not location_correct(caption, "ln_mediastinal")  # exact-leaf accuracy stays strict
    assert location_correct_at_level("right 7th rib, osteolytic destruction", "rib_r")
    assert not location_correct_at_level("left 7th rib, osteolytic destruction", "rib_r")


def test_stated_locations_come_from_the_findings_table(tmp_path):
    import pandas as pd

    from data_contracts.records import StructuredFinding
    from data_contracts.settings import Settings
    from data_contracts.tables import FINDINGS, FindingRow
    from tasks.evaluate.run import stated_locations

    settings = Settings(home=tmp_path)
    coarse = StructuredFinding(location_id="ln_mediastinal", laterality="unspecified",
                               ct_finding="enlarged_lymph_node",
                               pet_finding=PetFinding(tracer=Tracer.fdg, grade=UptakeGrade.moderate))
    sid = "S00000000000a"
    df = pd.DataFrame({"study_id": [sid, sid], "finding_index": [0, 1],
                       "location_id": ["ln_mediastinal_7", "rib_7_r"]})
    assert stated_locations(df, settings) == ["ln_mediastinal_7", "rib_7_r"]  # no table: the sample's own
    path = settings.table_path("findings")
    path.parent.mkdir(parents=True, exist_ok=True)
    FINDINGS.write(FINDINGS.frame([FindingRow(study_id=sid, finding_index=0, finding=coarse, backend="rules")]), path)
    assert stated_locations(df, settings) == ["ln_mediastinal", "rib_7_r"]
