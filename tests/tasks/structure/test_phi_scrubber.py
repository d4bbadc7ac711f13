"""PHI scrubber: what ``scrub`` removes and keeps, and offset mapping."""

from __future__ import annotations

import pytest

from data_contracts import findings, taxonomy
from tasks.structure.phi_scrubber import scrub, scrub_detailed

HEADER_STYLES = [
    ("Patient: Jane Doe   MRN: 12345678   DOB: 03/14/1961", "Patient: [NAME]   MRN: [ID]   DOB: [DATE]"),
    ("PATIENT NAME: DOE^JANE^M\nPATIENT ID: 0012345678\nBIRTH DATE: 19610314",
     "PATIENT NAME: [NAME]\nPATIENT ID: [ID]\nBIRTH DATE: [DATE]"),
    ("Name: Doe, Jane; Pt ID: A7654321; D.O.B. 14 March 1961",
     "Name: [NAME]; Pt ID: [ID]; D.O.B. [DATE]"),
    ("Pt: jane doe, born 1961, Accession No. ACC-2021-0042",
     "Pt: [NAME], born [DATE], Accession No. [ID]"),
    ("Patient: María José García-López (DOB 1961-03-14), hospital number 4471823",
     "Patient: [NAME] (DOB [DATE]), hospital number [ID]"),
]


@pytest.mark.parametrize(("text", "expected"), HEADER_STYLES)
def test_header_fields_are_replaced(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("Referring physician: Dr. Alan Grant.", "Referring physician: [NAME]."),
    ("Discussed with Dr. Grant and Mrs Doe.", "Discussed with Dr. [NAME] and Mrs [NAME]."),
    ("Electronically signed by John A. Smith, MD on 05/06/2021 14:32",
     "Electronically signed by [NAME], MD on [DATE] 14:32"),
    ("Compared with PET/CT of 12 March 2020, Mar 3, 2021, 3rd of May 2019, 14-Mar-21 and June 2018.",
     "Compared with PET/CT of [DATE], [DATE], [DATE], [DATE] and [DATE]."),
    ("Prior study 2020-03-12T10:22:00 and 12.03.2020.", "Prior study [DATE] and [DATE]."),
    ("Call 020 7946 0958 or (555) 123-4567, fax: +1 555 123 4567, jane.doe@example.org.",
     "Call [PHONE] or [PHONE], fax: [PHONE], [EMAIL]."),
    ("A 94-year-old woman; aged 91.", "A [AGE]-year-old woman; aged [AGE]."),
    ("Study UID 1.2.840.113619.2.55.3.604688119 reviewed.", "Study UID [ID] reviewed."),
])
def test_names_dates_and_identifiers_in_running_text(text, expected):
    assert scrub(text) == expected


def test_clinical_numbers_and_words_are_kept():
    text = ("FDG PET/CT, 370 MBq, uptake time 60 min, glucose 5.6 mmol/L. Enlarged right level II node "
            "2.1 x 1.5 cm, SUVmax 8.2 (SUV max: 12.0 previously; SUVmax=6.1; SUVmax of 3.4). T7 and Th10 "
            "sclerotic lesions. Liver segment VIII lesion 23 x 19 x 20 mm. Station 4R, 10L. 12-14 mm nodes. "
            "A 64-year-old man. Findings in 2019 were stable. Lesions may represent metastases.")
    assert scrub(text) == text


def test_every_taxonomy_and_finding_phrase_survives():
    phrases = [p for loc in taxonomy.locations() for p in (*loc.terms, *loc.stems)]
    phrases += [p for info in findings.CT_FINDINGS.values() for p in (info.phrase, *info.synonyms)]
    phrases += [p for syns in findings.UPTAKE_SYNONYMS.values() for p in syns]
    changed = [p for p in phrases if scrub(f"{p} with SUVmax 8.2, 2.1 x 1.5 cm.") != f"{p} with SUVmax 8.2, 2.1 x 1.5 cm."]
    assert len(phrases) > 1500 and changed == []


def test_a_header_surname_is_removed_wherever_it_recurs():
    text = "Patient: Jane Doe\nFINDINGS: DOE, the patient (Jane), has a lytic T7 lesion. Jane's scan."
    out = scrub(text)
    assert "Jane" not in out and "Doe" not in out and "DOE" not in out
    assert "lytic T7 lesion" in out


def test_scrub_is_idempotent_and_maps_back_to_the_original():
    text = ("Patient: Jane Doe   MRN: 12345678   DOB: 03/14/1961\nReferring: Dr. Alan Grant\n"
            "Lytic lesion in T7, SUVmax 6.1. Seen on 12 March 2020 by Dr. Grant.")
    s = scrub_detailed(text)
    assert scrub(s.text) == s.text
    assert s.counts == {"NAME": 3, "ID": 1, "DATE": 2}
    for r in s.replacements:
        assert s.text[r.out_start:r.out_end] == f"[{r.kind}]"
        assert s.to_original(r.out_start, r.out_end) == (r.start, r.end)
    start = s.text.index("Lytic")
    end = s.text.index("6.1.") + 4
    a, b = s.to_original(start, end)
    assert text[a:b] == "Lytic lesion in T7, SUVmax 6.1."
    a, b = s.to_original(s.text.index("Seen"), len(s.text))
    assert text[a:b] == "Seen on 12 March 2020 by Dr. Grant."


def test_empty_and_clean_text():
    assert scrub("") == ""
    assert scrub_detailed("No abnormal uptake.").replacements == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("PET/CT report for Garcia, Emma, MRN 4471823, born 1961-03-14.",
     "PET/CT report for [NAME], MRN [ID], born [DATE]."),
    ("PET/CT report for Ivan Ivanov, MRN H4471823.", "PET/CT report for [NAME], MRN [ID]."),
    ("Examination of Jan Novak on 2021-01-04.", "Examination of [NAME] on [DATE]."),
    ("Patient Ivan Ivanov was referred for staging.", "Patient [NAME] was referred for staging."),
    ("Thank you for referring your patient Emma Garcia.", "Thank you for referring your patient [NAME]."),
    ("RE: SMITH, John (MRN 1234567)", "RE: [NAME] (MRN [ID])"),
    ("Report for: Juan de la Cruz, DOB 1961", "Report for: [NAME], DOB [DATE]"),
    ("GARCIA, Emma    MRN: 4471823", "[NAME]    MRN: [ID]"),
    ("Smith, John | 1961-03-14 | M", "[NAME] | [DATE] | M"),
    ("Pt: LI^LI NA | MRN 4471823", "Pt: [NAME] | MRN [ID]"),
    ("Name of patient: Łukasiewicz Żaneta", "Name of patient: [NAME]"),
    ("Results for BROWN, ROSE - 14.03.1961", "Results for [NAME] - [DATE]"),
    ("Reported by\nH. Tanaka\n", "Reported by\n[NAME]\n"),
])
def test_names_after_cues_in_surname_given_form_and_signatures(text, expected):
    assert scrub(text) == expected


@pytest.mark.parametrize("text", [
    "History of Hodgkin Lymphoma, staging.",
    "PET/CT for Hodgkin Lymphoma.",
    "Suspicious for Malignancy.",
    "Department of Nuclear Medicine, University Hospital",
    "CT examination of Chest, Abdomen and Pelvis.",
    "Liver, Spleen: normal.",
    "Patient Preparation: fasting 6 h.",
    "Evaluation for Metastatic Disease.",
    "Lymph nodes, Bilateral: none enlarged.",
    "Findings of Non-Small Cell Lung Cancer, stage IV.",
])
def test_clinical_words_after_cues_are_kept(text):
    assert scrub(text) == text


def test_an_acronym_after_a_cue_is_no_name():
    text = "Overall, the result of FCH PET/CT was equivocal; the lymph nodes took up FCH mildly."
    assert scrub(text) == text
