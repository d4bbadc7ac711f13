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


def _study(tracer=Tracer.fdg):
    acq = Acquisition(vendor=Vendor.ge, tracer=tracer, ct_spacing_mm=(1, 1, 2), ct_shape=(10, 10, 10),
                      pet_spacing_mm=(4, 4, 4), pet_shape=(5, 5, 5), injected_dose_mbq=300, uptake_minutes=60,
                      patient_weight_kg=70, source_format="nifti")
    return Study(patient_id="P00000000000b", study_id=SID, acquisition=acq)


def test_coarse_finding_links_to_a_mask_inside_its_node_but_not_outside():
    station7 = lesion(1, None, 6.0, 15)  # a node in fat: its station from position (``sites``)
    axilla = lesion(2, None, 6.0, 15)
    sites = {1: ("ln_mediastinal_7",), 2: ("ln_axillary_r",)}
    coarse = finding("ln_mediastinal", "unspecified", "enlarged_lymph_node", suv=6.0)
    assert pair_cost(station7, coarse, CFG, sites=sites) == CFG.cost_same_location + 0.05
    # a station guessed from position never rules another station out: unknown, not other
    assert pair_cost(axilla, coarse, CFG, sites=sites) == CFG.cost_unknown_location
    exact = finding("ln_mediastinal_7", "midline", "enlarged_lymph_node", suv=6.0)
    assert [p.finding_index for p in link_study(SID, [station7], [coarse, exact], CFG, sites=sites).pairs] == [1]
    # a sided coarse node keeps its side: "right rib" never takes a left rib mask
    right_rib = finding("rib_r", "right", "osteolytic", suv=6.0)
    assert pair_cost(lesion(3, "rib_left_4", 6.0, 15), right_rib, CFG) > CFG.max_cost
    assert pair_cost(lesion(3, "rib_right_4", 6.0, 15), right_rib, CFG) < CFG.cost_near_location


def test_one_coarse_finding_from_text_through_link_to_a_caption_sample():
    from tasks.structure.rules import extract

    text = "FINDINGS: Hypermetabolic mediastinal lymph nodes, SUVmax 7.4."
    (f,) = extract(text).findings  # no tracer named, none given
    assert (f.location_id, f.pet_finding.tracer, f.suv_max) == ("ln_mediastinal", None, 7.4)
    masks = [lesion(1, None, 7.2, 16), lesion(2, "liver", 7.4, 16)]
    sites = {1: ("ln_mediastinal_4r",)}  # the station is only a guess from position
    res = link_study(SID, masks, [f], CFG, sites=sites)
    assert [(p.instance, p.finding_index) for p in res.pairs] == [(1, 0)]
    (s,) = caption_samples(_study(Tracer.fdg), [f], res, masks, sites)
    # a station guessed from position never replaces the stated node; the study's tracer fills the silence
    assert s.location_id == "ln_mediastinal"
    assert s.caption == "mediastinal lymph node, non-enlarged lymph node with increased FDG uptake"
    assert s.span.text == f.span.text
    # a segmented class with one site does decide the leaf a coarse finding left open
    rib = finding("rib_r", "right", "osteolytic", suv=6.0, text="right rib lesion")
    on_rib = [lesion(1, "rib_right_4", 6.0, 15)]
    (s,) = caption_samples(_study(Tracer.fdg), [rib], link_study(SID, on_rib, [rib], CFG), on_rib)
    assert s.location_id == "rib_4_r"
    # without the masks' labels the sample keeps the stated node and its name
    (s,) = caption_samples(_study(Tracer.fdg), [f], res)
    assert (s.location_id, s.caption.split(",")[0]) == ("ln_mediastinal", "mediastinal lymph node")


def test_link_dataset_reads_any_report_encoding_and_quarantines_a_missing_report(tmp_path):
    """Latin-1 and UTF-16 reports are linked like UTF-8 ones; a missing report is one quarantine row (named by
    the study pseudonym) and every other study still gets its findings and samples."""
    from data_contracts.settings import Settings
    from data_contracts.tables import FINDINGS, MANIFEST, QUARANTINE
    from tasks.ingest import ingest_all, study_pseudonym
    from tasks.link import link_dataset
    from tasks.synth.cohort import synthesize_cohort

    settings = Settings(home=tmp_path / "home", raw_dir=tmp_path / "raw")
    synthesize_cohort(settings.raw_dir, patients=3, seed=4, scale="tiny", settings=settings, progress=False)
    ingest_all(settings, progress=False)
    rows = [r for r in MANIFEST.records(MANIFEST.read(settings.raw.manifest)) if r.report_path]
    assert len(rows) >= 3
    latin, utf16, missing = rows[0], rows[1], rows[2]
    for row, codec in ((latin, "latin-1"), (utf16, "utf-16")):
        path = settings.raw_dir / row.report_path
        text = "Zuweiser: Dr. Müller, Réf. clinique\n" + path.read_text(encoding="utf-8")  # not ASCII
        path.write_bytes(text.encode(codec))
    (settings.raw_dir / missing.report_path).unlink()

    summary = link_dataset(settings)
    sid = {r.study_key: study_pseudonym(r.study_key, settings.pseudonym_key) for r in rows}
    assert summary.quarantined_reports == 1 and summary.studies == len(rows) - 1
    [q] = [q for q in QUARANTINE.records(QUARANTINE.read(settings.table_path("quarantine")))
           if q.stage == "structure"]
    assert (q.item, q.reason, q.source) == (sid[missing.study_key], "missing_report",
                                            f"reports/{sid[missing.study_key]}.txt")
    with_findings = set(FINDINGS.read(settings.table_path("findings")).study_id)
    assert {sid[latin.study_key], sid[utf16.study_key]} <= with_findings
    assert sid[missing.study_key] not in with_findings
