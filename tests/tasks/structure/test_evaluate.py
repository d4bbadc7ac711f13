"""Scoring a structuring backend: pairing, per-field precision/recall, tolerances, styles, loading truth."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from data_contracts.findings import CTFinding, Tracer, UptakeGrade
from data_contracts.records import PetFinding, StructuredFinding, TextSpan
from data_contracts.settings import RawLayout
from data_contracts.structured_report import StructuredReport
from data_contracts.tables import (
    MANIFEST,
    REPORT_TRUTH,
    ManifestRow,
    ReportFindingTruth,
)
from data_contracts.taxonomy import get
from tasks.structure import rules
from tasks.structure.evaluate import FIELDS, evaluate, load_cases, match, score


def _f(loc: str, ct: CTFinding, suv: float | None = None, size: float | None = None, span=(0, 10),
       grade: UptakeGrade = UptakeGrade.moderate, tracer: Tracer = Tracer.fdg) -> StructuredFinding:
    return StructuredFinding(location_id=loc, laterality=get(loc).laterality, ct_finding=ct,
                             pet_finding=PetFinding(tracer=tracer, grade=grade), suv_max=suv, size_mm=size,
                             span=TextSpan(start=span[0], end=span[1], text="x" * (span[1] - span[0])))


def _report(*findings) -> StructuredReport:
    return StructuredReport(findings=tuple(findings), backend="rules", extractor_version="test")


T7 = _f("vertebra_t7", CTFinding.osteolytic, 8.2, None, (0, 30))
NODE = _f("ln_axillary_l", CTFinding.enlarged_lymph_node, 5.0, 21.0, (31, 70))


def test_perfect_prediction_scores_one_everywhere():
    scores = score([_report(T7, NODE)], [[T7, NODE]], ["prose"])
    for field in FIELDS:
        assert scores.precision(field) == 1.0 and scores.recall(field) == 1.0
    assert scores.get("size_mm")["true"] == 1  # only findings that state a size count for size


def test_missing_and_extra_findings():
    extra = _f("sternum", CTFinding.no_ct_correlate, 3.0, None, (80, 90))
    scores = score([_report(T7, extra)], [[T7, NODE]], ["prose"])
    assert scores.precision("location") == 0.5 and scores.recall("location") == 0.5
    assert scores.precision("suv_max") == 0.5 and scores.recall("suv_max") == 0.5
    assert math.isnan(scores.precision("size_mm")) and scores.recall("size_mm") == 0.0


def test_wrong_location_pairs_by_span_and_other_fields_still_count():
    wrong = _f("vertebra_t8", CTFinding.osteolytic, 8.2, None, (0, 30))
    scores = score([_report(wrong)], [[T7]], ["terse"])
    assert scores.get("finding")["correct"] == 1
    assert scores.precision("location") == 0.0
    assert scores.precision("ct_finding") == 1.0 and scores.precision("suv_max") == 1.0
    # no shared location and no shared text: never paired
    far = _f("vertebra_t8", CTFinding.osteolytic, 8.2, None, (200, 230))
    assert score([_report(far)], [[T7]], ["terse"]).get("finding")["correct"] == 0


@pytest.mark.parametrize("pred_suv, ok", [(8.2, True), (8.24, True), (8.15, True), (8.3, False), (None, False)])
def test_suv_is_exact_to_one_decimal(pred_suv, ok):
    pred = _f("vertebra_t7", CTFinding.osteolytic, pred_suv, None, (0, 30))
    assert score([_report(pred)], [[T7]], ["s"]).get("suv_max")["correct"] == int(ok)


@pytest.mark.parametrize("pred_size, ok", [(21.0, True), (21.9, True), (20.0, True), (23.0, False)])
def test_size_is_within_one_millimetre(pred_size, ok):
    pred = _f("ln_axillary_l", CTFinding.enlarged_lymph_node, 5.0, pred_size, (31, 70))
    assert score([_report(pred)], [[NODE]], ["s"]).get("size_mm")["correct"] == int(ok)


def test_a_value_the_truth_lacks_is_a_false_positive():
    pred = _f("vertebra_t7", CTFinding.osteolytic, 8.2, 15.0, (0, 30))
    scores = score([_report(pred)], [[T7]], ["s"])
    assert scores.precision("size_mm") == 0.0 and math.isnan(scores.recall("size_mm"))


def test_pet_finding_needs_tracer_and_grade():
    pred = _f("vertebra_t7", CTFinding.osteolytic, 8.2, None, (0, 30), tracer=Tracer.psma)
    assert score([_report(pred)], [[T7]], ["s"]).precision("pet_finding") == 0.0


def test_hungarian_pairs_two_findings_at_one_place_by_span_and_values():
    a = _f("liver_s7", CTFinding.hypodense_lesion, 4.0, 20.0, (0, 20))
    b = _f("liver_s7", CTFinding.hypodense_lesion, 9.0, 35.0, (21, 40))
    assert match([b, a], [a, b]) == [(0, 1), (1, 0)]
    scores = score([_report(b, a)], [[a, b]], ["s"])
    assert scores.precision("suv_max") == 1.0 and scores.precision("size_mm") == 1.0


def test_per_style_rows_and_table_shape():
    scores = score([_report(T7), _report()], [[T7], [NODE]], ["numbered", "terse"])
    table = scores.table
    assert list(table.columns) == ["style", "field", "correct", "predicted", "true", "precision", "recall"]
    assert list(table["style"].unique()) == ["overall", "numbered", "terse"]
    assert len(table) == 3 * len(FIELDS)
    assert scores.recall("location", "numbered") == 1.0 and scores.recall("location", "terse") == 0.0
    assert scores.recall("location") == 0.5
    assert "location" in str(scores) and "terse" in str(scores)


def test_lengths_must_agree():
    with pytest.raises(ValueError, match="one prediction"):
        score([_report(T7)], [], ["s"])


def test_load_cases_and_evaluate_rules_on_a_drop_folder(tmp_path):
    raw = RawLayout(tmp_path)
    text_a = "FINDINGS: Lytic lesion in the T7 vertebral body, SUVmax 8.2.\nNo other lesions.\n"
    text_b = "FINDINGS: No abnormal uptake.\n"
    (tmp_path / "reports").mkdir()
    raw.report("a").write_text(text_a)
    raw.report("b").write_text(text_b)
    manifest = [ManifestRow(study_key=k, patient_id=f"pat-{k}", vendor="GE", tracer="FDG", ct_path="x",
                            pet_path="x", lesions_path="x", report_path=f"reports/{k}.txt") for k in ("a", "b")]
    MANIFEST.write(MANIFEST.frame(manifest), raw.manifest)
    start = text_a.index("Lytic")
    end = text_a.index("\n")
    truth = _f("vertebra_t7", CTFinding.osteolytic, 8.2, None, (start, end))
    REPORT_TRUTH.write(REPORT_TRUTH.frame([ReportFindingTruth(study_key="a", style="prose", finding_index=0,
                                                              finding=truth, instances=(1,))]),
                       raw.truth_report_findings)
    cases = load_cases(raw)
    assert [(c.key, c.style, len(c.truth), c.tracer) for c in cases] == [("a", "prose", 1, Tracer.fdg),
                                                                         ("b", "unknown", 0, Tracer.fdg)]
    scores = evaluate(cases, rules.extract)
    assert isinstance(scores.table, pd.DataFrame)
    for field in ("location", "ct_finding", "suv_max", "pet_finding"):
        assert scores.precision(field) == 1.0 and scores.recall(field) == 1.0


def test_load_cases_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="manifest"):
        load_cases(RawLayout(tmp_path))
