from tasks.realism import reports

REPORT = """FDG PET/CT
Indication: Restaging of diffuse large B-cell lymphoma after four cycles of R-CHOP.

IMPRESSION:
- Primary lung malignancy in the right upper lobe.

FINDINGS:
Technique: Whole-body PET/CT was acquired from the skull base to the mid-thigh on a scanner.
"""


def test_indication_against_the_impression_and_tracer():
    assert reports.indication_consistent(REPORT, "FDG") is False
    assert reports.indication_consistent(REPORT.replace("Primary lung malignancy", "Lymphoma"), "FDG") is True
    assert reports.indication_consistent(REPORT.replace("Primary lung malignancy", "Nodal disease"), "PSMA") is False
    assert reports.indication_consistent("FINDINGS: none", "FDG") is None


def test_indication_reads_abbreviations_and_ignores_organ_adjectives():
    hl = "Ind: HL interim PET post ABVD x2\nImp:\n- FDG-avid para-oesophageal node - c/w lymphoma\n"
    assert reports.diseases_in("HL interim PET post ABVD x2") == {"lymphoma"}
    assert reports.indication_consistent(hl, "FDG") is True  # "para-oesophageal" is a place, not a disease
    assert reports.indication_consistent(hl.replace("c/w lymphoma", "oesophageal carcinoma"), "FDG") is False
    assert reports.diseases_in("Intense uptake in the prostate and a nasopharyngeal thickening") == set()
    assert reports.diseases_in("?lung ca, SPN on CT") == {"lung"}


def test_stated_range_and_comparison():
    assert reports.stated_range(REPORT) == ("skull_base", "mid_thigh")
    assert reports.stated_range("acquired from vertex to the feet") == ("vertex", "knee_or_below")
    assert reports.stated_range("no range") is None
    assert reports.stated_range("Tech: FDG 300 MBq iv. GE. Skull base-mid thigh.") == ("skull_base", "mid_thigh")
    assert reports.stated_range("Tech: FDG iv. Vertex-toes.") == ("vertex", "knee_or_below")
    assert reports.has_comparison("Previously 12 mm, now 15 mm (SUVmax 6.1).")
    assert not reports.has_comparison("A 12 mm node with SUVmax 6.1.")


def test_age_from_the_report_header():
    assert abs(reports.age_at_exam("Patient: X  DOB: 14.03.1956\nExam date: 2024-05-02") - 68.1) < 0.1
    assert abs(reports.age_at_exam("Pt: X | DOB 14 Mar 1956 | exam 02 May 2024") - 68.1) < 0.1
    assert reports.age_at_exam("Exam date: 2024-05-02") is None
