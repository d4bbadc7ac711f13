"""What the LLM structuring backend raises: one ``PetcapError`` per way it can fail.

In a batch (``structure_reports``) a report that fails becomes a quarantine row and the rest goes on; a single
report (``structure_report``, ``petcap structure``) raises the error named by that row's reason:

* ``LLMUnavailable`` (``llm_unavailable``, a ``TransientError``: a retry later may pass) — the endpoint is
  unreachable, times out or keeps failing after the bounded retries;
* ``LLMRejected`` (``llm_rejected``) — the server refused the request for good (a 4xx, or a 5xx whose body
  says validation or unsupported, such as a structured-output dialect it does not speak); never retried;
* ``LLMInvalidOutput`` (``llm_invalid_output``) — the answer failed validation twice (after one repair);
* ``LLMConfigError`` (a ``UsageError``, exit 2) — 401/403/404: credentials, model name or URL are wrong,
  for every report, so the whole batch stops.

Messages carry status codes, error types and the endpoint without credentials, never report text or a
server's echo of it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from data_contracts.errors import PetcapError, TransientError, UsageError
from data_contracts.tables import QuarantineRow

_HINTS = {
    "llm_unavailable": "start the model server (vllm serve / python -m llama_cpp.server) or fix "
                       "PETCAP_LLM__BASE_URL, then rerun; --backend rules works offline",
    "llm_rejected": "the server refused the request; if it names the output format set "
                    "PETCAP_LLM__STRUCTURED_OUTPUT=auto (or the dialect the server speaks)",
    "llm_invalid_output": "the model's answer did not validate after one repair; try a larger model",
}


class LLMConfigError(UsageError):
    """The endpoint refuses every request (credentials, model name or URL): fix ``settings.llm``."""


class StructuringFailed(PetcapError):
    """One report could not be structured; ``quarantine`` says why."""

    def __init__(self, quarantine: QuarantineRow):
        self.quarantine = quarantine
        super().__init__(quarantine.detail, path=quarantine.source, reason=quarantine.reason,
                         hint=_HINTS.get(quarantine.reason))


class LLMUnavailable(StructuringFailed, TransientError):
    """The LLM endpoint could not be reached or kept failing after the bounded retries."""


class LLMRejected(StructuringFailed):
    """The LLM server refused the request for good."""


class LLMInvalidOutput(StructuringFailed):
    """The model's answer was not a valid structured report, even after one repair request."""


_BY_REASON = {"llm_unavailable": LLMUnavailable, "llm_rejected": LLMRejected,
              "llm_invalid_output": LLMInvalidOutput}


def failure(quarantine: QuarantineRow) -> StructuringFailed:
    """The error to raise for a quarantined report (by its reason)."""
    return _BY_REASON.get(quarantine.reason, StructuringFailed)(quarantine)


def endpoint_for_humans(base_url: str) -> str:
    """``base_url`` without user, password, query or fragment: safe in a message or a log line."""
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"
