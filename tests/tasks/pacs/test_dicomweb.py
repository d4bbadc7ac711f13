"""The DICOMweb client: credentials from the settings on the session (never printed), and HTTP failures as
petcap errors that say whether a retry can help."""

from __future__ import annotations

import pytest
import requests

from data_contracts.errors import PetcapError
from data_contracts.settings import PacsSettings, Settings
from tasks.pacs import dicomweb


def test_token_or_basic_auth_goes_on_the_session_and_never_into_text(monkeypatch):
    monkeypatch.setenv("PETCAP_PACS__URL", "http://127.0.0.1:1/dicom-web")
    monkeypatch.setenv("PETCAP_PACS__TOKEN", "s3cret-token")
    settings = Settings()
    c = dicomweb.client(settings.pacs)
    assert c._session.headers["Authorization"] == "Bearer s3cret-token"
    assert "s3cret-token" not in repr(settings) and "s3cret-token" not in settings.model_dump_json()
    basic = dicomweb.client(PacsSettings(url="http://127.0.0.1:1/dicom-web", username="u", password="pw"))
    assert basic._session.auth == ("u", "pw") and "Authorization" not in basic._session.headers


def test_no_pacs_configured_is_one_clear_error():
    with pytest.raises(PetcapError) as e:
        dicomweb.client(PacsSettings())
    assert e.value.reason == "no_pacs" and "PETCAP_PACS__URL" in str(e.value) and e.value.exit_code == 1


def _http_error(status: int) -> requests.HTTPError:
    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(response=response)


@pytest.mark.parametrize("raised, reason, retryable", [
    (requests.ConnectionError("refused"), "pacs_unreachable", True),
    (requests.Timeout("slow"), "pacs_unreachable", True),
    (_http_error(503), "pacs_unreachable", True),
    (_http_error(400), "stow_rejected", False),
    (_http_error(409), "stow_rejected", False),
])
def test_failures_say_whether_a_retry_can_help(raised, reason, retryable):
    def fail():
        raise raised

    with pytest.raises(PetcapError) as e:
        dicomweb.call("STOW-RS", fail, "S0123456789ab", rejected="stow_rejected")
    assert (e.value.reason, e.value.retryable) == (reason, retryable)
    assert str(e.value).startswith("S0123456789ab: ")
