"""The ``openai`` structuring backend against a real local HTTP server speaking /v1/chat/completions.

Every test starts ``FakeOpenAIServer`` on 127.0.0.1 (ephemeral port), scripts its answers, runs the backend
through the official ``openai`` client and asserts on what the server received and what came back.
Timeouts and backoff are shortened through settings so the module runs in a few seconds.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from data_contracts import tables, taxonomy
from data_contracts.findings import CTFinding, Tracer, UptakeGrade
from data_contracts.settings import LLMSettings, Settings
from data_contracts.structured_report import LLMAnswer, llm_json_schema
from tasks.structure import llm, prompts
from tasks.structure.cache import ResponseCache, cache_dir_for
from tasks.structure.phi_scrubber import scrub
from tasks.structure.llm import (
    LLMConfigError,
    StructureResult,
    StructuringFailed,
    structure_report,
    structure_reports,
)
from tests.tasks.structure.fake_openai_server import (
    FakeOpenAIServer,
    Reply,
    answer,
    error,
)

REPORT = """Patient: Jane Doe   MRN: 12345678   DOB: 03/14/1961
FDG PET/CT whole body, 370 MBq, 60 min p.i.
FINDINGS:
Enlarged left axillary lymph node measuring 2.1 x 1.5 cm with intense FDG uptake, SUVmax 12.4.
Osteolytic lesion in the T7 vertebral body, SUVmax 6.1.
No abnormal uptake in the liver.
Mrs. Doe tolerated the procedure well."""

AXILLA = "Enlarged left axillary lymph node measuring 2.1 x 1.5 cm with intense FDG uptake, SUVmax 12.4."
T7 = "Osteolytic lesion in the T7 vertebral body, SUVmax 6.1."


def finding(evidence=AXILLA, location_id="ln_axillary_l", laterality="left", ct_finding="enlarged_lymph_node",
            tracer="FDG", uptake_grade="intense", suv_max=12.4, size_mm=21.0) -> dict:
    return dict(evidence=evidence, location_id=location_id, laterality=laterality, ct_finding=ct_finding,
                tracer=tracer, uptake_grade=uptake_grade, suv_max=suv_max, size_mm=size_mm)


VALID = [finding(), finding(T7, "vertebra_t7", "midline", "osteolytic", "FDG", "moderate", 6.1, None)]


@pytest.fixture
def server():
    with FakeOpenAIServer() as s:
        yield s


def make_settings(tmp_path, server, **llm) -> Settings:
    base = dict(backend="openai", base_url=server.base_url, model="test-model", timeout_s=2.0, max_retries=2,
                backoff_base_s=0.01, backoff_max_s=0.05, concurrency=4, cache_dir=tmp_path / "llm-cache")
    return Settings(home=tmp_path, llm=LLMSettings(**(base | llm)))


def test_valid_answer_becomes_structured_report(tmp_path, server):
    server.script(answer(VALID))
    [result] = structure_reports([REPORT], make_settings(tmp_path, server))

    assert isinstance(result, StructureResult) and result.ok
    assert (result.requests, result.retries, result.repaired, result.cached) == (1, 0, False, False)
    rep = result.report
    assert (rep.backend, rep.model, rep.prompt_version) == ("openai", "test-model", prompts.PROMPT_VERSION)
    ax, t7 = rep.findings
    assert (ax.location_id, ax.laterality, ax.ct_finding) == ("ln_axillary_l", taxonomy.Laterality.left,
                                                             CTFinding.enlarged_lymph_node)
    assert (ax.pet_finding.tracer, ax.pet_finding.grade, ax.suv_max, ax.size_mm) == (
        Tracer.fdg, UptakeGrade.intense, 12.4, 21.0)
    assert (t7.location_id, t7.ct_finding, t7.suv_max, t7.size_mm) == ("vertebra_t7", CTFinding.osteolytic, 6.1, None)
    # Spans index the scrubbed text (what the model saw).
    scrubbed = scrub(REPORT)
    for f, quote in ((ax, AXILLA), (t7, T7)):
        assert scrubbed[f.span.start:f.span.end] == quote == f.span.text

    # The request is what an OpenAI-compatible server expects.
    [body] = server.bodies
    assert body["model"] == "test-model" and body["temperature"] == 0
    rf = body["response_format"]
    assert rf["type"] == "json_schema"
    assert rf["json_schema"]["strict"] is True
    assert rf["json_schema"]["schema"] == llm_json_schema()["schema"]
    roles = [m["role"] for m in body["messages"]]
    assert roles[0] == "system" and roles[-1] == "user"
    assert roles[1:-1] == ["user", "assistant"] * len(prompts.EXAMPLES)  # the few-shot pairs
    assert scrubbed in body["messages"][-1]["content"]
    assert server.requests[0].headers["authorization"] == "Bearer EMPTY"


def test_invalid_json_then_repair_succeeds_with_two_requests(tmp_path, server):
    server.script(Reply(content='{"findings": [{"evidence": "Enlarged left'), answer(VALID))
    [result] = structure_reports([REPORT], make_settings(tmp_path, server))

    assert result.ok and result.repaired
    assert result.requests == 2 and len(server.requests) == 2
    assert [f.location_id for f in result.report.findings] == ["ln_axillary_l", "vertebra_t7"]
    repair = server.bodies[1]["messages"]
    # The repair request carries the rejected answer and quotes the validation error.
    assert repair[-2] == {"role": "assistant", "content": '{"findings": [{"evidence": "Enlarged left'}
    assert repair[-1]["role"] == "user" and "Invalid JSON" in repair[-1]["content"]
    assert repair[:-2] == server.bodies[0]["messages"]


@pytest.mark.parametrize("status", [500, 503, 429])
def test_transient_http_error_is_retried(tmp_path, server, status):
    server.script(error(status), answer(VALID))
    [result] = structure_reports([REPORT], make_settings(tmp_path, server))
    assert result.ok and (result.requests, result.retries) == (2, 1)
    assert len(server.requests) == 2


def test_retry_after_header_is_honoured(tmp_path, server):
    server.script(error(429, headers={"Retry-After": "0.3"}), answer(VALID))
    t0 = time.perf_counter()
    [result] = structure_reports([REPORT], make_settings(tmp_path, server, backoff_max_s=1.0))
    assert result.ok and result.retries == 1
    assert time.perf_counter() - t0 >= 0.3  # backoff alone would wait ~0.01 s


def test_timeout_is_retried_then_succeeds(tmp_path, server):
    server.script(answer(VALID, delay_s=1.5), answer(VALID))
    t0 = time.perf_counter()
    [result] = structure_reports([REPORT], make_settings(tmp_path, server, timeout_s=0.3))
    assert result.ok and (result.requests, result.retries) == (2, 1)
    assert time.perf_counter() - t0 < 1.2  # the slow answer was not waited for


def test_timeouts_beyond_max_retries_are_quarantined(tmp_path, server):
    server.script(*[answer(VALID, delay_s=1.5)] * 2)
    [result] = structure_reports([REPORT], make_settings(tmp_path, server, timeout_s=0.2, max_retries=1))
    assert not result.ok and (result.requests, result.retries) == (2, 1)
    q = result.quarantine
    assert (q.stage, q.reason) == ("structure", "llm_unavailable")
    assert "timeout" in q.detail and "2 attempt" in q.detail


def test_schema_violation_twice_is_quarantined_not_dropped(tmp_path, server):
    wrong_side = finding(laterality="right")  # ln_axillary_l is a left location
    unknown = finding(location_id="ln_axillary_left")
    server.script(answer([wrong_side]), answer([unknown]))
    settings = make_settings(tmp_path, server)
    [result] = structure_reports([REPORT], settings, items=["S0123456789ab"], sources=["reports/p1.txt"])

    assert result.report is None and result.repaired and result.requests == 2
    q = result.quarantine
    assert (q.stage, q.item, q.source, q.reason) == ("structure", "S0123456789ab", "reports/p1.txt",
                                                     "llm_invalid_output")
    assert "unknown taxonomy location id" in q.detail  # the second answer's error
    assert "contradicts ln_axillary_l" in q.detail  # the first answer's error
    assert "contradicts ln_axillary_l" in server.bodies[1]["messages"][-1]["content"]  # quoted in the repair
    assert not list((tmp_path / "llm-cache").rglob("*.json"))  # a failure is not cached
    assert len(tables.QUARANTINE.frame([q])) == 1  # fits the quarantine table
    with pytest.raises(StructuringFailed, match="llm_invalid_output"):
        server.script(answer([wrong_side]), answer([wrong_side]))
        structure_report(REPORT, settings)


def test_evidence_not_in_report_triggers_repair(tmp_path, server):
    paraphrase = finding(evidence="A big node in the left armpit.")
    server.script(answer([paraphrase]), answer(VALID))
    [result] = structure_reports([REPORT], make_settings(tmp_path, server))
    assert result.ok and result.requests == 2
    assert "not a verbatim quote" in server.bodies[1]["messages"][-1]["content"]


def test_hard_wrapped_quote_is_located(tmp_path, server):
    text = "FINDINGS: Osteolytic lesion in the T7\nvertebral body, SUVmax 6.1."
    server.script(answer([finding(T7, "vertebra_t7", "midline", "osteolytic", "FDG", "moderate", 6.1, None)]))
    report = structure_report(text, make_settings(tmp_path, server))
    span = report.findings[0].span
    assert (span.start, span.end) == (10, len(text)) and "\n" in span.text


def _suv_report(i: int) -> str:
    return f"Patient: John Roe{i}\nOsteolytic lesion in the T7 vertebral body, SUVmax {5 + i}.1."


def _answer_by_suv(body, n) -> Reply:
    """Answer each report with its own SUV, slowly, so concurrent requests overlap."""
    suv = re.search(r"SUVmax (\d+\.\d)", body["messages"][-1]["content"]).group(1)
    ev = f"Osteolytic lesion in the T7 vertebral body, SUVmax {suv}."
    return answer([finding(ev, "vertebra_t7", "midline", "osteolytic", "FDG", "moderate", float(suv), None)],
                  delay_s=0.15)


def test_concurrency_limit_is_honoured(tmp_path):
    with FakeOpenAIServer(responder=_answer_by_suv) as server:
        texts = [_suv_report(i) for i in range(8)]
        results = structure_reports(texts, make_settings(tmp_path, server, concurrency=2))
    assert len(server.requests) == 8
    assert server.max_in_flight == 2  # never more than the limit, and the limit was used
    assert [r.report.findings[0].suv_max for r in results] == [5.1 + i for i in range(8)]  # order kept


def test_cache_hit_makes_no_request(tmp_path, server):
    settings = make_settings(tmp_path, server)
    server.script(answer(VALID))
    [first] = structure_reports([REPORT], settings)
    assert first.ok and len(server.requests) == 1

    [again] = structure_reports([REPORT], settings)
    assert again.cached and again.requests == 0 and len(server.requests) == 1
    assert again.report == first.report

    [entry] = list((tmp_path / "llm-cache").rglob("*.json"))
    record = json.loads(entry.read_text())
    assert (record["model"], record["prompt_version"]) == ("test-model", prompts.PROMPT_VERSION)
    assert record["schema_version"] == llm.schema_version()
    assert "Jane" not in entry.read_text() and "12345678" not in entry.read_text()

    # Another model is another key: asked again.
    server.script(answer(VALID))
    [other] = structure_reports([REPORT], make_settings(tmp_path, server, model="other-model"))
    assert not other.cached and other.report.model == "other-model" and len(server.requests) == 2


def test_cache_defaults_under_home_and_can_be_disabled(tmp_path, server):
    s = Settings(home=tmp_path, llm=LLMSettings(base_url=server.base_url))
    assert cache_dir_for(s) == tmp_path / "cache" / "llm"
    off = Settings(home=tmp_path, llm=LLMSettings(base_url=server.base_url, use_cache=False))
    assert cache_dir_for(off) is None
    server.script(answer(VALID), answer(VALID))
    settings = make_settings(tmp_path, server, use_cache=False, cache_dir=None)
    assert structure_reports([REPORT], settings)[0].requests == 1
    assert structure_reports([REPORT], settings)[0].requests == 1  # no cache: asked again
    assert len(server.requests) == 2
    assert not (tmp_path / "cache").exists()


def test_corrupt_cache_entry_is_a_miss(tmp_path, server):
    settings = make_settings(tmp_path, server)
    server.script(answer(VALID), answer(VALID))
    structure_reports([REPORT], settings)
    [entry] = list((tmp_path / "llm-cache").rglob("*.json"))
    entry.write_text("{truncated")
    [result] = structure_reports([REPORT], settings)
    assert result.ok and not result.cached and len(server.requests) == 2
    assert ResponseCache(tmp_path / "llm-cache").get(entry.stem) == result.report  # rewritten


def test_planted_phi_never_reaches_the_server(tmp_path, server):
    report = REPORT + ("\nReferring physician: Dr. Alan Grant, tel 020 7946 0958.\nPrior PET/CT 12 March 2020 "
                       "(accession ACC-20200312-0042) for Jane.")
    server.script(Reply(content="not json"), answer(VALID))  # two requests: the first and the repair
    [result] = structure_reports([report], make_settings(tmp_path, server))
    assert result.ok and len(server.requests) == 2
    planted = ["Jane", "Doe", "12345678", "03/14/1961", "1961", "Alan", "Grant", "7946", "12 March 2020",
               "ACC-20200312-0042"]
    for rec in server.requests:
        raw = rec.raw.decode()
        sent = "".join(m["content"] for m in rec.body["messages"])
        for s in planted:
            assert s not in raw and s not in sent, s
        assert "Patient: [NAME]" in sent and "MRN: [ID]" in sent and "DOB: [DATE]" in sent
        assert "SUVmax 12.4" in sent and "2.1 x 1.5 cm" in sent and "370 MBq" in sent


def test_unknown_model_is_a_configuration_error(tmp_path):
    with FakeOpenAIServer(served_model="Qwen/Qwen2.5-7B-Instruct") as server:
        with pytest.raises(LLMConfigError, match="HTTP 404"):
            structure_reports([REPORT], make_settings(tmp_path, server, model="no-such-model"))
        assert len(server.requests) == 0  # refused before any answer


def test_wrong_api_key_is_a_configuration_error(tmp_path):
    with FakeOpenAIServer(api_key="s3cret") as server:
        with pytest.raises(LLMConfigError, match="HTTP 401"):
            structure_reports([REPORT], make_settings(tmp_path, server, api_key="wrong"))
        server.script(answer(VALID))
        assert structure_reports([REPORT], make_settings(tmp_path, server, api_key="s3cret"))[0].ok


def test_bad_request_is_quarantined_without_retry(tmp_path, server):
    server.script(error(400, error_type="invalid_request_error"))
    [result] = structure_reports([REPORT], make_settings(tmp_path, server))
    assert result.quarantine.reason == "llm_rejected" and result.requests == 1 and result.retries == 0
    assert result.quarantine.detail == f"HTTP 400 (invalid_request_error) from {server.base_url}"


def test_refusal_is_an_invalid_answer(tmp_path, server):
    server.script(Reply(content=None, refusal="I can't help with that."), answer(VALID))
    [result] = structure_reports([REPORT], make_settings(tmp_path, server))
    assert result.ok and result.repaired and result.requests == 2


def test_mixed_batch_keeps_one_result_per_text(tmp_path, server):
    texts = [REPORT, "FINDINGS: No abnormal FDG uptake.", REPORT.replace("12.4", "12.5")]
    server.script(answer(VALID), answer([]), Reply(content="x"), Reply(content="y"))
    results = structure_reports(texts, make_settings(tmp_path, server, concurrency=1))
    assert [r.ok for r in results] == [True, True, False]
    assert results[1].report.findings == ()
    assert results[2].quarantine.reason == "llm_invalid_output"
    assert results[2].quarantine.item.startswith("report-")  # named by a hash, not by text


def test_backoff_grows_with_jitter_and_is_capped():
    for attempt in range(6):
        d = min(1.0, 0.1 * 2 ** attempt)
        delays = [llm._backoff(attempt, 0.1, 1.0, None) for _ in range(200)]
        assert all(d / 2 <= x <= d for x in delays)
        assert len(set(delays)) > 100  # jittered
    assert llm._backoff(0, 0.1, 1.0, retry_after=0.7) >= 0.7
    assert llm._backoff(0, 0.1, 1.0, retry_after=60) <= 1.0


def test_few_shot_answers_validate_against_their_reports():
    for ex in prompts.EXAMPLES:
        assert scrub(ex.report) == ex.report  # examples look like scrubbed reports already
        report = LLMAnswer.model_validate(ex.answer).to_report(ex.report, model="m",
                                                               prompt_version=prompts.PROMPT_VERSION)
        assert len(report.findings) == len(ex.answer["findings"]) > 0
        for f, raw in zip(report.findings, ex.answer["findings"], strict=True):
            assert f.span.text == raw["evidence"]
    ids = {loc.id for loc in taxonomy.locations()}
    system = prompts.system_prompt()
    assert all(f"\n{i}: " in system for i in ids)  # every location id is explained to the model
    assert prompts.prompt_fingerprint() == prompts.prompt_fingerprint()


def test_sync_entry_point_works_inside_a_running_event_loop(tmp_path, server):
    import asyncio

    server.script(answer(VALID))

    async def caller():
        return structure_reports([REPORT], make_settings(tmp_path, server))

    [result] = asyncio.run(caller())
    assert result.ok
