"""The rules extractor's reading of real-prose clause structure: negation scope and negative statements,
relations (a place named as a landmark), coreference (a lesion told again, or introduced anew), side words in
lists, other-site clauses and SUV values said after the lesion.

Every sentence here was written for these tests, in the manner of published case reports and figure legends;
none is a dev-set excerpt (``tests/data/real_reports``).
"""

from __future__ import annotations

import pytest

from tasks.structure.rules import extract


def _locations(text: str) -> list[str]:
    return sorted(f.location_id for f in extract(text).findings)


def _negatives(text: str) -> set:
    return {n.location_id for n in extract(text).negatives}


# ------------------------------------------------------------------------------------------ negatives
@pytest.mark.parametrize(("text", "expected"), [
    ("No nodal disease was detected.", {"lymph_nodes"}),
    ("There were no osseous metastases.", {"skeleton"}),
    ("No evidence of distant metastatic disease or metastasis within the abdomen or pelvis.",
     {None, "region_abdomen", "region_pelvis"}),
    ("There was no other pathological finding in the remaining part of the body.", {None}),
    ("No FDG PET or CT evidence for locoregional or distant metastatic disease.", {None}),
    ("No hypermetabolic lymph nodes are seen below the hemidiaphragm.", {"ln_infradiaphragmatic"}),
    ("The right axilla is negative.", {"ln_axillary_r"}),
])
def test_negative_statements_name_what_they_deny(text, expected):
    assert _negatives(text) == expected
    assert extract(text).findings == ()


def test_extra_prefix_is_outside_the_place():
    text = "PET showed intense uptake in bilateral adrenal nodules but no extra-adrenal FDG avid disease."
    report = extract(text)
    assert sorted(f.location_id for f in report.findings) == ["adrenal_l", "adrenal_r"]
    assert {n.location_id for n in report.negatives} == {None}


def test_a_denied_effusion_is_a_negative_and_a_stated_one_no_lesion():
    text = "There is avid right pleural thickening, however no pleural effusion."
    assert _locations(text) == ["pleura_r"]
    assert _negatives(text) & {"pleura", "pleura_r"}
    assert _locations("Small left pleural effusion. Intense uptake in the right lower lobe mass.") == ["lung_rll"]


def test_the_surgical_bed_is_the_bed_of_the_organ_removed():
    text = "Status post radical prostatectomy. Focal PSMA uptake in the surgical bed, SUVmax 5.4."
    assert _locations(text) == ["prostate_bed"]
    assert _negatives("Status post prostatectomy, without PSMA avid recurrence in the surgical bed.") == {
        "prostate_bed"}
    assert _locations("Focal uptake in the surgical bed, SUVmax 5.4.") == []  # which organ's bed is not said


def test_a_pathological_finding_is_not_a_pathology_report():
    assert _negatives("No other pathological uptake was seen.") == {None}


# ------------------------------------------------------------------------------------------ relations
def test_a_nodal_subject_keeps_the_nodal_landmark_only():
    text = ("There is an FDG-avid mass in the right lower lobe. The tumour and associated lymphadenopathy extend "
            "to the right hilar region, encasing the right upper lobe and middle lobe bronchi.")
    assert _locations(text) == ["ln_hilar_r", "lung_rll"]


def test_the_extent_of_a_known_lesion_adds_no_lesion():
    text = "There is an avid mass in the left lower lobe, SUVmax 9.0. Posteriorly, the mass abuts the left pleura."
    assert _locations(text) == ["lung_lll"]


def test_emphasis_inside_a_finding_is_no_second_lesion():
    assert _locations("Diffuse increased marrow activity, especially involving the thoracic spine.") == [
        "bone_marrow"]


# ------------------------------------------------------------------------------------------ coreference
def test_two_introductions_at_one_place_are_two_lesions():
    text = ("There is an avid cavitating mass in the right lower lobe. "
            "There are also small nodules in the right lower lobe, likely infectious.")
    assert _locations(text) == ["lung_rll", "lung_rll"]


def test_a_definite_noun_phrase_restates_the_lesion():
    text = ("Intense uptake in a left level II node. "
            "The level II nodal focus corresponds to an 8-mm node on the CT images.")
    assert _locations(text) == ["ln_cervical_ii_l"]


def test_the_lesion_placed_again_in_the_next_sentence_is_one_lesion():
    text = ("PET shows intense uptake in the right supraglottic region. "
            "Fused images localize the lesion at the base of the tongue.")
    assert len(extract(text).findings) == 1


def test_the_lesion_of_another_exam_taken_up_by_the_pet_sentence():
    text = "A CT scan revealed a 2 cm lesion in the left upper lobe.\n\nOn PET the lesion was intensely avid, SUVmax 7.5."
    report = extract(text)
    assert [(f.location_id, f.suv_max) for f in report.findings] == [("lung_lul", 7.5)]


def test_a_coarse_word_for_a_place_told_before_is_that_lesion():
    text = ("Increased uptake in the right perihilar lymph nodes. "
            "Findings in keeping with lung cancer and associated hilar adenopathy.")
    assert _locations(text) == ["ln_hilar_r"]


def test_two_parts_of_one_place_are_two_lesions():
    assert _locations("Intense uptake in the anterior right pleura and posterior right pleura.") == [
        "pleura_r", "pleura_r"]


def test_a_history_paragraph_stays_history():
    text = ("58 year old woman status post resection of colon cancer. New lesion in the liver on MRI. "
            "PET/CT requested for restaging.\n\n"
            "There is an avid liver lesion in segment VI with SUVmax 6.1.")
    report = extract(text)
    assert [(f.location_id, f.suv_max) for f in report.findings] == [("liver_s6", 6.1)]


# ------------------------------------------------------------------------------------------ sides, others, SUV
def test_a_side_word_does_not_carry_past_a_midline_item_or_onto_another_kind_of_place():
    assert "ln_hilar" in _locations("Avid left paratracheal, prevascular, subcarinal and hilar lymph nodes.")
    assert _locations("Uptake in the left breast mass and axillary lymph nodes.") == ["breast_l", "ln_axillary"]
    assert _locations("Uptake in left axillary and supraclavicular lymph nodes.") == [
        "ln_axillary_l", "ln_supraclavicular_l"]


def test_an_other_site_clause_beside_a_mention():
    report = extract("Moderate activity in the left anterior sulcus is present, as is a small focus in the left hilum.")
    got = sorted((f.location_id, f.other_site.words if f.other_site else None) for f in report.findings)
    assert got == [("ln_hilar_l", None), ("region_chest", "left anterior sulcus")]
    assert _locations("Hypermetabolic activity in the epigastrium compatible with a tumour of the pancreatic head.") == [
        "pancreas"]


def _other_site_values(text: str) -> list[tuple]:
    return [(f.other_site.words, f.suv_max, f.ct_finding.value, f.pet_finding.grade.value)
            for f in extract(text).findings if f.other_site is not None]


def test_an_other_site_takes_only_the_values_of_its_own_words():
    # the hilum's SUVmax, said after the hilum, is not the sulcus's
    assert _other_site_values("Moderate activity in the left anterior sulcus is present, as is a small focus in the "
                              "left hilum, SUVmax 5.2.") == [("left anterior sulcus", None, "no_ct_correlate", "moderate")]
    # nor the SUVmax and CT finding of a mass told before it
    assert _other_site_values("Intense uptake in the right lower lobe mass, SUVmax 9.1, and a focus of uptake in the "
                              "left anterior sulcus.") == [("left anterior sulcus", None, "no_ct_correlate", "moderate")]
    # its own value after a comma is its own, alone or before a mention
    assert _other_site_values("Focal activity in the right anterior sulcus, SUVmax 4.1.") == [
        ("right anterior sulcus", 4.1, "no_ct_correlate", "moderate")]
    assert _other_site_values("Intense uptake in the left anterior sulcus with SUVmax 11.3, and a focus of uptake in "
                              "the right hilum, SUVmax 5.2.") == [("left anterior sulcus", 11.3, "no_ct_correlate", "intense")]


def test_every_other_site_of_a_sentence_with_no_hierarchy_place():
    assert _other_site_values("Moderate activity in the left anterior sulcus is present, as is a focus of uptake in the "
                              "right anterior sulcus, SUVmax 3.4.") == [
        ("left anterior sulcus", None, "no_ct_correlate", "moderate"),
        ("right anterior sulcus", 3.4, "no_ct_correlate", "mild")]
    assert _negatives("No evidence of distant metastatic disease.") == {None}


def test_a_lymph_node_with_uptake_and_no_place():
    assert _locations("Apart from 1 lymph node with intense uptake, avid subcutaneous lesions were seen.") == [
        "lymph_nodes", "soft_tissue_subcutaneous"]


def test_several_values_after_a_lesion_give_it_the_highest():
    report = extract("A nodule in the right upper lobe was FDG avid. SUVmax was 3.1 and 2.4 in its two components.")
    assert [(f.location_id, f.suv_max) for f in report.findings] == [("lung_rul", 3.1)]


def test_another_exam_s_lesions_are_read_only_for_a_pet_sentence_that_refers_back(monkeypatch):
    from tasks.structure import rules

    read = []
    real = rules._findings
    monkeypatch.setattr(rules, "_findings", lambda sentence, *a: read.append(sentence.text) or real(sentence, *a))
    history = "A chest CT showed a 5-cm left hilar mass and enlarged mediastinal nodes."
    assert _locations(f"{history} PET showed intense FDG uptake in the right adrenal gland.") == ["adrenal_r"]
    assert history not in read  # no "the lesion": the exam's lesions are never read
    read.clear()
    # the sides it names carry on all the same: "the hilar mass" is the left one
    assert _locations(f"{history} Two weeks later, PET showed intense FDG uptake throughout the hilar mass.") == [
        "ln_hilar_l"]
    assert history in read


def test_the_nodule_is_the_lesion_told_not_the_nodes_beside_it():
    text = ("A chest CT scan revealed a nodule in the right upper lobe and enlarged right hilar lymph nodes. "
            "FDG PET/CT showed faint uptake in the nodule (SUVmax 2.1) and no uptake in the lymph nodes.")
    report = extract(text)
    assert [(f.location_id, f.suv_max) for f in report.findings] == [("lung_rul", 2.1)]
    assert "lymph_nodes" in {n.location_id for n in report.negatives}


def test_a_lower_case_panel_label_starts_a_sentence():
    text = ("a CT shows two small nodes at left level II, suggesting the absence of nodal spread. "
            "b FDG PET shows moderate uptake (SUVmax 3.7) in the two left level II nodes.")
    assert [(f.location_id, f.suv_max) for f in extract(text).findings] == [("ln_cervical_ii_l", 3.7)]


def test_a_negation_in_a_subordinate_clause_stops_at_its_comma():
    text = ("Although no uptake was detected on the first scan, the second PET/CT revealed a lesion with intense "
            "uptake in the urinary bladder wall.")
    assert _locations(text) == ["bladder"]
    text = "Even though the lung abscess is no longer FDG avid, the regional lymph nodes still show FDG uptake."
    assert _locations(text) == []
    assert "lung" in _negatives(text)


def test_hyphenated_nodal_stations():
    assert _locations("Increased uptake in multiple supra-clavicular lymph nodes.") == ["ln_supraclavicular"]


def test_a_non_avid_lesion_explained_as_benign_is_no_finding():
    text = "A left adrenal nodule of 12 mm is non avid, in keeping with an adenoma. Intense uptake in a right adrenal nodule."
    assert _locations(text) == ["adrenal_r"]
    assert _locations("A right middle lobe nodule is non avid, malignancy or granuloma.") == ["lung_rml"]


def test_apex_in_a_prostate_sentence():
    assert _locations("Intense PSMA uptake in the left apex of the prostate gland, SUVmax 12.") == ["prostate"]
    assert _locations("PSMA PET/CT for staging of prostate cancer (Gleason 4 + 3, right apex).") == []
    assert _locations("Intense FDG uptake in a nodule of the left apex, SUVmax 6.") == ["lung_lul"]


def test_the_lesion_as_it_is_now_takes_the_current_value():
    text = ("A solitary pulmonary nodule in the right lower lobe showed minimal FDG uptake, SUVmax 1.6. "
            "The nodule was re-examined by FDG PET/CT six months later. The nodule was now FDG avid. "
            "The max SUV was 9.4.")
    assert [(f.location_id, f.suv_max) for f in extract(text).findings] == [("lung_rll", 9.4)]


def test_was_as_a_verb_is_no_prior_value():
    report = extract("There is a small lesion in the left lower lobe. The activity of this lesion was SUVmax 2.2.")
    assert [f.suv_max for f in report.findings] == [2.2]
    assert [f.suv_max for f in extract("Left hilar node, SUVmax 8.2 (was 5.1).").findings] == [8.2]


def test_a_denied_compartment_denies_its_region():
    negatives = _negatives("Extensive left pleural uptake, but no evidence of disease in the right hemithorax.")
    assert "region_chest" in negatives


def test_these_lesions_take_up_every_lesion_the_history_told():
    text = ("The patient presented with a liver mass and multiple bone lesions involving the ribs and the left femur. "
            "These bone lesions were first detected on a PET scan.")
    assert _locations(text) == ["femur_l", "rib"]


def test_a_node_beside_a_vessel_lies_at_the_vessel_s_station():
    text = "Intense PSMA uptake in a 4 mm lymph node dorsal of the right external iliac vein."
    assert _locations(text) == ["ln_external_iliac_r"]
    assert _locations("A hypermetabolic mass in the right lower lobe abuts the right hilar vessels.") == ["lung_rll"]


def test_an_absence_said_of_a_place_is_not_a_whole_body_negative():
    assert _negatives("The liver is free of metastases.") == {"liver"}
    assert None in _negatives("Avid nodes in the neck with no distant metastases.")


def test_liver_segment_lists():
    report = extract("Two hypermetabolic lesions in liver segments 5 and 8, SUVmax 6.2 and 4.1.")
    assert [(f.location_id, f.suv_max) for f in report.findings] == [("liver_s5", 6.2), ("liver_s8", 4.1)]
    assert _locations("A hypodense liver lesion at the junction of segments V and VIII with intense uptake.") == [
        "liver_s5"]
    assert _locations("Avid lung nodules in segments 6 and 10 of the right lower lobe.") == ["lung_rll"]


def test_the_lobe_named_before_with_its_side_is_the_one_meant():
    text = ("A right upper lobe nodule is FDG avid, SUVmax 6.2. There is also uptake in a left axillary node, and the "
            "upper lobe focus measures 9 mm.")
    assert sorted(set(_locations(text))) == ["ln_axillary_l", "lung_rul"]


def test_the_metastasis_at_a_place_named_before_with_its_side():
    text = ("Intense uptake in a right hilar node, SUVmax 6.2. Mild uptake in the left adrenal gland. The hilar "
            "metastasis shows SUVmax 8.0.")
    assert [(f.location_id, f.suv_max) for f in extract(text).findings] == [
        ("ln_hilar_r", 6.2), ("adrenal_l", None), ("ln_hilar_r", 8.0)]


def test_a_negation_in_a_because_clause_stops_at_its_comma():
    text = "Because no uptake was seen in the liver on the prior scan, the new splenic lesion with SUVmax 5.2 is suspicious."
    assert [(f.location_id, f.suv_max) for f in extract(text).findings] == [("spleen", 5.2)]
    assert "liver" in _negatives(text)


def test_a_list_token_that_is_no_numeral_of_ours_is_skipped():
    assert _locations("Avid liver lesions in segments XX and II.") == ["liver_s2"]
    assert _locations("Avid liver lesions in segments IVb and VII.") == ["liver_s4", "liver_s7"]
    assert _locations("Avid left neck nodes at levels II and IIV.") == ["ln_cervical_l"]
    assert _locations("Avid left neck nodes at levels IIV and II.") == ["ln_cervical_l"]


def test_a_second_lesion_at_a_place_named_again_in_one_sentence():
    text = ("PET showed an avid band in the omental region, and multiple nodular masses at the omentum with "
            "increased metabolic activity.")
    assert _locations(text) == ["peritoneum", "peritoneum"]
    text = "There is an intensely avid left thyroid nodule, which may reflect a hyperfunctioning thyroid nodule."
    assert _locations(text) == ["thyroid"]


def test_a_mesenteric_mass_is_peritoneal_and_a_mesenteric_node_nodal():
    assert _locations("Intense uptake in the mesenteric mass.") == ["peritoneum"]
    assert _locations("Intense uptake in a mesenteric lymph node.") == ["ln_mesenteric"]


def test_an_impression_naming_its_lesions_again_with_definite_phrases():
    text = ("IMPRESSION:\nThe lesion in the head of the pancreas is the primary tumour, with multiple liver metastases. "
            "The study defined the primary pancreatic tumour and the extent of the liver metastases.")
    assert _locations(text) == ["liver", "pancreas"]
