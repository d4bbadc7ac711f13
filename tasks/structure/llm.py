"""The ``openai`` structuring backend: report text → ``StructuredReport`` through an OpenAI-compatible LLM.

Works against ``vllm serve <model>`` inside the hospital (the intended deployment) and against OpenAI itself
where that is allowed; endpoint, model, key and limits come from ``settings.llm``.

For each report text, in order:

1. ``endpoint_guard.check_endpoint`` has already vetted ``base_url`` (before the client exists), and the text is
   scrubbed with ``phi_scrubber.scrub``; nothing else is ever sent. Spans of the result refer to the scrubbed text
   (``phi_scrubber.scrub_detailed(text).to_original`` maps them back).
2. Cache lookup (``cache.ResponseCache``), keyed by the scrubbed text, prompt version and fingerprint, model and
   answer-schema version. A hit makes no request.
3. One chat completion with the versioned prompt (``prompts``), temperature 0 and structured output: the
   ``LLMAnswer`` JSON schema in the dialect the server speaks (``llm_dialects``: OpenAI/vLLM
   ``json_schema``, llama.cpp ``json_object`` + ``schema``, vLLM ``structured_outputs`` / ``guided_json``;
   ``llm.structured_output``, ``auto`` by default, finds it from the server's answer and remembers it), so
   grammar-constrained decoding keeps the answer in the vocabulary. Requests run concurrently under
   ``asyncio.Semaphore(llm.concurrency)``. 429, 408/409, 5xx that are not validation errors, timeouts and
   connection errors are retried here (the client has ``max_retries=0``) with exponential backoff and
   jitter — ``backoff_base_s * 2**k`` halved-to-full at random, capped at ``backoff_max_s``, never shorter
   than a ``Retry-After`` — up to ``llm.max_retries`` times. Once the endpoint is found unreachable, the
   batch's remaining reports are not sent (each is quarantined ``llm_unavailable`` at once).
4. The answer is validated into a ``StructuredReport``: JSON → ``LLMAnswer`` (pydantic) → taxonomy checks
   (laterality matches the location, CT finding possible in its system) → each ``evidence`` quote located
   in the scrubbed text (exactly, else ignoring case and whitespace runs; the first occurrence) → ``TextSpan``.
5. An invalid answer gets exactly one repair request that quotes the validation error; if that answer is
   invalid too, the text becomes a quarantine record (stage ``structure``, reason ``llm_invalid_output``).
   Retries exhausted → ``llm_unavailable``; the server refusing the request (a 4xx, or a 5xx whose body
   says validation or unsupported) → ``llm_rejected``, never retried. A text is never dropped silently:
   every input gets a ``StructureResult`` holding a report or a quarantine row; ``structure_report`` raises
   the matching ``llm_errors`` class (all ``PetcapError``s, so the CLI prints one line). Bad credentials, an
   unknown model or a wrong URL (401/403/404) raise ``LLMConfigError`` for the whole batch.

Nothing here logs report text: log lines carry counts, status codes and cache keys only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

import openai
from openai import AsyncOpenAI
from pydantic import ValidationError

from data_contracts.settings import Settings
from data_contracts.structured_report import (
    CONTRACT_VERSION,
    LLMAnswer,
    StructuredReport,
    llm_json_schema,
)
from data_contracts.tables import QuarantineRow
from tasks.structure import prompts
from tasks.structure.cache import ResponseCache, cache_dir_for, cache_key
from tasks.structure.endpoint_guard import check_endpoint
from tasks.structure.llm_dialects import DialectChoice, classify, names_output_format, request_options
from tasks.structure.llm_errors import LLMConfigError, StructuringFailed, endpoint_for_humans, failure
from tasks.structure.phi_scrubber import scrub

log = logging.getLogger(__name__)

EXTRACTOR_VERSION = "openai-1.0.0"
STAGE = "structure"
__all__ = ["LLMConfigError", "StructureResult", "StructuringFailed", "astructure_reports", "structure_report",
           "structure_reports"]


@dataclass(frozen=True)
class StructureResult:
    """What became of one report text: a report, or the quarantine record saying why there is none."""

    report: StructuredReport | None = None
    quarantine: QuarantineRow | None = None
    requests: int = 0  # HTTP requests sent for this text (0: answered from the cache)
    retries: int = 0  # of those, retries after 429 / 5xx / timeout / connection error
    repaired: bool = False  # a repair request was needed
    cached: bool = False

    def __post_init__(self):
        if (self.report is None) == (self.quarantine is None):
            raise ValueError("a StructureResult holds exactly one of report and quarantine")

    @property
    def ok(self) -> bool:
        return self.report is not None


@cache
def schema_version() -> str:
    """The answer schema's identity: contract version plus a hash of the schema sent to the model."""
    rendered = json.dumps(llm_json_schema(), sort_keys=True)
    return f"{CONTRACT_VERSION}+{hashlib.sha256(rendered.encode()).hexdigest()[:12]}"


@cache
def _schema_spec() -> dict:
    return llm_json_schema()


# ----------------------------------------------------------------------------------------------------------
# Entry points


def structure_reports(
    texts: Sequence[str],
    settings: Settings,
    *,
    items: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    cache_dir: Path | None = None,
) -> list[StructureResult]:
    """Structure many report texts; one result per text, in order (see the module docstring).

    ``items`` / ``sources`` name each text in quarantine records (pseudonymous study id, report path
    relative to the drop folder); without them a text is named by a hash of its scrubbed form.
    ``cache_dir`` overrides ``settings.llm.cache_dir``.
    """
    return _run(astructure_reports(texts, settings, items=items, sources=sources, cache_dir=cache_dir))


def structure_report(text: str, settings: Settings, *, cache_dir: Path | None = None) -> StructuredReport:
    """Structure one report text; raises a ``StructuringFailed`` subclass (with the quarantine row) if it cannot:
    ``LLMUnavailable``, ``LLMRejected`` or ``LLMInvalidOutput``."""
    result = structure_reports([text], settings, cache_dir=cache_dir)[0]
    if result.report is None:
        raise failure(result.quarantine)
    return result.report


async def astructure_reports(
    texts: Sequence[str],
    settings: Settings,
    *,
    items: Sequence[str] | None = None,
    sources: Sequence[str] | None = None,
    cache_dir: Path | None = None,
) -> list[StructureResult]:
    """Async form of ``structure_reports`` (for callers that already run an event loop)."""
    for name, seq in (("items", items), ("sources", sources)):
        if seq is not None and len(seq) != len(texts):
            raise ValueError(f"{name} has {len(seq)} entries for {len(texts)} texts")
    check_endpoint(settings.llm.base_url, settings)  # before any client exists
    folder = cache_dir if cache_dir is not None else cache_dir_for(settings)
    cfg = settings.llm
    async with AsyncOpenAI(base_url=cfg.base_url, api_key=cfg.api_key.get_secret_value(), timeout=cfg.timeout_s,
                           max_retries=0) as client:
        worker = _Worker(client, settings, ResponseCache(folder))
        tasks = [asyncio.create_task(worker.structure(text, items[i] if items else None,
                                                      sources[i] if sources else None))
                 for i, text in enumerate(texts)]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
    n_ok = sum(r.ok for r in results)
    log.info("structured %d report(s) with %s: %d ok (%d cached), %d quarantined, %d request(s), %d retr(y/ies)",
             len(results), cfg.model, n_ok, sum(r.cached for r in results), len(results) - n_ok,
             sum(r.requests for r in results), sum(r.retries for r in results))
    return list(results)


def _run(coro):
    """Run a coroutine to completion from sync code, also when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


# ----------------------------------------------------------------------------------------------------------
# One batch's worker: shared client, semaphore and cache


class _Unavailable(Exception):
    """Retries exhausted on retryable failures."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable  # connection errors only: the endpoint is down, not just slow


class _Rejected(Exception):
    """The server refused this request for good (e.g. 400: context too long, an unknown response_format)."""

    def __init__(self, message: str, about_format: bool = False):
        super().__init__(message)
        self.about_format = about_format  # the refusal names the structured-output request


class _InvalidAnswer(ValueError):
    """The model's answer is not a usable LLMAnswer for this text; the message is fit to send back."""


@dataclass
class _Tally:
    requests: int = 0
    retries: int = 0
    repaired: bool = False


@dataclass
class _Worker:
    client: AsyncOpenAI
    settings: Settings
    cache: ResponseCache
    semaphore: asyncio.Semaphore = field(init=False)
    dialect: DialectChoice = field(init=False)
    where: str = field(init=False)  # the endpoint as messages name it (no credentials)
    down: str | None = field(default=None, init=False)  # why the endpoint was found unreachable

    def __post_init__(self):
        cfg = self.settings.llm
        self.semaphore = asyncio.Semaphore(cfg.concurrency)
        self.dialect = DialectChoice((cfg.base_url, cfg.model), cfg.structured_output)
        self.where = endpoint_for_humans(cfg.base_url)

    async def structure(self, text: str, item: str | None, source: str | None) -> StructureResult:
        cfg = self.settings.llm
        scrubbed = scrub(text)
        digest = hashlib.sha256(scrubbed.encode("utf-8")).hexdigest()
        item = item or f"report-{digest[:12]}"
        key = cache_key(scrubbed, prompt_version=prompts.PROMPT_VERSION,
                        prompt_fingerprint=prompts.prompt_fingerprint(), model=cfg.model,
                        schema_version=schema_version())
        hit = self.cache.get(key)
        if hit is not None:
            return StructureResult(report=hit, cached=True)

        tally = _Tally()

        def quarantined(reason: str, detail: str) -> StructureResult:
            log.warning("report %s quarantined: %s", item, reason)
            row = QuarantineRow(stage=STAGE, item=item, source=source or "report text", reason=reason,
                                detail=detail, at=datetime.now(timezone.utc))
            return StructureResult(quarantine=row, requests=tally.requests, retries=tally.retries,
                                   repaired=tally.repaired)

        if self.down is not None:
            return quarantined("llm_unavailable", f"not sent: {self.down}")
        messages = prompts.build_messages(scrubbed)
        try:
            answer = await self._complete(messages, tally)
            try:
                report = self._validate(answer, scrubbed)
            except _InvalidAnswer as first:
                tally.repaired = True
                log.info("report %s: invalid answer, sending one repair request", item)
                answer2 = await self._complete(prompts.repair_messages(messages, answer, str(first)), tally)
                try:
                    report = self._validate(answer2, scrubbed)
                except _InvalidAnswer as second:
                    return quarantined("llm_invalid_output",
                                       _clip(f"invalid after one repair request: {second} "
                                             f"(first answer: {first})"))
        except _Unavailable as e:
            if e.unreachable and self.down is None:
                self.down = f"{self.where} unreachable earlier in this batch"
            return quarantined("llm_unavailable", _clip(str(e)))
        except _Rejected as e:
            return quarantined("llm_rejected", _clip(str(e)))
        self.cache.put(key, report, schema_version=schema_version())
        return StructureResult(report=report, requests=tally.requests, retries=tally.retries,
                               repaired=tally.repaired)

    def _validate(self, answer: str, scrubbed: str) -> StructuredReport:
        """The answer as a StructuredReport for ``scrubbed``, or ``_InvalidAnswer`` naming what is wrong."""
        try:
            parsed = LLMAnswer.model_validate_json(answer)
            return parsed.to_report(scrubbed, model=self.settings.llm.model, prompt_version=prompts.PROMPT_VERSION,
                                    extractor_version=EXTRACTOR_VERSION)
        except ValueError as e:  # pydantic.ValidationError included
            raise _InvalidAnswer(_describe(e)) from None

    async def _complete(self, messages: list[dict[str, str]], tally: _Tally) -> str:
        """The answer text of one chat completion; while ``auto`` has not found the server's structured-output
        dialect, one request at a time tries them in turn."""
        if self.dialect.settled is not None:
            return await self._request(messages, tally)
        async with self.dialect.probe:
            while self.dialect.settled is None:  # else another report's request found it meanwhile
                dialect = self.dialect.current
                try:
                    answer = await self._request(messages, tally, dialect)
                except _Rejected as e:
                    nxt = self.dialect.next_after(dialect) if e.about_format else None
                    if nxt is None:
                        raise
                    log.info("LLM endpoint %s refused structured-output dialect %s (%s); trying %s", self.where,
                             dialect, e, nxt)
                    continue
                self.dialect.accepted(dialect)
                log.info("LLM endpoint %s takes structured-output dialect %s", self.where, dialect)
                return answer
        return await self._request(messages, tally)

    async def _request(self, messages: list[dict[str, str]], tally: _Tally, dialect: str | None = None) -> str:
        """The answer text of one chat completion, retrying transient failures; invalid shapes become ''."""
        cfg = self.settings.llm
        dialect = dialect or self.dialect.current
        attempt = 0
        while True:
            try:
                async with self.semaphore:
                    if self.down is not None and attempt == 0:  # found down while this report waited
                        raise _Unavailable(f"not sent: {self.down}", unreachable=True)
                    tally.requests += 1
                    completion = await self.client.chat.completions.create(
                        model=cfg.model,
                        messages=messages,
                        temperature=0,
                        **request_options(dialect, _schema_spec(), cfg.max_completion_tokens),
                    )
                return _answer_text(completion)
            except openai.APIStatusError as e:
                status, message = e.status_code, _error_message(e)
                kind = classify(status, message)
                if kind == "config":
                    raise LLMConfigError(
                        f"LLM endpoint {self.where} answered HTTP {status} ({_error_code(e)})",
                        reason="llm_config",
                        hint=f"check llm.base_url, llm.model ({cfg.model!r}) and llm.api_key") from None
                if kind == "rejected":
                    about_format = names_output_format(message)
                    what = f"; refused structured-output dialect {dialect}" if about_format else ""
                    raise _Rejected(f"HTTP {status} ({_error_code(e)}) from {self.where}{what}",
                                    about_format=about_format) from None
                why, retry_after, unreachable = f"HTTP {status}", _retry_after(e), False
            except openai.APITimeoutError:
                why, retry_after, unreachable = f"timeout after {cfg.timeout_s:g} s", None, False  # slow, not down
            except openai.APIConnectionError as e:
                why, retry_after, unreachable = f"connection error ({type(e.__cause__ or e).__name__})", None, True
            if attempt >= cfg.max_retries or self.down is not None:
                raise _Unavailable(f"{self.where}: {why}; gave up after {attempt + 1} attempt(s)", unreachable)
            delay = _backoff(attempt, cfg.backoff_base_s, cfg.backoff_max_s, retry_after)
            log.warning("LLM request failed (%s); retry %d/%d in %.2f s", why, attempt + 1, cfg.max_retries, delay)
            await asyncio.sleep(delay)
            attempt += 1
            tally.retries += 1


def _answer_text(completion) -> str:
    """The message content; a refusal or a cut-off answer is returned as-is so validation names it."""
    if not getattr(completion, "choices", None):
        return ""
    choice = completion.choices[0]
    message = choice.message
    if getattr(message, "refusal", None):
        return json.dumps({"refusal": message.refusal})
    return message.content or ""


def _backoff(attempt: int, base: float, cap: float, retry_after: float | None) -> float:
    """Exponential backoff with jitter: uniform in [d/2, d], d = min(cap, base * 2**attempt)."""
    d = min(cap, base * 2 ** attempt)
    delay = d / 2 + random.uniform(0, d / 2)
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay


def _retry_after(e: openai.APIStatusError) -> float | None:
    try:
        value = e.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, ValueError):
        return None


def _error_message(e: openai.APIStatusError) -> str:
    """The error body's message, to classify the error only: never logged or stored (it may echo the input)."""
    body = e.body
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("detail") or body)
    else:
        message = str(body if body is not None else e.message)
    return " ".join(str(v) for v in (getattr(e, "type", None), getattr(e, "code", None), message) if v)


def _error_code(e: openai.APIStatusError) -> str:
    """The error's type/code from the body, never its message (a server may echo the input)."""
    parts = [str(v) for v in (getattr(e, "type", None), getattr(e, "code", None)) if v]
    return ", ".join(parts) or "no error code"


def _describe(e: ValueError) -> str:
    """A validation error as short lines ``where: what``, without echoing input values."""
    prefix = ""
    if not isinstance(e, ValidationError) and isinstance(e.__cause__, ValidationError):
        prefix = str(e).split(":", 1)[0] + ": "  # "findings[2]: " from LLMAnswer.to_report
        e = e.__cause__
    if isinstance(e, ValidationError):
        errs = e.errors(include_url=False, include_input=False)
        whole = "finding" if prefix else "answer"
        parts = [f"{'.'.join(map(str, err['loc'])) or whole}: {err['msg']}" for err in errs[:8]]
        more = f"; and {len(errs) - 8} more" if len(errs) > 8 else ""
        return prefix + "; ".join(parts) + more
    return str(e)


def _clip(s: str, n: int = 1000) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"
