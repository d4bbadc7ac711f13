"""Structured-output dialects: how the answer schema travels in a chat-completions request, and which one a
server takes.

OpenAI-compatible servers agree on ``/v1/chat/completions`` but not on how a JSON schema constrains the answer:

* ``json_schema`` — ``response_format={"type": "json_schema", "json_schema": {"name", "strict", "schema"}}``:
  OpenAI and vLLM;
* ``json_object_schema`` — ``response_format={"type": "json_object", "schema": {...}}``: llama.cpp's server and
  llama-cpp-python's (which accept ``type`` only as ``text`` or ``json_object``; ``json_schema`` is a
  validation error they answer with HTTP 500); the length limit goes as ``max_tokens`` here;
* ``structured_outputs`` — ``extra_body={"structured_outputs": {"json": {...}}}``: vLLM >= 0.12;
* ``guided_json`` — ``extra_body={"guided_json": {...}}``: vLLM before 0.12 (removed in 0.12).

``settings.llm.structured_output`` names one, or ``auto`` (default): ``DialectChoice`` tries them in the order
above and keeps the first the endpoint accepts; it moves on only when a refusal names the output format. The
choice is remembered per (endpoint, model) for the life of the process.

``classify(status, message)`` sorts an HTTP error: ``config`` (401/403/404: the whole batch is misconfigured),
``retry`` (429, 408/409, a 5xx that is not a validation error), ``rejected`` (any other 4xx, and a 5xx whose
body says validation or unsupported: sending it again cannot help).
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

DIALECTS = ("json_schema", "json_object_schema", "structured_outputs", "guided_json")

RETRY_STATUS = frozenset({408, 409, 429})  # plus every 5xx that is not a validation error
CONFIG_STATUS = frozenset({401, 403, 404})

_REJECTION = re.compile(r"validat|unsupported|not supported|not implemented|literal_error|input should be"
                        r"|extra_forbidden|extra inputs are not permitted|unknown (?:field|parameter|argument)"
                        r"|unrecognized|invalid", re.IGNORECASE)
_FORMAT = re.compile(r"response_format|json_schema|json_object|guided_json|structured_output|guided_decoding"
                     r"|\bschema\b|grammar", re.IGNORECASE)


def request_options(dialect: str, spec: dict[str, Any], max_tokens: int) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create`` that constrain the answer to ``spec["schema"]`` and
    its length to ``max_tokens``.

    ``spec`` is the ``{"name", "strict", "schema"}`` object of ``llm_json_schema()``. The length limit goes as
    ``max_completion_tokens`` (OpenAI, vLLM), except to llama.cpp servers, which know only ``max_tokens`` and
    silently ignore the other (an answer could then run to the end of the context).
    """
    schema = spec["schema"]
    limit = {"max_completion_tokens": max_tokens}
    if dialect == "json_schema":
        return {"response_format": {"type": "json_schema", "json_schema": spec}} | limit
    if dialect == "json_object_schema":
        return {"response_format": {"type": "json_object", "schema": schema}, "max_tokens": max_tokens}
    if dialect == "structured_outputs":
        return {"extra_body": {"structured_outputs": {"json": schema}}} | limit
    if dialect == "guided_json":
        return {"extra_body": {"guided_json": schema}} | limit
    raise ValueError(f"unknown structured-output dialect {dialect!r}; choose from {DIALECTS}")


def classify(status: int, message: str) -> str:
    """``config``, ``retry`` or ``rejected`` for an HTTP error status and its body's message."""
    if status in CONFIG_STATUS:
        return "config"
    if status in RETRY_STATUS:
        return "retry"
    if status >= 500:
        return "rejected" if _REJECTION.search(message) else "retry"
    return "rejected"


def names_output_format(message: str) -> bool:
    """Whether an error message is about the structured-output request (so another dialect may pass)."""
    return _FORMAT.search(message) is not None


# Per-process memory of what each endpoint accepted: (base_url, model) -> dialect.
_ACCEPTED: dict[tuple[str, str], str] = {}


def forget_accepted() -> None:
    """Drop what was learnt about endpoints (tests; a server replaced under the same URL)."""
    _ACCEPTED.clear()


@dataclass
class DialectChoice:
    """The dialect for one endpoint: configured, remembered, or found by trying (``auto``).

    While ``auto`` has not settled, requests go one at a time (``probe``) so a batch does not send every
    report in a dialect the server refuses.
    """

    endpoint: tuple[str, str]  # (base_url, model)
    configured: str = "auto"
    candidate: int = 0  # index into DIALECTS while probing
    probe: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __post_init__(self):
        if self.configured != "auto" and self.configured not in DIALECTS:
            raise ValueError(f"unknown structured-output dialect {self.configured!r}; choose from "
                             f"{('auto', *DIALECTS)}")

    @property
    def settled(self) -> str | None:
        if self.configured != "auto":
            return self.configured
        return _ACCEPTED.get(self.endpoint)

    @property
    def current(self) -> str:
        return self.settled or DIALECTS[self.candidate]

    def accepted(self, dialect: str) -> None:
        if self.configured == "auto":
            _ACCEPTED[self.endpoint] = dialect

    def next_after(self, dialect: str) -> str | None:
        """The dialect to try after ``dialect`` was refused, or None when there is none left (or configured)."""
        if self.configured != "auto" or self.settled is not None:
            return None
        i = DIALECTS.index(dialect) + 1
        if i >= len(DIALECTS):
            return None
        self.candidate = i
        return DIALECTS[i]
