import pytest

from data_contracts import hierarchy, taxonomy
from data_contracts.findings import CTFinding, Tracer, UptakeGrade
from data_contracts.records import OtherSite, PetFinding, StructuredFinding
from data_contracts.taxonomy import Laterality, Region


def test_lineages_of_the_issue_examples():
    assert hierarchy.lineage("vertebra_t7")[:4] == ("vertebra_t7", "spine_thoracic", "spine", "skeleton")
    assert hierarchy.is_within("ln_mediastinal_4r", "ln_mediastinal")
    assert hierarchy.lineage("ln_mediastinal")[1:4] == ("ln_thoracic", "ln_supradiaphragmatic", "lymph_nodes")
    assert hierarchy.lineage("lung_rul")[:3] == ("lung_rul", "lung_r", "lung")
    assert hierarchy.is_within("ln_external_iliac_l", "ln_iliac_l") and hierarchy.is_within("ln_iliac", "ln_pelvic")
    assert hierarchy.is_within("rib_7_r", "rib_r") and not hierarchy.is_within("rib_7_r", "rib_l")
    assert hierarchy.is_within("ilium_l", "pelvis_bone_l") and hierarchy.is_within("bone_marrow", "skeleton")
    assert not hierarchy.is_within("ln_mediastinal", "ln_mediastinal_7")  # coarse is not inside fine
    assert not hierarchy.is_within("no_such_id", "body")


def test_every_node_reaches_the_root_and_old_ids_keep_their_class_index():
    assert taxonomy.TAXONOMY_VERSION.startswith("2.")
    assert len(taxonomy.locations()) == 134  # the localizer's head is unchanged
    assert taxonomy.index_of("lung_rul") == [l.id for l in taxonomy.locations()].index("lung_rul")
    for node in taxonomy.by_id():
        assert hierarchy.lineage(node)[-1] == "body", node
    assert all(taxonomy.is_class(l.id) and hierarchy.is_leaf(l.id) or l.id == "nasopharynx"
               for l in taxonomy.locations())  # a class is a leaf, but for the nasopharynx's subsites


@pytest.mark.parametrize("node", ["prostate_bed", "tonsil_palatine_r", "tongue_base", "oropharynx", "oral_cavity",
                                  "hypopharynx", "larynx", "parotid_l", "submandibular_gland_r",
                                  "fossa_rosenmuller_l", "adnexa_r", "ovary_l", "uterus", "cervix_uteri", "rectum",
                                  "ln_mesorectal", "ln_obturator_r", "ln_internal_mammary_l", "ln_infraclavicular_r",
                                  "ln_retrocrural", "ln_paratracheal", "soft_tissue_subcutaneous", "muscle",
                                  "bronchus_r", "peritoneum", "brain", "small_bowel", "gallbladder",
                                  "seminal_vesicle", "testis_l", "penis"])
def test_leaves_real_reports_need(node):
    taxonomy.get(node)
    assert not taxonomy.is_class(node)


def test_localizer_class_and_linking_rule():
    assert hierarchy.localizer_class("fossa_rosenmuller_r") == "nasopharynx"
    assert hierarchy.localizer_class("prostate_bed") is None
    assert hierarchy.localizer_class("ln_mediastinal") is None
    assert hierarchy.can_link("ln_mediastinal", "ln_mediastinal_7")
    assert hierarchy.can_link("fossa_rosenmuller_r", "nasopharynx")
    assert not hierarchy.can_link("ln_mediastinal", "ln_hilar_r")
    assert hierarchy.common_ancestor(["ln_cervical_ii_r", "ln_cervical_ii_l"]) == "ln_cervical"


def _finding(loc, lat, ct=CTFinding.no_ct_correlate, other=None, tracer=Tracer.fdg):
    return StructuredFinding(location_id=loc, laterality=lat, ct_finding=ct, other_site=other,
                             pet_finding=PetFinding(tracer=tracer, grade=UptakeGrade.intense), suv_max=12.0)


def test_coarse_and_other_site_findings_round_trip_and_validate():
    coarse = _finding("ln_mediastinal", Laterality.unspecified, CTFinding.enlarged_lymph_node, tracer=None)
    assert StructuredFinding.from_json(coarse.to_json()) == coarse
    assert coarse.caption == "mediastinal lymph node, enlarged lymph node with intensely increased uptake"
    other = _finding("region_chest", Laterality.unspecified, CTFinding.mass,
                     OtherSite(words="pericardial recess", region=Region.chest))
    assert StructuredFinding.from_json(other.to_json()) == other
    assert other.caption == "pericardial recess, soft-tissue mass with intensely increased FDG uptake"
    with pytest.raises(ValueError, match="other_site"):
        _finding("region_chest", Laterality.unspecified)  # an open node needs the report's words
    with pytest.raises(ValueError, match="does not match"):
        _finding("region_chest", Laterality.unspecified, other=OtherSite(words="knee", region=Region.extremity))
    with pytest.raises(ValueError, match="only for the open nodes"):
        _finding("liver", Laterality.unspecified, other=OtherSite(words="liver"))
    with pytest.raises(ValueError, match="laterality"):
        _finding("lung_r", Laterality.left)
    with pytest.raises(ValueError, match="cannot occur"):
        _finding("skeleton", Laterality.unspecified, CTFinding.enlarged_lymph_node)
