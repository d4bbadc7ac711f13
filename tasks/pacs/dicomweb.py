"""A DICOMweb client for the configured PACS: QIDO-RS, WADO-RS and STOW-RS through ``dicomweb-client``.

Authentication (a bearer token or HTTP basic) is set on the HTTP session from the settings, which read it from the
environment; neither the credentials nor the request headers are ever logged. Failures become petcap errors:
``PacsUnreachable`` (a connection error, a timeout or a 5xx: may pass on a retry) and ``PacsRejected`` (a 4xx:
the server refused what was sent; retrying the same request cannot help).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import requests
from dicomweb_client.api import DICOMwebClient

from data_contracts.errors import PetcapError, TransientError
from data_contracts.settings import PacsSettings

T = TypeVar("T")


class PacsUnreachable(TransientError):
    def __init__(self, message: str, path: str | None = None):
        super().__init__(message, path=path, reason="pacs_unreachable",
                         hint="check that the PACS is up and PETCAP_PACS__URL is right, then run again")


class PacsRejected(PetcapError):
    def __init__(self, message: str, path: str | None = None, reason: str = "pacs_rejected"):
        super().__init__(message, path=path, reason=reason,
                         hint="the PACS refused the request; see its log for why")


def client(cfg: PacsSettings) -> DICOMwebClient:
    """A client on ``cfg.url`` with the configured authentication; raises ``PetcapError`` when no URL is set."""
    if not cfg.url:
        raise PetcapError("no PACS is configured", reason="no_pacs", hint="set PETCAP_PACS__URL to its DICOMweb root")
    session = requests.Session()
    if cfg.token is not None:
        session.headers["Authorization"] = f"Bearer {cfg.token.get_secret_value()}"
    elif cfg.username and cfg.password is not None:
        session.auth = (cfg.username, cfg.password.get_secret_value())
    c = DICOMwebClient(url=cfg.url.rstrip("/"), session=session, timeout=cfg.timeout_s)
    c.set_http_retry_params(retry=False)  # retries are the caller's (Prefect's), on PacsUnreachable only
    return c


def call(what: str, fn: Callable[[], T], item: str | None = None, rejected: str = "pacs_rejected") -> T:
    """Run one DICOMweb request; translate transport and HTTP failures into petcap errors naming ``what``."""
    try:
        return fn()
    except (requests.ConnectionError, requests.Timeout) as e:
        raise PacsUnreachable(f"{what}: the PACS did not answer ({type(e).__name__})", item) from None
    except requests.HTTPError as e:
        status = e.response.status_code if e.response is not None else 0
        if status >= 500:
            raise PacsUnreachable(f"{what}: the PACS answered HTTP {status}", item) from None
        raise PacsRejected(f"{what}: the PACS answered HTTP {status}", item, reason=rejected) from None
