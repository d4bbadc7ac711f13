import math

from data_contracts import segmentation
from data_contracts.findings import Tracer, UptakeGrade, Vendor
from data_contracts.records import (
    Acquisition,
    Lesion,
    PetFinding,
    StructuredFinding,
    Study,
    TextSpan,
)
from data_contracts.settings import LinkSettings
from tasks.link import caption_samples, equivalent_diameter_mm, link_study, pair_cost

SID = "S00000000000a"
CFG = LinkSettings()
LAB = segmentation.label_of()


def lesion(instance, structure, suv, diameter_mm, x=0.0):
    volume_ml = math.pi / 6 * diameter_mm**3 / 1000
    return Lesion(study_id=SID, instance=instance, bbox=(0, 0, 0, 2, 2, 2), centroid_mm=(x, 0, 0), volume_ml=volume_ml,
                  voxels=10, suv_max=suv, suv_mean=suv / 2, anatomy_label=LAB[structure] if structure else None)


def finding(loc, lat, ct, suv=None, size=None, text="x"):
    return StructuredFinding(location_id=loc, laterality=lat, ct_finding=ct, suv_max=suv, size_mm=size,
                             pet_finding=PetFinding(tracer=Tracer.fdg, grade=UptakeGrade.moderate),
                             span=TextSpan(start=0, end=len(text), text=text))


def test_equivalent_diameter():
    assert abs(equivalent_diameter_mm(lesion(1, None, 5, 20.0)) - 20.0) < 1e-9


def test_links_by_anatomy_suv_and_size_with_distractor_and_maskless_finding():
    lesions = [
        lesion(1, "rib_right_7", 8.0, 15),
        lesion(2, "lung_upper_lobe_right", 3.0, 12),
        lesion(3, None, 6.0, 18),  # a node in fat: its station comes from its position (``sites``)
        lesion(4, "liver", 2.0, 25),  # distractor: the report does not mention it
    ]
    findings = [
        finding("lung_rul", "right", "ground_glass_opacity", suv=3.0, size=14, text="GGO RUL"),
        finding("rib_7_r", "right", "osteolytic", suv=8.1, size=15, text="lytic R7"),
        finding("ln_cervical_ii_l", "left", "enlarged_lymph_node", suv=6.2, size=20, text="L level II"),
        finding("adrenal_l", "left", "mass", suv=9.0, size=30, text="adrenal"),  # segmenter missed it
    ]
    res = link_study(SID, lesions, findings, CFG, sites={3: ("ln_cervical_ii_l",)})
    assert {(p.instance, p.finding_index) for p in res.pairs} == {(1, 1), (2, 0), (3, 2)}
    unmatched = {(u.kind, u.ref, u.reason) for u in res.unmatched}
    assert unmatched == {("lesion", 4, "no_matching_finding"), ("finding", 3, "no_matching_mask")}


def test_near_location_links_but_other_system_never():
    l = lesion(1, "vertebrae_T8", 7.0, 15)
    near = finding("vertebra_t7", "midline", "osteolytic", suv=7.0, size=15)
    other = finding("liver_s7", "midline", "hypodense_lesion", suv=7.0, size=15)
    assert pair_cost(l, near, CFG) == CFG.cost_near_location
    assert pair_cost(l, other, CFG) > CFG.max_cost
    assert [p.finding_index for p in link_study(SID, [l], [other, near], CFG).pairs] == [1]


def test_suv_disagreement_decides_between_two_nodes_at_one_station():
    lesions = [lesion(1, None, 12.0, 20), lesion(2, None, 3.0, 20)]
    findings = [finding("ln_axillary_r", "right", "enlarged_lymph_node", suv=3.1, size=20),
                finding("ln_axillary_r", "right", "enlarged_lymph_node", suv=11.8, size=20)]
    sites = {1: ("ln_axillary_r",), 2: ("ln_axillary_r",)}
    pairs = {(p.instance, p.finding_index) for p in link_study(SID, lesions, findings, CFG, sites=sites).pairs}
    assert pairs == {(1, 1), (2, 0)}


def test_multiple_the_largest_statement_takes_the_other_masks_at_its_location():
    lesions = [lesion(i, "vertebrae_L2", suv, 14) for i, suv in ((1, 9.0), (2, 5.0), (3, 6.5))]
    lesions.append(lesion(4, "vertebrae_L3", 9.0, 14))  # next level: never a member
    findings = [finding("vertebra_l2", "midline", "osteoblastic", suv=9.0, size=14, text="multiple ... largest")]
    res = link_study(SID, lesions, findings, CFG)
    kinds = {p.instance: p.kind for p in res.pairs}
    assert kinds == {1: "hungarian", 2: "group", 3: "group"}
    assert [(u.kind, u.ref) for u in res.unmatched] == [("lesion", 4)]


def test_the_report_decides_among_a_class_s_candidate_sites():
    l = lesion(1, "liver", 6.0, 20)  # the segmenter has one liver; segments come from position or the report
    s6 = finding("liver_s6", "midline", "hypodense_lesion", suv=6.0, size=20)
    assert pair_cost(l, s6, CFG) == CFG.cost_same_location
    assert pair_cost(l, s6, CFG, sites={1: ("liver_s8", "liver_s6")}) == CFG.cost_same_location
    assert pair_cost(l, s6, CFG, sites={1: ("liver_s8",)}) == CFG.cost_near_location


def test_without_label_map_side_decides():
    l = lesion(1, None, 5.0, 15, x=-80.0)  # LPS: negative x is the patient's right
    right = finding("ln_axillary_r", "right", "enlarged_lymph_node", suv=5.0)
    left = finding("ln_axillary_l", "left", "enlarged_lymph_node", suv=5.0)
    assert [p.finding_index for p in link_study(SID, [l], [left, right], CFG, midline_x=0.0).pairs] == [1]


def test_caption_samples_keep_the_chain():
    acq = Acquisition(vendor=Vendor.siemens, tracer=Tracer.fdg, ct_spacing_mm=(1, 1, 2), ct_shape=(10, 10, 10),
                      pet_spacing_mm=(4, 4, 4), pet_shape=(5, 5, 5), injected_dose_mbq=300, uptake_minutes=60,
                      patient_weight_kg=70, source_format="dicom")
    study = Study(patient_id="P00000000000b", study_id=SID, acquisition=acq)
    findings = [finding("rib_7_r", "right", "osteolytic", suv=8.1, size=15, text="lytic R7")]
    res = link_study(SID, [lesion(5, "rib_right_7", 8.0, 15)], findings, CFG)
    (s,) = caption_samples(study, findings, res)
    assert s.sample_id == f"{SID}-005" and s.instance == 5 and s.finding_index == 0
    assert s.caption == "right 7th rib, osteolytic destruction with increased FDG uptake"
    assert s.span.text == "lytic R7" and s.vendor is Vendor.siemens


def test_a_position_derived_station_never_rules_out_another_station():
    l = lesion(1, None, 6.0, 18)
    sites = {1: ("ln_mediastinal_7",)}  # derived from position: uncertain
    assert pair_cost(l, finding("ln_hilar_r", "right", "enlarged_lymph_node"), CFG, sites=sites) == \
        CFG.cost_unknown_location
    assert pair_cost(l, finding("vertebra_t7", "midline", "osteolytic"), CFG, sites=sites) == CFG.cost_other_location
    bone = lesion(2, "vertebrae_T7", 6.0, 18)  # inside a segmented class: a station finding is another site
    assert pair_cost(bone, finding("ln_hilar_r", "right", "enlarged_lymph_node"), CFG) == CFG.cost_other_location


def test_a_station_group_takes_nodes_derived_at_a_near_station_but_never_a_bone():
    lesions = [lesion(1, None, 9.0, 14), lesion(2, None, 6.0, 12), lesion(3, "vertebrae_T4", 6.0, 12)]
    sites = {1: ("ln_mediastinal_2r",), 2: ("ln_mediastinal_4r",)}  # position put node 2 one station off
    findings = [finding("ln_mediastinal_2r", "right", "enlarged_lymph_node", suv=9.0, size=14, text="multiple")]
    kinds = {p.instance: p.kind for p in link_study(SID, lesions, findings, CFG, sites=sites).pairs}
    assert kinds == {1: "hungarian", 2: "group"}
