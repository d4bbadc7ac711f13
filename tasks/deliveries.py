"""The cumulative delivery log: every study any drop folder delivered, and the only way a study leaves.

A hospital delivers studies in drop folders (``raw/2026-11``, ``raw/2026-12``, or ``petcap synth --out``),
each with its own ``manifest.csv``; a refresh pointed at a folder of such folders takes in each of them
(``find_drops``). Deliveries are kept as delivered: a new delivery is a new folder. ``register_delivery``
adds a drop's studies to ``tables/deliveries``; studies of earlier drops stay, so a refresh pointed at a new
folder adds to the dataset instead of replacing it. Linking reads every registered drop's manifest and
reports, not only the current one.

A study leaves the dataset only when it is withdrawn here — ``petcap withdraw STUDY_KEY --reason TEXT``, or
``--allow-removals`` when a drop's manifest no longer lists a study it delivered — and its samples then get
tombstones carrying that reason. A study that merely vanished from its drop's manifest is refused
(``RemovalRefused``) before anything changes.

The log holds pseudonyms (``S`` + 12 hex) and drop folder paths only, never the hospital's study keys.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic import SecretStr

from data_contracts.errors import PetcapError, PrerequisiteError, UsageError
from data_contracts.settings import RawLayout, Settings
from data_contracts.tables import DELIVERIES, DeliveryRow, ManifestRow
from tasks.ingest.manifest import read_manifest
from tasks.ingest.pseudonym import study_pseudonym

log = logging.getLogger(__name__)


class RemovalRefused(PetcapError):
    """A step would remove rows for studies nobody withdrew; nothing was changed."""

    exit_code = 2


class RefreshFailed(PetcapError):
    """Too many studies, reports or LLM calls failed in one refresh; no derived table was changed."""


@dataclass
class DeliverySummary:
    drop: str
    studies: int  # in this drop's manifest
    added: int = 0  # newly registered
    redelivered: int = 0  # registered from another drop before; this drop now delivers them
    unchanged: int = 0
    withdrawn: list[str] = field(default_factory=list)  # withdrawn by this call (--allow-removals)
    registered: int = 0  # active studies in the log after this call, all drops

    def __str__(self) -> str:
        return (f"deliveries: {self.drop}: {self.studies} studies in its manifest; {self.added} added, "
                f"{self.redelivered} redelivered, {self.unchanged} unchanged, {len(self.withdrawn)} withdrawn; "
                f"{self.registered} active studies registered from all drops")


def too_many_failures(failed: int, total: int, settings: Settings) -> bool:
    """The refresh gate: more than ``refresh.max_failed_share`` of ``total`` failed, and at least
    ``refresh.min_failures`` of them (or all: a server down fails a batch of two as surely as one of two hundred)."""
    cfg = settings.refresh
    return total > 0 and failed > cfg.max_failed_share * total and (failed >= cfg.min_failures or failed == total)


def drop_path(raw_dir: Path | str) -> str:
    """How the log names a drop folder: its absolute path."""
    return str(Path(raw_dir).expanduser().absolute())


def find_drops(raw_dir: Path | str) -> list[Path]:
    """The drop folders under ``raw_dir``: ``raw_dir`` itself when it holds a manifest, else its subfolders that
    do (one per delivery: ``deliveries/2026-11``, ``deliveries/2026-12``), in name order. ``PrerequisiteError``
    when there is none."""
    root = Path(raw_dir).expanduser().absolute()
    if RawLayout(root).manifest.is_file():
        return [root]
    drops = sorted(p for p in root.iterdir() if RawLayout(p).manifest.is_file()) if root.is_dir() else []
    if not drops:
        raise PrerequisiteError("no manifest.csv in this folder or its subfolders", path=str(root),
                                reason="missing_manifest",
                                hint="point --raw (PETCAP_RAW_DIR) at a delivery folder, or at a folder holding one "
                                     "subfolder per delivery")
    return drops


def manifest_rows(drop: Path | str, key: SecretStr | str) -> list[ManifestRow]:
    """A drop folder's valid manifest rows (``tasks.ingest.manifest.read_manifest``: a bad row is ingestion's
    rejection, not a delivered study); ``PrerequisiteError`` naming the file when there is none."""
    path = RawLayout(drop).manifest
    if not path.is_file():
        raise PrerequisiteError("no manifest.csv in this drop folder", path=str(path), reason="missing_manifest",
                                hint="point --raw (PETCAP_RAW_DIR) at a delivery folder, e.g. one `petcap synth` "
                                     "wrote")
    return read_manifest(path, key).rows  # rows ingestion rejects are not delivered studies


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_log(settings: Settings) -> list[DeliveryRow]:
    path = settings.table_path("deliveries")
    return DELIVERIES.records(DELIVERIES.read(path), source=str(path))


def active(settings: Settings) -> list[DeliveryRow]:
    return [r for r in read_log(settings) if r.withdrawn_at is None]


def _write(settings: Settings, rows: list[DeliveryRow]) -> None:
    DELIVERIES.write(DELIVERIES.frame(sorted(rows, key=lambda r: r.study_id)), settings.table_path("deliveries"))


def register_delivery(settings: Settings, raw_dir: Path | str | None = None,
                      allow_removals: bool | None = None) -> DeliverySummary:
    """Register the studies of drop folder ``raw_dir`` (default ``settings.raw_dir``) in the delivery log.

    Studies this drop registered earlier but its manifest no longer lists are refused (``RemovalRefused``,
    nothing written) unless ``allow_removals`` (default ``settings.refresh.allow_removals``), which withdraws
    them with reason ``absent_from_delivery``. Idempotent: the same drop again changes nothing.
    """
    allow = settings.refresh.allow_removals if allow_removals is None else allow_removals
    drop = drop_path(raw_dir or settings.raw_dir)
    rows = manifest_rows(drop, settings.pseudonym_key)
    sha = _sha256(RawLayout(drop).manifest)
    ids = {study_pseudonym(r.study_key, settings.pseudonym_key) for r in rows}
    logged = {r.study_id: r for r in read_log(settings)}
    summary = DeliverySummary(drop=drop, studies=len(ids))
    now = datetime.now(timezone.utc)
    changed = False
    for sid in sorted(ids):
        old = logged.get(sid)
        if old is None:
            logged[sid] = DeliveryRow(study_id=sid, drop=drop, manifest_sha256=sha, registered_at=now)
            summary.added += 1
            changed = True
        elif old.drop != drop:
            logged[sid] = old.model_copy(update={"drop": drop, "manifest_sha256": sha})
            summary.redelivered += 1
            changed = True
        else:
            summary.unchanged += 1
    missing = sorted(sid for sid, r in logged.items() if r.drop == drop and sid not in ids and r.withdrawn_at is None)
    if missing and not allow:
        raise RemovalRefused(
            f"{len(missing)} studies this drop delivered before are no longer in its manifest "
            f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}); nothing was changed",
            path=str(RawLayout(drop).manifest), reason="studies_absent",
            hint="restore the manifest, or withdraw them (`petcap withdraw STUDY_KEY --reason TEXT`), or rerun "
                 "with --allow-removals to withdraw them")
    for sid in missing:
        logged[sid] = logged[sid].model_copy(update={
            "withdrawn_at": now, "withdrawn_reason": f"absent_from_delivery: no longer in {drop}/manifest.csv "
                                                     f"(--allow-removals)"})
        summary.withdrawn.append(sid)
        changed = True
    if changed:
        _write(settings, list(logged.values()))
    summary.registered = sum(r.withdrawn_at is None for r in logged.values())
    log.info("%s", summary)
    return summary


def withdraw(settings: Settings, study_keys: list[str], reason: str) -> list[str]:
    """Mark studies (the hospital's study keys, as in a manifest) withdrawn; the next refresh removes their
    samples with tombstones carrying ``reason``. -> their pseudonyms. Unknown keys: ``UsageError``."""
    if not reason.strip():
        raise UsageError("a withdrawal needs a reason", hint="add --reason TEXT, e.g. 'consent withdrawn'")
    logged = {r.study_id: r for r in read_log(settings)}
    ids = [study_pseudonym(k, settings.pseudonym_key) for k in study_keys]
    unknown = [k for k, sid in zip(study_keys, ids) if sid not in logged]
    if unknown:
        raise UsageError(f"{len(unknown)} of the study keys were never delivered to this home",
                         path=str(settings.table_path("deliveries")), reason="unknown_study",
                         hint="check the keys against the drop folder's manifest.csv and --home")
    now = datetime.now(timezone.utc)
    for sid in ids:
        if logged[sid].withdrawn_at is None:
            logged[sid] = logged[sid].model_copy(update={"withdrawn_at": now, "withdrawn_reason": reason.strip()})
    _write(settings, list(logged.values()))
    return ids


def log_sha256(settings: Settings) -> str:
    """Hash of the delivery log's content: which studies, delivered by which manifest (by its hash, so moving the
    folders changes nothing), withdrawn or not; 'none' without a log."""
    rows = read_log(settings)
    if not rows:
        return "none"
    text = "\n".join(f"{r.study_id},{r.manifest_sha256},{r.withdrawn_reason or ''}"
                     for r in sorted(rows, key=lambda r: r.study_id))
    return hashlib.sha256(text.encode()).hexdigest()
