"""The StructuredReport contract: JSON round trip, provenance rules, and the LLM schema/answer pair."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from data_contracts import taxonomy
from data_contracts.findings import CTFinding, Tracer, UptakeGrade
from data_contracts.records import PetFinding, StructuredFinding, TextSpan
from data_contracts.structured_report import (
    LLMAnswer,
    LLMFinding,
    StructuredReport,
    llm_json_schema,
    locate_span,
)

TEXT = ("FINDINGS: Lytic lesion in the T7 vertebral body\nwith intense FDG uptake (SUVmax 12.4).\n"
        "Enlarged left axillary node, 2.1 x 1.5 cm, SUVmax 6.0.")


def _finding() -> StructuredFinding:
    return StructuredFinding(
        location_id="vertebra_t7", laterality=taxonomy.Laterality.midline, ct_finding=CTFinding.osteolytic,
        pet_finding=PetFinding(tracer=Tracer.fdg, grade=UptakeGrade.intense), suv_max=12.4, size_mm=None,
        span=TextSpan(start=10, end=87, text=TEXT[10:87]))


def test_round_trip_keeps_every_field():
    report = StructuredReport(findings=(_finding(),), backend="rules", extractor_version="rules-1")
    back = StructuredReport.from_json(report.to_json())
    assert back == report
    assert back.findings[0].suv_max == 12.4
    assert back.findings[0].span.text.startswith("Lytic lesion")
    assert json.loads(report.to_json())["backend"] == "rules"


def test_openai_report_must_name_model_and_prompt():
    with pytest.raises(ValidationError, match="model and prompt_version"):
        StructuredReport(backend="openai", extractor_version="llm-1", model="m")
    ok = StructuredReport(backend="openai", extractor_version="llm-1", model="m", prompt_version="p1")
    assert ok.findings == ()
    with pytest.raises(ValidationError):
        StructuredReport(backend="regex", extractor_version="x")


def _walk(node, path="$"):
    yield path, node
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _walk(v, f"{path}[{i}]")


def test_llm_schema_follows_strict_structured_output_rules():
    spec = llm_json_schema()
    assert spec["strict"] is True and spec["name"] == "structured_report"
    assert StructuredReport.llm_json_schema() == spec
    schema = spec["schema"]
    assert schema["type"] == "object"
    for path, node in _walk(schema):
        if isinstance(node, dict) and node.get("type") == "object":
            assert node["additionalProperties"] is False, path
            assert sorted(node["required"]) == sorted(node["properties"]), path
        if isinstance(node, dict):
            assert "$ref" not in node and "default" not in node and "minimum" not in node, path
    finding = schema["properties"]["findings"]["items"]
    # The schema and the pydantic model that validates the answer name the same fields.
    assert list(finding["properties"]) == list(LLMFinding.model_fields)
    props = finding["properties"]
    assert props["location_id"]["enum"] == [loc.id for loc in taxonomy.locations()]
    assert len(props["location_id"]["enum"]) == 134
    assert set(props["ct_finding"]["enum"]) == {c.value for c in CTFinding}
    assert set(props["tracer"]["enum"]) == {"FDG", "PSMA"}
    assert set(props["laterality"]["enum"]) == {"left", "right", "midline", "unspecified"}
    assert {"type": "null"} in props["suv_max"]["anyOf"]
    json.dumps(spec)  # serialisable as a request body


def _answer(**over) -> dict:
    f = {"evidence": "Enlarged left axillary node, 2.1 x 1.5 cm, SUVmax 6.0.", "location_id": "ln_axillary_l",
         "laterality": "left", "ct_finding": "enlarged_lymph_node", "tracer": "FDG", "uptake_grade": "moderate",
         "suv_max": 6.0, "size_mm": 21.0}
    f.update(over)
    return {"findings": [f]}


def test_llm_answer_becomes_report_with_located_span():
    answer = LLMAnswer.model_validate_json(json.dumps(_answer()))
    report = answer.to_report(TEXT, model="qwen", prompt_version="p3")
    f = report.findings[0]
    assert (f.location_id, f.size_mm, f.suv_max) == ("ln_axillary_l", 21.0, 6.0)
    assert TEXT[f.span.start:f.span.end] == f.span.text == "Enlarged left axillary node, 2.1 x 1.5 cm, SUVmax 6.0."
    assert (report.backend, report.model, report.prompt_version) == ("openai", "qwen", "p3")


def test_evidence_of_a_wrapped_sentence_is_found_ignoring_whitespace_and_case():
    quote = "lytic lesion in the T7 vertebral body with intense FDG uptake (SUVmax 12.4)."
    span = locate_span(TEXT, quote)
    assert span is not None and "\n" in span.text
    assert TEXT[span.start:span.end] == span.text
    assert locate_span(TEXT, "liver lesion") is None


@pytest.mark.parametrize("over, message", [
    ({"laterality": "right"}, "laterality right contradicts"),
    ({"ct_finding": "osteolytic"}, "cannot occur in lymph_node"),
    ({"location_id": "left_armpit"}, "unknown taxonomy location"),
    ({"evidence": "a sentence the report does not contain"}, "not a verbatim quote"),
    ({"suv_max": -1.0}, "greater than or equal to 0"),
])
def test_invalid_answers_raise_messages_fit_for_a_repair_request(over, message):
    with pytest.raises(ValueError, match=message) as info:
        LLMAnswer.model_validate(_answer(**over)).to_report(TEXT, model="m", prompt_version="p")
    assert "findings.0" in str(info.value) or "findings[0]" in str(info.value)


def test_answer_with_extra_or_missing_keys_is_rejected():
    bad = _answer()
    bad["findings"][0]["comment"] = "x"
    with pytest.raises(ValidationError):
        LLMAnswer.model_validate(bad)
    missing = _answer()
    del missing["findings"][0]["suv_max"]
    with pytest.raises(ValidationError):
        LLMAnswer.model_validate(missing)
