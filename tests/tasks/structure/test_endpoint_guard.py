"""Endpoint guard: loopback and allow-listed LLM endpoints only, unless remote use is switched on."""

from __future__ import annotations

import pytest

from data_contracts.errors import UsageError
from data_contracts.settings import LLMSettings, Settings
from tasks.structure import llm
from tasks.structure.endpoint_guard import BadEndpoint, RemoteLLMRefused, check_endpoint


def settings(**llm_fields) -> Settings:
    return Settings(llm=LLMSettings(**llm_fields))


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://127.8.9.10/v1", "http://localhost:8000/v1",
                                 "http://LOCALHOST/v1", "http://[::1]:8000/v1", "http://[::ffff:127.0.0.1]/v1"])
def test_loopback_is_allowed(url):
    assert check_endpoint(url, settings()) == "loopback"


@pytest.mark.parametrize("url", ["https://api.openai.com/v1", "http://10.1.2.3:8000/v1",
                                 "http://127.0.0.1.nip.io/v1", "http://localhost.example.com/v1",
                                 "http://user:pw@vllm.example.org/v1"])
def test_anything_else_is_refused_by_default(url):
    with pytest.raises(RemoteLLMRefused, match="allow_remote_llm|ALLOW_REMOTE_LLM"):
        check_endpoint(url, settings())


def test_refusal_message_does_not_echo_credentials():
    with pytest.raises(RemoteLLMRefused) as e:
        check_endpoint("http://user:pw@vllm.example.org/v1", settings())
    assert "pw" not in str(e.value) and "vllm.example.org" in str(e.value)


def test_allowed_hosts_by_name_address_or_network():
    s = settings(allowed_hosts=("vllm.radiology.local", "10.20.0.0/16", "192.168.1.7"))
    assert check_endpoint("http://VLLM.radiology.local:8000/v1", s) == "allow-listed"
    assert check_endpoint("http://10.20.3.4:8000/v1", s) == "allow-listed"
    assert check_endpoint("http://192.168.1.7/v1", s) == "allow-listed"
    for url in ("http://10.21.0.1/v1", "http://radiology.local/v1", "https://api.openai.com/v1"):
        with pytest.raises(RemoteLLMRefused):
            check_endpoint(url, s)


def test_remote_allowed_only_with_the_flag_and_only_over_https():
    s = settings(allow_remote_llm=True)
    assert check_endpoint("https://api.openai.com/v1", s) == "remote"
    with pytest.raises(RemoteLLMRefused, match="plain http"):
        check_endpoint("http://api.example.com/v1", s)


def test_not_an_http_url():
    with pytest.raises(BadEndpoint, match="http"):
        check_endpoint("ftp://127.0.0.1/v1", settings())
    with pytest.raises(BadEndpoint) as e:
        check_endpoint("127.0.0.1:8000", settings())
    assert isinstance(e.value, UsageError) and e.value.exit_code == 2 and e.value.reason == "llm_config"


def test_backend_refuses_a_remote_url_before_creating_a_client(monkeypatch, tmp_path):
    created = []
    monkeypatch.setattr(llm, "AsyncOpenAI", lambda *a, **k: created.append(k))
    s = Settings(home=tmp_path, llm=LLMSettings(backend="openai", base_url="https://api.openai.com/v1"))
    with pytest.raises(RemoteLLMRefused):
        llm.structure_reports(["Patient: Jane Doe. Lytic T7 lesion."], s)
    assert created == []
    assert check_endpoint(s.llm.base_url, s.model_copy(
        update={"llm": s.llm.model_copy(update={"allow_remote_llm": True})})) == "remote"
