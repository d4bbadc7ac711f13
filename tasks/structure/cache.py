"""Response cache of the LLM structuring backend: one JSON file per (scrubbed text, prompt, model, schema).

Structuring a cohort is slow and, against a hosted API, paid for; a rerun must not ask again for what
it already has. The key is ``sha256`` over the scrubbed report text, the prompt version and fingerprint, the
model name and the answer-schema version, so changing any of them misses the cache instead of serving an
answer to a different question. Only valid ``StructuredReport``s are stored (a quarantined text is asked
again on the next run). Each record carries model, prompt version and schema version beside the report.

Layout: ``<folder>/<key[:2]>/<key>.json``; writes go to a temporary file in the same folder and are renamed
into place, so a crash never leaves a half-written entry and concurrent writers of one key are harmless. An
unreadable or mismatched entry counts as a miss and is overwritten. The files hold scrubbed text only (the
spans' sentences), never the original report.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from data_contracts.atomic import atomic_open
from data_contracts.structured_report import StructuredReport

if TYPE_CHECKING:
    from data_contracts.settings import Settings

log = logging.getLogger(__name__)


def cache_dir_for(settings: Settings) -> Path | None:
    """Where the cache lives (``Settings.llm_cache_dir``); None when caching is disabled."""
    return settings.llm_cache_dir


def cache_key(text: str, *, prompt_version: str, prompt_fingerprint: str, model: str, schema_version: str) -> str:
    payload = json.dumps([text, prompt_version, prompt_fingerprint, model, schema_version], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


class ResponseCache:
    """Get / put ``StructuredReport``s by key under ``folder``; a ``None`` folder disables the cache."""

    def __init__(self, folder: Path | str | None):
        self.folder = Path(folder) if folder is not None else None

    def path(self, key: str) -> Path:
        if self.folder is None:
            raise ValueError("the response cache is disabled")
        return self.folder / key[:2] / f"{key}.json"

    def get(self, key: str) -> StructuredReport | None:
        if self.folder is None:
            return None
        path = self.path(key)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            if record.get("key") != key:
                raise ValueError("key mismatch")
            return StructuredReport.model_validate(record["report"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, ValidationError) as e:
            log.warning("ignoring unreadable LLM cache entry %s (%s)", path.name, type(e).__name__)
            return None

    def put(self, key: str, report: StructuredReport, *, schema_version: str) -> Path | None:
        if self.folder is None:
            return None
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = {
            "key": key,
            "model": report.model,
            "prompt_version": report.prompt_version,
            "schema_version": schema_version,
            "stored_at": datetime.now(timezone.utc).isoformat(),
            "report": report.model_dump(mode="json"),
        }
        with atomic_open(path) as f:
            f.write(json.dumps(record, ensure_ascii=False).encode("utf-8"))
        return path
