import math

import pandas as pd
import pytest

from tasks.realism.table import ReportFacts, format_table, report_figures

BASE = "Indication: Restaging of diffuse large B-cell lymphoma.\nIMPRESSION:\n- Nodal lymphoma.\n"


def _truth():
    truth = pd.DataFrame({"study_key": ["A", "B", "B"], "instance": [1, 1, 2],
                          "location_id": ["ln_axillary_r", "ln_axillary_r", "spleen"], "suv_max": [19.0, 12.0, 3.0]})
    rt = pd.DataFrame({
        "study_key": ["A", "B", "B"], "instances": [[1], [1], [2]],
        "finding__location_id": ["ln_axillary_r", "ln_axillary_r", "spleen"],
        "finding__pet_finding__grade": ["intense", "intense", "mild"],
        "finding__span__text": ["Node SUVmax 19.0.", "Node SUVmax 12.0, increased compared with the prior study.",
                                "Spleen SUVmax 3.0, new since the prior study."]})
    return truth, rt


def test_report_figures_count_carry_over_grades_and_negative_reports():
    truth, rt = _truth()
    rows = [ReportFacts("A", "p1", "FDG", BASE, None), ReportFacts("B", "p1", "FDG", BASE, None),
            ReportFacts("C", "p2", "FDG", BASE.replace("Nodal lymphoma", "Primary lung malignancy"), None)]
    figs = {f.figure: f for f in report_figures(rows, truth, rt)}
    assert figs["indication consistent with the disease"].value == "0.67"
    assert figs["follow-up lesions carried over with comparison"].value == "0.50"  # the new splenic one is not
    assert figs["stated uptake grade fits the hottest lesion"].value == "1.00"  # grade_for_suv(3.0) is mild
    assert figs["lesion-free studies with a negative report"].value == "1.00"  # C: no statement
    assert figs["stated scan range matches the images"].status == "n/a"  # no study in the store
    assert "follow-up lesions carried over" in format_table(list(figs.values()))


def test_liver_pet_cv_is_the_fdg_figure():
    """10-15 % is FDG's liver noise: PSMA's liver (more counts) is reported apart, never pooled into it."""
    from tasks.realism.facts import StudyFacts
    from tasks.realism.table import image_figures

    keys = ("liver_hu", "cancellous_hu", "liver_noise_hu", "noise_corr", "box5_ratio", "skin_inbetween",
            "lung_inbetween", "liver_suv_mean", "blood_pool_suv", "liver_pet_cv", "kidney_suv_max",
            "salivary_suv_max", "lacrimal_suv_max")

    def study(tracer: str, cv: float) -> StudyFacts:
        img = dict.fromkeys(keys, 1.0) | {"liver_pet_cv_native": cv}
        return StudyFacts("k", "s", "p", tracer, 70.0, None, None, img, [])

    figs = {f.figure: f for f in image_figures([study("FDG", 0.12), study("FDG", 0.13), study("PSMA", 0.06),
                                                study("PSMA", 0.07), study("PSMA", 0.05)])}
    assert figs["FDG liver PET CV (PET's own grid)"].value == "0.12"  # median of 0.12, 0.13 -> 0.125
    assert figs["FDG liver PET CV (PET's own grid)"].status == "pass"
    assert figs["PSMA liver PET CV (PET's own grid)"].value == "0.06"


def test_tercile_ratio_is_top_over_bottom_third_mean():
    from tasks.realism.table import _tercile_ratio

    pairs = [(float(i), float(i + 1)) for i in (3, 0, 5, 1, 4, 2)]  # sorted by the first value: b = 1..6
    assert _tercile_ratio(pairs) == pytest.approx(5.5 / 1.5)  # (5 + 6) / 2 over (1 + 2) / 2 = 3.667
    assert _tercile_ratio(pairs + [(9.0, float("nan"))]) == pytest.approx(5.5 / 1.5)  # a NaN pair is dropped
    assert _tercile_ratio(pairs + [(6.0, 21.0)]) == pytest.approx(13.5 / 1.5)  # 7 pairs: thirds of 2, (6 + 21) / 2
    assert math.isnan(_tercile_ratio(pairs[:5]))  # fewer than 6: not measured
