"""The offline rules extractor on hand-written reports in the styles published PET/CT reports use.

These reports were written for these tests (not by the synthetic generator): numbered findings, hard-wrapped
prose, terse abbreviations, figure captions, impressions, and every SUVmax/size spelling the issue lists.
"""

from __future__ import annotations

import pytest

from data_contracts.findings import CTFinding, Tracer, UptakeGrade
from data_contracts.structured_report import StructuredReport
from tasks.structure.rules import EXTRACTOR_VERSION, extract, report_tracer_of


def _by_location(report: StructuredReport) -> dict:
    out = {}
    for f in report.findings:
        assert f.location_id not in out, f"{f.location_id} extracted twice"
        out[f.location_id] = f
    return out


def _check_spans(text: str, report: StructuredReport) -> None:
    for f in report.findings:
        assert text[f.span.start:f.span.end] == f.span.text


NUMBERED = """\
Patient: Jane Rightley    MRN: 00412345    DOB: 01/02/1960
CLINICAL HISTORY: Right upper lobe mass on CT. Staging.
TECHNIQUE: 352 MBq 18F-FDG i.v., imaging from skull base to mid-thigh after 60 min uptake.
COMPARISON: None.

FINDINGS:
1. Spiculated mass in the right upper lobe measuring 3.4 x 2.8 cm with intense FDG uptake,
   SUVmax 14.2.
2. Enlarged right hilar lymph node (short axis 13 mm), SUVmax 7.1.
3) Subcarinal node, 8 mm, SUVmax 3.6.
4. Lytic lesion in the T7 vertebral body, SUVmax 8.2.
5. No abnormal uptake in the liver, spleen or adrenal glands.

IMPRESSION:
1. FDG-avid RUL mass (SUVmax 14.2), consistent with primary lung cancer.
2. Right hilar and subcarinal nodal metastases.
3. Osseous metastasis T7.
"""


def test_numbered_report_with_sections_and_impression():
    report = extract(NUMBERED)
    _check_spans(NUMBERED, report)
    found = _by_location(report)
    assert set(found) == {"lung_rul", "ln_hilar_r", "ln_mediastinal_7", "vertebra_t7"}  # impression deduplicated
    rul = found["lung_rul"]
    assert (rul.ct_finding, rul.suv_max, rul.size_mm) == (CTFinding.mass, 14.2, 34.0)
    assert rul.pet_finding.tracer is Tracer.fdg and rul.pet_finding.grade is UptakeGrade.intense
    assert rul.span.text.startswith("Spiculated mass") and "\n" in rul.span.text
    hilar = found["ln_hilar_r"]
    assert (hilar.ct_finding, hilar.suv_max, hilar.size_mm) == (CTFinding.enlarged_lymph_node, 7.1, 13.0)
    sub = found["ln_mediastinal_7"]
    assert (sub.ct_finding, sub.suv_max, sub.size_mm) == (CTFinding.non_enlarged_lymph_node, 3.6, 8.0)
    assert sub.pet_finding.grade is UptakeGrade.mild
    t7 = found["vertebra_t7"]
    assert (t7.ct_finding, t7.suv_max, t7.pet_finding.grade) == (CTFinding.osteolytic, 8.2, UptakeGrade.moderate)
    assert report.backend == "rules" and report.extractor_version == EXTRACTOR_VERSION
    assert report.model is None and report.prompt_version is None


WRAPPED = """\
PET/CT FINDINGS

HEAD AND NECK: There is an FDG-avid left level IIa lymph node measuring approx. 1.6 cm
with an SUVmax of 6.3 (Fig. 2). Physiologic uptake in the palatine tonsils. No
other suspicious cervical nodes.

CHEST: A 2.1 x 1.5 cm solid nodule in the left lower lobe demonstrates moderate
uptake, SUV max: 5.4. There is a small ground-glass opacity in the right middle lobe
without significant uptake. Non-enlarged left axillary node with mildly increased uptake,
SUVmax
2.9.

ABDOMEN AND PELVIS: A 2.6 cm hypoattenuating lesion in hepatic segment VII shows
intense uptake (SUVmax 11.8). Normal physiologic activity in the bowel and urinary
bladder.

MUSCULOSKELETAL: Mixed lytic and sclerotic lesion of the left iliac bone, SUVmax
6.7. Degenerative uptake at the L4/5 facet joints.
"""


def test_hard_wrapped_prose():
    report = extract(WRAPPED, Tracer.fdg)
    _check_spans(WRAPPED, report)
    found = _by_location(report)
    assert set(found) == {"ln_cervical_ii_l", "lung_lll", "ln_axillary_l", "liver_s7", "ilium_l"}
    assert (found["ln_cervical_ii_l"].suv_max, found["ln_cervical_ii_l"].size_mm) == (6.3, 16.0)
    assert found["ln_cervical_ii_l"].ct_finding is CTFinding.enlarged_lymph_node  # 16 mm
    lll = found["lung_lll"]
    assert (lll.ct_finding, lll.suv_max, lll.size_mm) == (CTFinding.solid_nodule, 5.4, 21.0)
    ax = found["ln_axillary_l"]
    assert (ax.ct_finding, ax.suv_max, ax.pet_finding.grade) == (CTFinding.non_enlarged_lymph_node, 2.9,
                                                                 UptakeGrade.mild)
    liver = found["liver_s7"]
    assert (liver.ct_finding, liver.suv_max, liver.size_mm) == (CTFinding.hypodense_lesion, 11.8, 26.0)
    assert liver.pet_finding.grade is UptakeGrade.intense
    assert (found["ilium_l"].ct_finding, found["ilium_l"].suv_max) == (CTFinding.mixed_bone_lesion, 6.7)
    # The sentence broken across four lines is one span.
    assert ax.span.text.endswith("SUVmax\n2.9.")


TERSE = """\
PSMA PET/CT (18F-DCFPyL)
- Prostate: intense focal uptake L peripheral zone, SUVmax 18.3
- R EIA LN 11 x 8 mm, SUVmax 9.4
- L int iliac node 6 mm SUV 4.1
- Rt 7th rib sclerotic, SUVmax 6.0
- T12: lytic, SUVmax 12.5
- LUL: no abnormal uptake
"""


def test_terse_abbreviated_list():
    report = extract(TERSE)
    _check_spans(TERSE, report)
    found = _by_location(report)
    assert set(found) == {"prostate", "ln_external_iliac_r", "ln_internal_iliac_l", "rib_7_r", "vertebra_t12"}
    assert all(f.pet_finding.tracer is Tracer.psma for f in report.findings)
    assert (found["prostate"].suv_max, found["prostate"].pet_finding.grade) == (18.3, UptakeGrade.intense)
    eia = found["ln_external_iliac_r"]
    # 11 x 8 mm: long axis 11, short axis 8 -> not enlarged by the 10 mm short-axis rule
    assert (eia.size_mm, eia.suv_max, eia.ct_finding) == (11.0, 9.4, CTFinding.non_enlarged_lymph_node)
    assert found["ln_internal_iliac_l"].suv_max == 4.1
    assert (found["rib_7_r"].ct_finding, found["rib_7_r"].suv_max) == (CTFinding.osteoblastic, 6.0)
    assert (found["vertebra_t12"].ct_finding, found["vertebra_t12"].suv_max) == (CTFinding.osteolytic, 12.5)
    # each list item is its own sentence
    assert found["rib_7_r"].span.text == "Rt 7th rib sclerotic, SUVmax 6.0"


CAPTIONS = """\
Fig. 1. Maximum intensity projection of an 18F-FDG PET/CT shows multiple foci of increased uptake.
Fig. 2. Axial fused PET/CT image demonstrates a lytic lesion in the right ilium (arrow) with intense
FDG uptake (SUVmax 12.6). Figure 3: Coronal fused image shows an enlarged left supraclavicular node
(arrowhead; SUVmax of 9.0), e.g. consistent with nodal metastasis.
Figure 4 (a, b). Focal uptake in the sternum without CT correlate (SUVmax 4.4).
"""


def test_figure_caption_style():
    report = extract(CAPTIONS)
    _check_spans(CAPTIONS, report)
    found = _by_location(report)
    assert set(found) == {"ilium_r", "ln_supraclavicular_l", "sternum"}
    assert (found["ilium_r"].ct_finding, found["ilium_r"].suv_max) == (CTFinding.osteolytic, 12.6)
    assert (found["ln_supraclavicular_l"].ct_finding, found["ln_supraclavicular_l"].suv_max) == (
        CTFinding.enlarged_lymph_node, 9.0)
    assert (found["sternum"].ct_finding, found["sternum"].suv_max) == (CTFinding.no_ct_correlate, 4.4)


IMPRESSION_ONLY = """\
IMPRESSION:
1. Hypermetabolic mass in the left upper lobe (SUVmax 18.2) consistent with primary malignancy.
2. Ipsilateral hilar and AP window nodal metastases.
3. No evidence of distant metastatic disease.
"""


def test_impression_only_report_and_ipsilateral():
    found = _by_location(extract(IMPRESSION_ONLY, Tracer.fdg))
    assert set(found) == {"lung_lul", "ln_hilar_l", "ln_mediastinal_5"}
    assert (found["lung_lul"].ct_finding, found["lung_lul"].suv_max) == (CTFinding.mass, 18.2)


@pytest.mark.parametrize("suv", [
    "SUVmax 8.2", "SUV max: 8.2", "SUVmax=8.2", "SUVmax of 8.2", "SUV(max) 8.2", "maximum SUV of 8.2",
    "max SUV 8.2", "(SUVmax 8.2)", "SUVmax up to 8.2", "SUV max 8.2", "SUVmax: 8.2", "SUV-max 8.2",
    "an SUVmax of 8.2", "SUVmax 8,2", "SUVmax increased from 5.1 to 8.2", "SUVmax 8.2 (previously 5.1)",
    "SUV 8.2",
])
def test_suv_spellings(suv):
    text = f"FDG PET/CT: lytic lesion in the T9 vertebral body, {suv}. Liver SUVmean 2.1."
    (f,) = extract(text).findings
    assert (f.location_id, f.suv_max, f.pet_finding.grade) == ("vertebra_t9", 8.2, UptakeGrade.moderate)


@pytest.mark.parametrize("size, mm", [
    ("21 mm", 21.0), ("2.1 cm", 21.0), ("2.1 x 1.5 cm", 21.0), ("15 x 21 mm", 21.0), ("21 × 15 mm", 21.0),
    ("2.1 by 1.5 cm", 21.0), ("measuring 21 mm", 21.0), ("measuring 2.1 x 1.5 x 1.8 cm", 21.0),
    ("2.1 cm x 15 mm", 21.0), ("approx. 2.1 cm", 21.0), ("21mm", 21.0),
])
def test_size_spellings(size, mm):
    (f,) = extract(f"Hypodense lesion in liver segment VI, {size}, with FDG uptake (SUVmax 5.0).").findings
    assert (f.location_id, f.size_mm) == ("liver_s6", mm)


def test_short_axis_decides_node_enlargement_and_long_axis_is_size():
    text = ("FDG PET. Right axillary lymph node measuring 2.2 x 1.4 cm, SUVmax 6.1. Left axillary lymph node, "
            "short axis 12 mm, SUVmax 4.0. Right inguinal node 14 x 7 mm, SUVmax 3.1.")
    found = _by_location(extract(text))
    assert (found["ln_axillary_r"].ct_finding, found["ln_axillary_r"].size_mm) == (CTFinding.enlarged_lymph_node, 22.0)
    assert (found["ln_axillary_l"].ct_finding, found["ln_axillary_l"].size_mm) == (CTFinding.enlarged_lymph_node, 12.0)
    assert found["ln_inguinal_r"].ct_finding is CTFinding.non_enlarged_lymph_node


@pytest.mark.parametrize("sentence", [
    "No abnormal uptake in the liver segment VII.",
    "No FDG-avid nodes in the left axilla.",
    "There is no evidence of FDG-avid disease in the right lower lobe.",
    "Without evidence of osseous involvement of the sternum.",
    "The right adrenal gland is negative for metastatic disease.",
    "The previously seen lesion in the T7 vertebral body has resolved.",
    "The left axillary node is no longer seen.",
    "Physiological uptake in the stomach, colon and urinary bladder.",
    "The spleen is normal in size without focal uptake.",
    "Uptake in the L4 vertebra is degenerative.",
    "Free of disease in the pancreas.",
    "Comparison: prior CT of the right upper lobe from 2020.",
])
def test_negated_and_normal_statements_are_not_findings(sentence):
    assert extract(f"FDG PET/CT. {sentence}").findings == ()


def test_negation_is_scoped_to_its_clause():
    text = ("FDG PET/CT. No abnormal uptake in the liver; intense uptake in a lytic T10 lesion (SUVmax 10.4). "
            "Intense uptake in the sternum (SUVmax 7.7), but no uptake in the manubrium or T11.")
    found = _by_location(extract(text))
    assert set(found) == {"vertebra_t10", "sternum"}
    assert found["vertebra_t10"].suv_max == 10.4


def test_ct_words_in_a_negated_clause_do_not_describe_the_lesion():
    (f,) = extract("FDG: focal uptake in the L2 vertebra without lytic or sclerotic change, SUVmax 5.6.").findings
    assert (f.location_id, f.ct_finding, f.suv_max) == ("vertebra_l2", CTFinding.no_ct_correlate, 5.6)


def test_bilateral_gives_one_finding_per_side_with_their_own_values():
    text = ("FDG PET/CT. Bilateral level II nodes, SUVmax 5.2 on the right and 4.8 on the left. "
            "Bilateral hilar lymph nodes with mildly increased uptake, SUVmax up to 3.4. "
            "Both axillae show enlarged nodes, right SUVmax 6.6, left SUVmax 4.2.")
    found = _by_location(extract(text))
    assert set(found) == {"ln_cervical_ii_r", "ln_cervical_ii_l", "ln_hilar_r", "ln_hilar_l",
                          "ln_axillary_r", "ln_axillary_l"}
    assert (found["ln_cervical_ii_r"].suv_max, found["ln_cervical_ii_l"].suv_max) == (5.2, 4.8)
    assert found["ln_cervical_ii_r"].laterality.value == "right"
    assert (found["ln_hilar_r"].suv_max, found["ln_hilar_l"].suv_max) == (3.4, 3.4)
    assert (found["ln_axillary_r"].suv_max, found["ln_axillary_l"].suv_max) == (6.6, 4.2)
    assert found["ln_axillary_l"].ct_finding is CTFinding.enlarged_lymph_node


def test_multiple_the_largest_is_one_finding_with_the_largest_values():
    text = ("FDG PET/CT. Multiple lytic lesions in the left ilium, the largest measuring 3.2 cm with SUVmax 11.1. "
            "Several FDG-avid nodules in the right lower lobe measuring up to 9 mm, the largest 1.4 cm, SUVmax 6.6. "
            "Intensely FDG-avid right level II and III lymph nodes, the largest at level II measuring "
            "2.4 x 1.8 cm with SUVmax 15.3.")
    found = _by_location(extract(text))
    assert set(found) == {"ilium_l", "lung_rll", "ln_cervical_ii_r", "ln_cervical_iii_r"}
    assert (found["ilium_l"].size_mm, found["ilium_l"].suv_max) == (32.0, 11.1)
    assert (found["lung_rll"].size_mm, found["lung_rll"].suv_max) == (14.0, 6.6)
    assert (found["ln_cervical_ii_r"].size_mm, found["ln_cervical_ii_r"].suv_max) == (24.0, 15.3)
    assert found["ln_cervical_iii_r"].suv_max is None
    assert found["ln_cervical_iii_r"].pet_finding.grade is UptakeGrade.intense


def test_coordinated_sites_share_words_and_respectively_distributes_values():
    text = ("FDG PET/CT. Sclerotic lesions in T12 and L1 with SUVmax 9.8 and 7.7, respectively. "
            "Lytic lesions in the left 4th and 5th ribs.")
    found = _by_location(extract(text))
    assert (found["vertebra_t12"].suv_max, found["vertebra_l1"].suv_max) == (9.8, 7.7)
    assert found["vertebra_l1"].ct_finding is CTFinding.osteoblastic
    assert found["rib_4_l"].ct_finding is found["rib_5_l"].ct_finding is CTFinding.osteolytic


@pytest.mark.parametrize("text, location", [
    ("Sclerotic lesion in T1, SUVmax 4.2.", "vertebra_t1"),
    ("Sclerotic lesion in T12, SUVmax 4.2.", "vertebra_t12"),
    ("Sclerotic lesion in Th12, SUVmax 4.2.", "vertebra_t12"),
    ("Sclerotic lesion in the 12th thoracic vertebra, SUVmax 4.2.", "vertebra_t12"),
    ("FDG-avid right level II node, SUVmax 4.2.", "ln_cervical_ii_r"),
    ("FDG-avid right level IIa node, SUVmax 4.2.", "ln_cervical_ii_r"),
    ("FDG-avid right level IIb node, SUVmax 4.2.", "ln_cervical_ii_r"),
    ("FDG-avid right level III node, SUVmax 4.2.", "ln_cervical_iii_r"),
    ("FDG-avid right level 3 node, SUVmax 4.2.", "ln_cervical_iii_r"),
    ("Focal uptake in S1 without CT correlate, SUVmax 4.2.", "sacrum"),
    ("Lytic lesion at S1 adjacent to the L5 endplate, SUVmax 4.2.", "sacrum"),
    ("Hypodense lesion in S1 of the liver, SUVmax 4.2.", "liver_s1"),
    ("Hepatic lesion in S1, SUVmax 4.2.", "liver_s1"),
    ("Hypodense lesion in segment I, SUVmax 4.2.", "liver_s1"),
    ("Hypodense lesion in S7, SUVmax 4.2.", "liver_s7"),
])
def test_lookalike_locations_are_told_apart(text, location):
    (f,) = extract(text, Tracer.fdg).findings
    assert f.location_id == location


@pytest.mark.parametrize("phrase, location", [
    ("R axillary lymph node", "ln_axillary_r"), ("L. axillary node", "ln_axillary_l"),
    ("rt axillary LN", "ln_axillary_r"), ("lt. axillary node", "ln_axillary_l"),
    ("right-sided axillary node", "ln_axillary_r"), ("left sided axillary node", "ln_axillary_l"),
    ("axillary lymph node on the left", "ln_axillary_l"), ("axillary node (right)", "ln_axillary_r"),
    ("R SCV node", "ln_supraclavicular_r"), ("left enlarged axillary node", "ln_axillary_l"),
    ("right external iliac node", "ln_external_iliac_r"), ("L int. iliac node", "ln_internal_iliac_l"),
    ("station 4R node", "ln_mediastinal_4r"), ("left lower paratracheal node", "ln_mediastinal_4l"),
    ("node in the upper lobe of the left lung", "lung_lul"), ("right seventh rib lesion", "rib_7_r"),
    ("lesion in the 7th rib on the right", "rib_7_r"),
])
def test_side_spellings(phrase, location):
    (f,) = extract(f"PSMA PET: {phrase}, SUVmax 6.0.").findings
    assert f.location_id == location


def test_lateral_stem_without_any_side_is_not_guessed_but_kept_coarse():
    (f,) = extract("FDG PET: hilar lymph node, SUVmax 6.0.").findings
    assert (f.location_id, f.laterality.value, f.suv_max) == ("ln_hilar", "unspecified", 6.0)
    (f,) = extract("FDG PET: 7th rib lesion, SUVmax 3.0.").findings
    assert f.location_id == "rib"
    (f,) = extract("FDG PET: level II nodes, SUVmax 4.0.").findings
    assert f.location_id == "ln_cervical"  # the level needs a side: no level node without one


def test_side_carries_to_later_stems_of_the_same_sentence():
    found = _by_location(extract("FDG PET: left axillary and supraclavicular nodes, SUVmax 5.0 and 3.0."))
    assert (found["ln_axillary_l"].suv_max, found["ln_supraclavicular_l"].suv_max) == (5.0, 3.0)


def test_default_ct_finding_by_system_when_only_uptake_is_described():
    text = ("FDG PET/CT. Focal uptake in the right 6th rib, SUVmax 4.4. Uptake in the right lower lobe, "
            "SUVmax 2.2. Focal uptake in the pancreatic head, SUVmax 6.6. FDG-avid left axillary node, SUVmax 3.3.")
    found = _by_location(extract(text))
    assert found["rib_6_r"].ct_finding is CTFinding.no_ct_correlate
    assert found["lung_rll"].ct_finding is CTFinding.no_ct_correlate
    assert found["pancreas"].ct_finding is CTFinding.no_ct_correlate
    assert found["ln_axillary_l"].ct_finding is CTFinding.non_enlarged_lymph_node


def test_grade_prefers_suv_then_words():
    text = ("FDG PET/CT. Mild uptake in a sclerotic T5 lesion, SUVmax 12.0. Intense uptake in a lytic T6 lesion. "
            "Faint uptake in a sclerotic T8 lesion. Lytic lesion in T9.")
    found = _by_location(extract(text))
    assert found["vertebra_t5"].pet_finding.grade is UptakeGrade.intense  # SUV 12 wins over "mild"
    assert found["vertebra_t6"].pet_finding.grade is UptakeGrade.intense
    assert found["vertebra_t8"].pet_finding.grade is UptakeGrade.mild
    assert found["vertebra_t9"].pet_finding.grade is UptakeGrade.moderate


@pytest.mark.parametrize("text, tracer", [
    ("18F-FDG PET/CT.", Tracer.fdg), ("PET with fluorodeoxyglucose.", Tracer.fdg),
    ("18F-DCFPyL PET/CT.", Tracer.psma), ("Ga-68 PSMA-11 PET/CT.", Tracer.psma),
    ("[18F]PSMA-1007 PET. Prior FDG PET showed ... PSMA-avid node.", Tracer.psma),
])
def test_tracer_from_the_report(text, tracer):
    assert report_tracer_of(text) is tracer
    (f,) = extract(text + " Lytic lesion in T4, SUVmax 5.0.").findings
    assert f.pet_finding.tracer is tracer


def test_tracer_argument_wins_and_a_report_without_tracer_carries_none():
    text = "Lytic lesion in T4, SUVmax 5.0."
    assert extract(text, Tracer.psma).findings[0].pet_finding.tracer is Tracer.psma
    (f,) = extract(text).findings
    assert (f.location_id, f.pet_finding.tracer, f.suv_max) == ("vertebra_t4", None, 5.0)
    assert f.caption == "T4 vertebral body, osteolytic destruction with increased uptake"
    assert extract("No abnormal uptake.").findings == ()  # nothing to label: no tracer needed


def test_header_fields_never_change_the_findings():
    body = "FINDINGS: FDG-avid left axillary node, SUVmax 5.0.\n"
    plain = extract(body)
    with_phi = extract("Name: Axel Hill-Left\nMRN: 12345\nDOB: 1950-01-01\nReferring physician: Dr. T. Lung\n"
                       + body)
    assert [(f.location_id, f.suv_max) for f in plain.findings] == [(f.location_id, f.suv_max)
                                                                    for f in with_phi.findings]
    assert len(plain.findings) == 1


def test_landmark_is_not_a_second_finding():
    (f,) = extract("FDG: lytic lesion in the T8 vertebral body extending into the right 8th rib, SUVmax 9.1.").findings
    assert f.location_id == "vertebra_t8"


def test_report_round_trips_as_json():
    report = extract(NUMBERED)
    assert StructuredReport.from_json(report.to_json()) == report


INLINE = """\
FINDINGS: Hypermetabolic lesions: (1) left upper lobe mass, 4.2 x 3.3 cm, SUVmax 17.2; (2) left hilar node,
1.4 cm, SUVmax 8.0; (3) station 7 node, 1.1 cm, SUVmax 6.3; (4) right adrenal nodule, 1.9 cm, SUVmax 7.8.
Neck: A 1.8 cm right level IIA node demonstrates intense FDG avidity (SUV max 12.0). Contralateral level III
node measures 9 mm with mild uptake (SUV max 2.6).
"""


def test_inline_enumeration_and_contralateral():
    found = _by_location(extract(INLINE))
    assert {k: (f.suv_max, f.size_mm) for k, f in found.items()} == {
        "lung_lul": (17.2, 42.0), "ln_hilar_l": (8.0, 14.0), "ln_mediastinal_7": (6.3, 11.0),
        "adrenal_r": (7.8, 19.0), "ln_cervical_ii_r": (12.0, 18.0), "ln_cervical_iii_l": (2.6, 9.0)}
    assert found["adrenal_r"].ct_finding is CTFinding.mass  # an adrenal "nodule" is a solid organ lesion


TERSE_NOTES = """\
PET/CT FDG
Findings:
Physiol uptake brain/myocardium/kidneys/bladder.
Neck: lt level V node: focal intense uptake, no CT correlate, SUVmax:
  6.5; NP clear.
Chest: Small rt axillary LN 21 x 9 mm, SUVmax=4.4; Axillae otherwise neg.
Abd: Several hypodensities in both kidneys, markedly increased uptake (SUVmax = 16.7 R, 20.1 L).
  Bilateral groin nodes (left: 29 mm, SUVmax 23.3; right: 3.0 cm, SUVmax=23.0). Spleen neg.
Bones: Mixed lytic and sclerotic L2 lesion, SUVmax 4.2, 37x32mm; Destructive lt iliac wing
  lesion, SUVmax 9.9.
"""


def test_terse_notes_with_abbreviated_negatives_and_side_labelled_values():
    found = _by_location(extract(TERSE_NOTES))
    assert set(found) == {"ln_cervical_v_l", "ln_axillary_r", "kidney_r", "kidney_l", "ln_inguinal_l",
                          "ln_inguinal_r", "vertebra_l2", "ilium_l"}  # "Physiol", "neg", "clear": no finding
    assert (found["ln_cervical_v_l"].ct_finding, found["ln_cervical_v_l"].suv_max) == (CTFinding.no_ct_correlate, 6.5)
    # "small ... LN" is a non-enlarged node whatever the dimensions say
    assert found["ln_axillary_r"].ct_finding is CTFinding.non_enlarged_lymph_node
    assert (found["kidney_r"].suv_max, found["kidney_l"].suv_max) == (16.7, 20.1)
    assert found["kidney_r"].ct_finding is CTFinding.hypodense_lesion  # "hypodensities"
    assert (found["ln_inguinal_l"].suv_max, found["ln_inguinal_l"].size_mm) == (23.3, 29.0)
    assert (found["ln_inguinal_r"].suv_max, found["ln_inguinal_r"].size_mm) == (23.0, 30.0)
    l2 = found["vertebra_l2"]
    assert (l2.ct_finding, l2.suv_max, l2.size_mm) == (CTFinding.mixed_bone_lesion, 4.2, 37.0)  # 37x32mm no SUV
    assert (found["ilium_l"].ct_finding, found["ilium_l"].suv_max) == (CTFinding.osteolytic, 9.9)  # hanging indent


def test_respectively_follows_the_order_the_sides_are_named():
    text = ("FDG PET. Lytic lesions in both 9th ribs, measuring 23 x 18 mm on the left and 26 mm on the right "
            "(SUVmax 15.6 and 16.4, respectively).")
    found = _by_location(extract(text))
    assert (found["rib_9_l"].suv_max, found["rib_9_l"].size_mm) == (15.6, 23.0)
    assert (found["rib_9_r"].suv_max, found["rib_9_r"].size_mm) == (16.4, 26.0)


IMPRESSION_FIRST = """\
IMPRESSION:
1. Focal intense FDG uptake in S1 without CT correlate, suspicious for metastasis.
2. Highly avid right upper lobe nodule (SUVmax 9.1).

FINDINGS:
Chest: Solid nodule in the right upper lobe measuring 14 mm, SUVmax 9.1.
Abdomen: Intense uptake in segment I of the liver with no correlate on CT, SUVmax 12.2.
"""


def test_impression_before_findings_is_deduplicated_and_settles_an_ambiguous_site():
    found = _by_location(extract(IMPRESSION_FIRST))
    assert set(found) == {"lung_rul", "liver_s1"}
    assert found["lung_rul"].span.text.startswith("Solid nodule")  # the FINDINGS statement is kept
    assert (found["liver_s1"].suv_max, found["liver_s1"].ct_finding) == (12.2, CTFinding.no_ct_correlate)


# ------------------------------------------------------------------------- on the synthetic generator
def _synthetic_cases(n: int, seed: int):
    """n studies with 0-8 random lesions (some at one location, some mirrored, some unreported), rendered by
    the project's report generator in every house style in turn."""
    from datetime import datetime, timedelta

    import numpy as np

    from data_contracts import taxonomy
    from data_contracts.caption import caption_text
    from data_contracts.findings import Vendor, ct_findings_for, grade_for_suv
    from data_contracts.records import LesionTruth, PetFinding
    from tasks.synth.raw import RawStudy, Volume
    from tasks.synth.reports import HOUSE_STYLES, render_report

    def volume(dtype):
        return Volume(np.zeros((2, 2, 2), dtype), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))

    rng = np.random.default_rng(seed)
    locations = taxonomy.locations()
    cases = []
    for k in range(n):
        key = f"S{k:04d}"
        tracer = Tracer.fdg if rng.random() < 0.69 else Tracer.psma
        truth: list[LesionTruth] = []
        for i in range(1, int(rng.integers(0, 9)) + 1):
            if truth and rng.random() < 0.35:
                base = truth[int(rng.integers(len(truth)))]
                lid, ct = base.location_id, base.ct_finding
                mirror = {"_l": "_r", "_r": "_l"}.get(lid[-2:])
                if mirror and rng.random() < 0.5 and lid[:-2] + mirror in taxonomy.by_id():
                    lid = lid[:-2] + mirror
            else:
                loc = locations[int(rng.integers(len(locations)))]
                options = ct_findings_for(loc.system)
                lid, ct = loc.id, options[int(rng.integers(len(options)))]
            suv = float(rng.uniform(1.5, 25))
            pet = PetFinding(tracer=tracer, grade=grade_for_suv(suv))
            truth.append(LesionTruth(study_key=key, instance=i, location_id=lid, ct_finding=ct, pet_finding=pet,
                                     suv_max=suv, size_mm=float(rng.uniform(5, 60)), center_mm=(0.0, 0.0, 0.0),
                                     caption=caption_text(lid, ct, pet), in_mask=bool(rng.random() < 0.9),
                                     reported=bool(rng.random() < 0.85)))
        injected = datetime(2024, 5, 2, 8, 12)
        study = RawStudy(study_key=key, patient_id="MRN0001", patient_name="HILL^AXEL", birth_date="19560314",
                         sex="M", age=68, height_m=1.76, weight_kg=78.0, vendor=Vendor.ge, tracer=tracer,
                         injected_dose_mbq=300.0, injection_time=injected,
                         acquisition_time=injected + timedelta(minutes=60), ct=volume(np.int16),
                         pet=volume(np.float32), lesions=volume(np.uint8), anatomy=volume(np.uint16), truth=truth)
        cases.append(render_report(study, np.random.default_rng(seed * 100_003 + k),
                                   HOUSE_STYLES[k % len(HOUSE_STYLES)]))
    return cases


def _score_synthetic(n: int, seed: int):
    from tasks.structure.evaluate import score

    cases = _synthetic_cases(n, seed)
    predicted = [extract(c.text) for c in cases]  # the tracer is read from the report
    return score(predicted, [[f.finding for f in c.findings] for c in cases], [c.style for c in cases])


def test_acceptance_targets_on_generated_reports():
    """100 generated reports (20 per house style): the issue's acceptance targets, per style."""
    scores = _score_synthetic(100, seed=5)
    styles = set(scores.table["style"]) - {"overall"}
    assert len(styles) == 5
    for style in ["overall", *styles]:
        for field in ("location", "ct_finding"):
            assert scores.precision(field, style) >= 0.95 and scores.recall(field, style) >= 0.95, (field, style)
        assert scores.precision("suv_max", style) >= 0.98 and scores.recall("suv_max", style) >= 0.98, style


@pytest.mark.slow
def test_acceptance_targets_on_many_generated_reports():
    scores = _score_synthetic(1000, seed=2024)
    print(scores)
    for field in ("location", "ct_finding"):
        assert scores.precision(field) >= 0.95 and scores.recall(field) >= 0.95
    assert scores.precision("suv_max") >= 0.98 and scores.recall("suv_max") >= 0.98


@pytest.mark.parametrize("text, expected", [
    ("FDG avid mediastinal lymph nodes.", ["ln_mediastinal"]),
    ("Bilateral cervical nodes are FDG avid.", ["ln_cervical_l", "ln_cervical_r"]),
    ("A lung nodule with increased FDG uptake.", ["lung"]),
    ("Right rib lesion, SUVmax 3.1.", ["rib_r"]),
    ("Diffuse marrow uptake, SUVmax 4.0.", ["bone_marrow"]),
    ("Uptake in the prostate bed, SUVmax 4.1.", ["prostate_bed"]),
    ("Right palatine tonsil mass, SUVmax 12.", ["tonsil_palatine_r"]),
    ("Focal uptake in the right L4 pedicle (SUVmax 7).", ["vertebra_l4"]),
    ("Lytic lesion in the left ischium with uptake.", ["ischium_l"]),
    ("Right external iliac node dorsal to the external iliac vein, SUVmax 5.", ["ln_external_iliac_r"]),
    ("Left iliac junctional node with uptake.", ["ln_iliac_l"]),
    ("Mass in the right lower lobe of the lung, SUVmax 9.", ["lung_rll"]),
    ("Right pleural thickening with uptake.", ["pleura_r"]),
    ("Intense uptake in the left fossa of Rosenmüller.", ["fossa_rosenmuller_l"]),
])
def test_coarse_sites_new_leaves_and_real_wordings(text, expected):
    assert sorted(f.location_id for f in extract(text).findings) == expected


@pytest.mark.parametrize("text, values", [
    ("Nodes in the left axilla and right axilla, SUVmax:3.71 and 3.56.", {"ln_axillary_l": 3.71,
                                                                           "ln_axillary_r": 3.56}),
    ("Lesion in T7 with S U V m a x 12.", {"vertebra_t7": 12.0}),
    ("Lesion in T7 with a maximum standardized uptake value of 7.8.", {"vertebra_t7": 7.8}),
    ("Lesion in T7, SUV max = 9.", {"vertebra_t7": 9.0}),
    ("Lesion in T7, SUVmax 5.2 g/ml.", {"vertebra_t7": 5.2}),
])
def test_suv_spellings_pair_in_order(text, values):
    assert {f.location_id: f.suv_max for f in extract(text).findings} == values


def test_history_and_other_studies_are_not_findings_but_pet_statements_are():
    text = ("A 73-year-old man presented with a painless left neck mass. A contrast-enhanced CT of the neck "
            "showed a mass of the right parotid gland. FDG PET/CT showed intense uptake in the left tonsil "
            "(SUVmax 8.6), with normal FDG uptake elsewhere in the body.")
    (f,) = extract(text).findings
    assert (f.location_id, f.suv_max) == ("tonsil_palatine_l", 8.6)
    assert f.span.text == "FDG PET/CT showed intense uptake in the left tonsil (SUVmax 8.6)"  # not the negation


@pytest.mark.parametrize("text", ["", "\ufffd\x01\x02 \ufffd" * 50, "Hypermétabolisme intense (SUVmax 12,3).",
                                  "肺に集積あり。" * 10])
def test_any_text_gives_a_valid_report(text):
    report = extract(text)
    assert type(report).from_json(report.to_json()) == report


def test_medspacy_scoping_drops_what_context_negates():
    pytest.importorskip("medspacy")
    text = "FDG PET: intense uptake in the left tonsil, SUVmax 8.6. No uptake in the right parotid gland."
    assert [f.location_id for f in extract(text, scoping="medspacy").findings] == ["tonsil_palatine_l"]
    assert [f.location_id for f in extract(text).findings] == ["tonsil_palatine_l"]
    with pytest.raises(ValueError, match="scoping"):
        extract(text, scoping="other")


@pytest.mark.parametrize("text, expected", [
    # a reference organ is never a finding
    ("Focal uptake in the T9 vertebral body, higher than the liver.", ["vertebra_t9"]),
    ("Nodal uptake similar in intensity to the liver.", []),
    # diagnosis words, benign entities, imaging qualifiers
    ("Intense uptake in a left axillary node in this patient with breast cancer.", ["ln_axillary_l"]),
    ("Bilateral kidney stones.", []),
    ("Dedicated breast PET shows uptake in a right axillary node.", ["ln_axillary_r"]),
    # a part named of another place is that place
    ("Intense uptake in the neck of the pancreas.", ["pancreas"]),
    # lists share their description; shared heads; spots inside a coarse node
    ("Hypermetabolic lesions in the liver and the skeleton, including the sternum and both clavicles.",
     ["clavicle_l", "clavicle_r", "liver", "sternum"]),
    ("Avid right supra- and infraclavicular lymph nodes.", ["ln_infraclavicular_r", "ln_supraclavicular_r"]),
    ("Avid prevascular and precarinal nodes.", ["ln_mediastinal", "ln_mediastinal"]),
    # "each"/"symmetric" name both sides; image panels are not sides
    ("Uptake in each adrenal gland.", ["adrenal_l", "adrenal_r"]),
    ("Symmetric hilar nodal uptake.", ["ln_hilar_l", "ln_hilar_r"]),
    ("Fused images (top right) show uptake in hilar nodes.", ["ln_hilar"]),
    # another exam's statement and a clinical history are not this study's findings
    ("A contrast-enhanced CT showed a 2 cm nodule in the left upper lobe.", []),
    ("The left lower lobe nodule is not well visualized.", []),
    ("Relative sparing of the lumbar spine.", []),
])
def test_real_prose_reading_rules(text, expected):
    assert sorted(f.location_id for f in extract("FDG PET/CT. " + text).findings) == expected


def test_other_site_keeps_the_words_and_the_region():
    (f,) = extract("FDG PET/CT: a focus of intense activity in the right gluteal fold, SUVmax 6.1.").findings
    assert (f.location_id, f.other_site.words, f.other_site.region.value, f.suv_max) == (
        "region_pelvis", "right gluteal fold", "pelvis", 6.1)
    assert f.caption == "right gluteal fold, increased FDG uptake without CT correlate"  # SUVmax 6.1: moderate
    assert extract("FDG PET/CT: no increased activity in the body.").findings == ()


def test_the_definite_stem_refers_back_to_its_side_and_a_lone_value_completes_the_finding():
    text = ("FDG PET/CT shows a left submandibular nodal focus. The submandibular node measures 8 mm. "
            "Left tonsil mass is avid. The SUVmax was 9.2.")
    found = {f.location_id: f for f in extract(text).findings}
    assert set(found) == {"ln_cervical_i_l", "tonsil_palatine_l"}
    assert found["tonsil_palatine_l"].suv_max == 9.2


def test_a_bare_cervical_in_a_gynaecological_report_is_the_cervix():
    text = "Known carcinoma of the uterine cervix. FDG PET/CT: intensely avid cervical mass, SUVmax 15.5."
    assert [(f.location_id, f.suv_max) for f in extract(text).findings] == [("cervix_uteri", 15.5)]
    assert [f.location_id for f in extract("FDG PET/CT: avid cervical mass, SUVmax 15.5.").findings] == [
        "ln_cervical"]


def test_negative_statements_are_kept():
    report = extract("FDG PET/CT: intense uptake in the left tonsil, SUVmax 8.6. No abnormal uptake in the liver. "
                     "No evidence of distant metastatic disease.")
    assert [f.location_id for f in report.findings] == ["tonsil_palatine_l"]
    assert [n.location_id for n in report.negatives] == ["liver", None]
    assert report.negatives[0].span.text == "No abnormal uptake in the liver."
    assert type(report).from_json(report.to_json()) == report
