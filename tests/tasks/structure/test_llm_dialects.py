"""Structured-output dialects and failure kinds of the ``openai`` backend, against local servers that validate
requests the way llama-cpp-python, vLLM and strict servers do."""

from __future__ import annotations

import pickle
import socket

import pytest

from data_contracts.errors import PetcapError, TransientError
from data_contracts.settings import LLMSettings, Settings
from data_contracts.structured_report import llm_json_schema
from tasks.structure import backend
from tasks.structure.llm import structure_report, structure_reports
from tasks.structure.llm_dialects import DIALECTS, classify, names_output_format, request_options
from tasks.structure.llm_errors import LLMRejected, LLMUnavailable, endpoint_for_humans
from tests.tasks.structure.fake_openai_server import FakeOpenAIServer, Reply, answer, error

REPORT = "FINDINGS: Osteolytic lesion in the T7 vertebral body, SUVmax 6.1.\nIMPRESSION: Bone metastasis."
T7 = "Osteolytic lesion in the T7 vertebral body, SUVmax 6.1."
VALID = [dict(evidence=T7, location_id="vertebra_t7", laterality="midline", ct_finding="osteolytic", tracer="FDG",
              uptake_grade="moderate", suv_max=6.1, size_mm=None)]
SCHEMA = llm_json_schema()["schema"]


def settings(tmp_path, base_url, **llm) -> Settings:
    base = dict(backend="openai", base_url=base_url, model="test-model", timeout_s=2.0, max_retries=2,
                backoff_base_s=0.01, backoff_max_s=0.05, concurrency=4, cache_dir=None)
    return Settings(home=tmp_path, llm=LLMSettings(**(base | llm)))


def texts(n: int) -> list[str]:
    return [REPORT.replace("Bone", f"Bone ({i})") for i in range(n)]


def how_sent(body: dict) -> str:
    """The dialect a request body was sent in."""
    if "guided_json" in body:
        return "guided_json"
    if "structured_outputs" in body:
        return "structured_outputs"
    return {"json_schema": "json_schema", "json_object": "json_object_schema"}[body["response_format"]["type"]]


def test_request_options_carry_the_same_schema_in_each_dialect():
    spec = llm_json_schema()
    assert request_options("json_schema", spec, 500) == {
        "response_format": {"type": "json_schema", "json_schema": spec}, "max_completion_tokens": 500}
    assert request_options("json_object_schema", spec, 500) == {  # llama.cpp knows only max_tokens
        "response_format": {"type": "json_object", "schema": SCHEMA}, "max_tokens": 500}
    assert request_options("structured_outputs", spec, 500) == {
        "extra_body": {"structured_outputs": {"json": SCHEMA}}, "max_completion_tokens": 500}
    assert request_options("guided_json", spec, 500) == {"extra_body": {"guided_json": SCHEMA},
                                                         "max_completion_tokens": 500}
    with pytest.raises(ValueError, match="unknown structured-output dialect"):
        request_options("grammar", spec, 500)


@pytest.mark.parametrize(("status", "message", "kind"), [
    (401, "invalid api key", "config"), (404, "model not found", "config"),
    (429, "slow down", "retry"), (408, "", "retry"), (503, "overloaded", "retry"), (500, "CUDA error", "retry"),
    (400, "context length exceeded", "rejected"), (422, "anything", "rejected"), (413, "too large", "rejected"),
    (500, "[{'type': 'literal_error', 'loc': ('body', 'response_format', 'type')}]", "rejected"),
    (500, "1 validation error for ChatCompletionRequest", "rejected"),
    (501, "response_format json_schema is not supported", "rejected"),
])
def test_classify(status, message, kind):
    assert classify(status, message) == kind


def test_names_output_format():
    assert names_output_format("'loc': ('body', 'response_format', 'type')")
    assert names_output_format("extra_forbidden ('body', 'guided_json')")
    assert not names_output_format("Requested tokens (9000) exceed context window of 4096")


def test_auto_falls_back_to_json_object_schema_on_a_llama_cpp_server_and_remembers_it(tmp_path):
    with FakeOpenAIServer(responder=lambda body, n: answer(VALID, delay_s=0.2),
                          response_format_types=("text", "json_object")) as server:
        s = settings(tmp_path, server.base_url)
        results = structure_reports(texts(5), s)
        assert all(r.ok for r in results) and sum(r.retries for r in results) == 0
        # one refused probe in json_schema (HTTP 500, not retried), then every report in json_object + schema
        assert [how_sent(r.body) for r in server.refused] == ["json_schema"]
        assert [how_sent(b) for b in server.bodies] == ["json_object_schema"] * 5
        assert all(b["response_format"]["schema"] == SCHEMA and b["max_tokens"] == s.llm.max_completion_tokens
                   and "max_completion_tokens" not in b for b in server.bodies)
        assert server.max_in_flight >= 2  # once settled, requests run concurrently again

        structure_reports(texts(7)[5:], s)  # remembered for this endpoint: no second probe
        assert len(server.refused) == 1 and len(server.bodies) == 7


def test_auto_reaches_structured_outputs_on_a_server_without_response_format_schemas(tmp_path):
    # a vLLM >= 0.12 stand-in that takes neither response_format form but structured_outputs in the body
    def responder(body, n):
        return answer(VALID) if "structured_outputs" in body else error(400, error_type="BadRequestError")

    with FakeOpenAIServer(responder=responder, response_format_types=("text",)) as server:
        [result] = structure_reports([REPORT], settings(tmp_path, server.base_url))
    assert result.ok
    assert [how_sent(r.body) for r in server.refused] == ["json_schema", "json_object_schema"]
    assert [how_sent(b) for b in server.bodies] == ["structured_outputs"]
    assert server.bodies[0]["structured_outputs"] == {"json": SCHEMA} and "response_format" not in server.bodies[0]


def test_auto_gives_up_as_rejected_when_no_dialect_is_accepted(tmp_path):
    with FakeOpenAIServer(responder=lambda body, n: answer(VALID), response_format_types=("text",),
                          forbid_extra=True) as server:
        [result] = structure_reports([REPORT], settings(tmp_path, server.base_url))
    assert [how_sent(r.body) for r in server.refused] == list(DIALECTS)  # each tried once, none retried
    q = result.quarantine
    assert q.reason == "llm_rejected" and result.retries == 0
    assert q.detail == f"HTTP 400 (invalid_request_error) from {server.base_url}; refused structured-output " \
                       "dialect guided_json"


@pytest.mark.parametrize("dialect", DIALECTS)
def test_a_configured_dialect_is_sent_as_configured(tmp_path, dialect):
    with FakeOpenAIServer(responder=lambda body, n: answer(VALID)) as server:
        [result] = structure_reports([REPORT], settings(tmp_path, server.base_url, structured_output=dialect))
    assert result.ok and [how_sent(b) for b in server.bodies] == [dialect] and server.refused == []


def test_a_configured_dialect_the_server_refuses_is_rejected_not_retried_not_unavailable(tmp_path):
    with FakeOpenAIServer(responder=lambda body, n: answer(VALID),
                          response_format_types=("text", "json_object")) as server:
        s = settings(tmp_path, server.base_url, structured_output="json_schema")
        results = structure_reports(texts(3), s)
        assert [r.quarantine.reason for r in results] == ["llm_rejected"] * 3
        assert len(server.refused) == 3 and server.bodies == []  # one request each, no retries
        assert "refused structured-output dialect json_schema" in results[0].quarantine.detail

        with pytest.raises(LLMRejected) as e:
            structure_report(REPORT, s)
    err = e.value
    assert isinstance(err, PetcapError) and not err.retryable and err.exit_code == 1
    line = str(err)
    assert "\n" not in line and line.startswith("report text: llm_rejected: HTTP 500 (internal_server_error)")
    assert "PETCAP_LLM__STRUCTURED_OUTPUT" in line
    assert "literal_error" not in line  # the server's message (which may echo input) is never repeated


def test_a_5xx_validation_error_is_not_retried_but_a_plain_5xx_is(tmp_path):
    with FakeOpenAIServer() as server:
        server.script(Reply(status=500, error_type="validation_error"))  # type names validation, message too
        [r1] = structure_reports([REPORT], settings(tmp_path, server.base_url, structured_output="json_schema"))
        server.script(error(502), answer(VALID))
        [r2] = structure_reports([REPORT], settings(tmp_path, server.base_url, structured_output="json_schema"))
    assert r1.quarantine.reason == "llm_rejected" and (r1.requests, r1.retries) == (1, 0)
    assert r2.ok and (r2.requests, r2.retries) == (2, 1)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_endpoint_is_unavailable_after_bounded_retries_and_stops_the_batch_early(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    s = settings(tmp_path, url, concurrency=1, max_retries=2)
    results = structure_reports(texts(4), s)
    assert [r.quarantine.reason for r in results] == ["llm_unavailable"] * 4
    assert (results[0].requests, results[0].retries) == (3, 2)  # bounded: 1 + max_retries
    assert [r.requests for r in results[1:]] == [0, 0, 0]  # not sent once the endpoint was found down
    assert "connection error" in results[0].quarantine.detail and "3 attempt" in results[0].quarantine.detail
    assert results[1].quarantine.detail == f"not sent: {url} unreachable earlier in this batch"

    with pytest.raises(LLMUnavailable) as e:
        backend.structure_text(REPORT, s)
    err = e.value
    assert isinstance(err, TransientError) and err.retryable and err.exit_code == 1
    line = str(err)
    assert "\n" not in line and line.startswith(f"report text: llm_unavailable: {url}: connection error")
    assert "start the model server" in line
    again = pickle.loads(pickle.dumps(err))  # crosses process boundaries with its fields
    assert type(again) is LLMUnavailable and str(again) == line and again.quarantine == err.quarantine


def test_messages_never_carry_credentials_from_the_url():
    assert endpoint_for_humans("http://user:pw@127.0.0.1:8000/v1?key=abc") == "http://127.0.0.1:8000/v1"
    assert endpoint_for_humans("http://[::1]:8000/v1") == "http://[::1]:8000/v1"


def test_cli_prints_one_line_and_exits_non_zero_when_the_llm_is_unreachable(tmp_path, monkeypatch, capsys):
    from data_contracts.settings import get_settings
    from flows import cli

    report = tmp_path / "report.txt"
    report.write_text(REPORT)
    url = f"http://127.0.0.1:{_closed_port()}/v1"
    for name, value in (("PETCAP_HOME", str(tmp_path)), ("PETCAP_LLM__BASE_URL", url),
                        ("PETCAP_LLM__MAX_RETRIES", "1"), ("PETCAP_LLM__BACKOFF_BASE_S", "0.01")):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        code = cli.main(["structure", "--backend", "openai", str(report)])
    finally:
        get_settings.cache_clear()
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    [line] = [ln for ln in err.splitlines() if "error:" in ln]
    assert line.startswith(f"petcap structure: error: report text: llm_unavailable: {url}: connection error")
