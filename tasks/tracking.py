"""MLflow tracking and registry: experiments per flow, configs as params, metrics per vendor and tracer,
reports / plots / checkpoints as artifacts, dataset lineage, and the one registered model.

Store: ``Settings.tracking_uri`` (default ``sqlite:///<home>/mlflow.db``; any MLflow server URI works), with
the registry at ``Settings.registry_uri`` and new experiments' artifacts under ``Settings.artifact_location``.

Registered model: the localizer and the captioner together, as ONE ``mlflow.pyfunc`` model
(``serving.pyfunc``); ``version_checkpoints`` downloads a version's two checkpoint files.

Nothing patient-identifying is logged: params come from configs (keys naming patients are refused), metrics
are numbers named by metric / vendor / tracer, tags are hashes and versions, and artifacts are reports and
tables that carry pseudonymous sample ids only.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import yaml
from mlflow import MlflowClient

from data_contracts.errors import PetcapError, PrerequisiteError
from data_contracts.settings import Settings
from data_contracts.taxonomy import TAXONOMY_VERSION

PARAM_VALUE_MAX = 6000  # MLflow's limit on a param value
# Config keys that may carry identities; a config holding one is a bug upstream, so it is refused, not logged.
_IDENTITY_KEY = re.compile(r"patient_?(name|id)|birth_?date|accession|(^|_)mrn($|_)|person_?name", re.IGNORECASE)


class TrackingError(PetcapError):
    """A run, experiment or model version that cannot be logged or found; the message says which."""


# ------------------------------------------------------------------------------------------------ setup
def configure(settings: Settings) -> MlflowClient:
    """Point MLflow (tracking and registry) at the settings' store; return a client for that store."""
    settings.home.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)


def experiment_name(settings: Settings, flow: str) -> str:
    return f"{settings.tracking.experiment_prefix}/{flow}"


def experiment_id(settings: Settings, flow: str) -> str:
    """The experiment of a flow (``train-localizer``, ``train-captioner``, ``evaluate``, ``promote``), created
    with its artifacts under ``Settings.artifact_location`` when new (a tracking server's own root when None)."""
    client = configure(settings)
    name = experiment_name(settings, flow)
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = settings.artifact_location  # None with a tracking server: its --serve-artifacts root
    return client.create_experiment(name, artifact_location=None if root is None else f"{root.rstrip('/')}/{flow}")


# ----------------------------------------------------------------------------------------------- params
def _plain(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if hasattr(value, "to_dict") and not isinstance(value, pd.DataFrame):
        return value.to_dict()
    return value


def flatten_params(config: Any, prefix: str = "") -> dict[str, str]:
    """A config (pydantic model, dataclass, dict, nested) -> ``{"loop.lr": "0.001", ...}`` as strings.

    Secrets (pydantic ``SecretStr``) are dumped masked by pydantic; keys that name patients are refused.
    """
    out: dict[str, str] = {}
    value = _plain(config)
    if isinstance(value, Mapping):
        for k, v in value.items():
            key = f"{prefix}.{k}" if prefix else str(k)
            if _IDENTITY_KEY.search(str(k)):
                raise TrackingError(f"config key {key!r} looks like patient data; it is not logged to MLflow")
            out.update(flatten_params(v, key))
        return out
    if isinstance(value, (list, tuple)):
        text = json.dumps([_plain(v) for v in value], default=str)
    else:
        text = str(value)
    return {prefix or "value": text[:PARAM_VALUE_MAX]}


# ---------------------------------------------------------------------------------------------- lineage
def split_version(settings: Settings) -> str:
    """Hash of the patient -> split assignment (pseudonyms only); 'none' before splits exist."""
    path = settings.table_path("splits")
    if not path.exists():
        return "none"
    df = pd.read_parquet(path, columns=["patient_id", "split"]).sort_values("patient_id")
    text = "\n".join(f"{p},{s}" for p, s in zip(df["patient_id"], df["split"]))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataset_version(settings: Settings) -> str:
    """Hash of the dataset a training reads: every current patch-sample row (sample, caption columns, patch
    store row and the volume version it was cut from) with its patient's split; 'none' before patches exist.
    The training flow takes it just before training starts, so the tag names what training actually read."""
    from tasks.patches.store import read_patch_samples

    if not settings.table_path("patch_samples").exists():
        return "none"
    df = read_patch_samples(settings)
    if not len(df):
        return "none"
    cols = ["sample_id", "row", "volume_version", "location_id", "ct_finding", "caption", "split"]
    text = df[cols].astype(str).sort_values("sample_id").to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def lineage_tags(settings: Settings) -> dict[str, str]:
    """Dataset lineage of a run: delivery-log hash, current dataset version (a training passes the version it
    read as the ``lineage.dataset_version`` tag instead), split version, taxonomy version, code commit."""
    from tasks.deliveries import log_sha256

    tags = {"lineage.delivery_log_sha256": log_sha256(settings),
            "lineage.dataset_version": dataset_version(settings),
            "lineage.split_version": split_version(settings), "lineage.taxonomy_version": TAXONOMY_VERSION}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False,
                                cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    tags["lineage.code_commit"] = commit or "unknown"
    return tags


def require_version(settings: Settings, version: str | int, client: MlflowClient | None = None):
    """The registered model version ``version``; ``PrerequisiteError`` listing the versions that exist."""
    from mlflow.exceptions import MlflowException

    client = client or configure(settings)
    name = settings.tracking.registered_model
    try:
        return client.get_model_version(name, str(version))
    except MlflowException:
        pass
    try:
        known = sorted(int(v.version) for v in client.search_model_versions(f"name='{name}'"))
    except MlflowException:
        known = []
    raise PrerequisiteError(
        f"model version {version} of {name} is not registered "
        f"({'versions: ' + ', '.join(map(str, known)) if known else 'no version is registered'})",
        reason="unknown_model_version",
        hint="pick one of those versions" if known else "train one first: `petcap train captioner`")


def champion_version(settings: Settings, client: MlflowClient | None = None) -> str:
    """The version holding the champion alias; ``PrerequisiteError`` (run promote first) when none does."""
    from mlflow.exceptions import MlflowException

    client = client or configure(settings)
    name, alias = settings.tracking.registered_model, settings.tracking.champion_alias
    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        raise PrerequisiteError(f"no version of {name} holds the '{alias}' alias", reason="no_champion",
                                hint="run `petcap promote` first, or name a version with --model-version") from None


def latest_version(settings: Settings, client: MlflowClient | None = None) -> str:
    """The newest registered version; ``PrerequisiteError`` (train first) when none is registered."""
    client = client or configure(settings)
    name = settings.tracking.registered_model
    versions = client.search_model_versions(f"name='{name}'")
    if not versions:
        raise PrerequisiteError(f"no version of {name} is registered", reason="no_model_version",
                                hint="run `petcap train localizer` then `petcap train captioner` first")
    return str(max(int(v.version) for v in versions))


# ------------------------------------------------------------------------------------------------- runs
def log_params(client: MlflowClient, run_id: str, params: dict[str, str]) -> None:
    from mlflow.entities import Param

    items = [Param(k, v) for k, v in params.items()]
    for i in range(0, len(items), 100):
        client.log_batch(run_id, params=items[i:i + 100])


def log_metrics(client: MlflowClient, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    items = [Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None and np.isfinite(v)]
    for i in range(0, len(items), 500):
        client.log_batch(run_id, metrics=items[i:i + 500])


def start_training_run(settings: Settings, flow: str, config: Any, run_name: str | None = None,
                       tags: dict[str, str] | None = None) -> str:
    """A training run opened before training (config as params, lineage tags), so its epochs show while it is
    on (``epoch_metrics``); ``log_training_run(..., run_id=)`` closes it. -> the run id."""
    client = configure(settings)
    run = client.create_run(experiment_id(settings, flow), run_name=run_name,
                            tags={**lineage_tags(settings), "petcap.flow": flow, **(tags or {})})
    log_params(client, run.info.run_id, flatten_params(config))
    return run.info.run_id


def epoch_metrics(settings: Settings, run_id: str):
    """A training loop's ``on_epoch``: each epoch's losses and validation metrics as MLflow step metrics."""
    client = configure(settings)

    def log_epoch(row: dict) -> None:
        log_metrics(client, run_id, {f"epoch/{k}": v for k, v in row.items()
                                     if k != "epoch" and isinstance(v, (int, float))}, step=int(row["epoch"]))
    return log_epoch


def log_training_run(settings: Settings, flow: str, config: Any, result: Any = None,
                     checkpoints: Iterable[Path | str] = (), artifacts: Iterable[Path | str] = (),
                     metrics: dict[str, float] | None = None, run_name: str | None = None,
                     tags: dict[str, str] | None = None, run_id: str | None = None) -> str:
    """One training run: the full config as params, ``result`` (a ``TrainResult``) as metrics (final
    validation metrics, losses, throughput; the per-epoch history as steps), checkpoints and other files as
    artifacts, lineage tags. ``run_id``: a run ``start_training_run`` opened (its params and the epochs logged
    while training are kept) is completed instead of a new one. -> the run id."""
    client = configure(settings)
    opened = run_id is not None
    rid = run_id if opened else start_training_run(settings, flow, config, run_name, tags)
    try:
        final = dict(metrics or {})
        if result is not None:
            final.update({f"val/{k}": v for k, v in (result.metrics or {}).items()})
            final.update({"train_loss": result.train_loss, "val_loss": result.val_loss, "epochs": result.epochs,
                          "seconds": result.seconds, "samples_per_s": result.samples_per_s})
            for h in ([] if opened else (result.extra or {}).get("history", [])):
                log_metrics(client, rid, {f"epoch/{k}": v for k, v in h.items()
                                           if k != "epoch" and isinstance(v, (int, float))}, step=int(h["epoch"]))
            checkpoints = [*checkpoints, result.checkpoint]
        log_metrics(client, rid, final)
        for path in checkpoints:
            client.log_artifact(rid, str(path), artifact_path="checkpoints")
        for path in artifacts:
            path = Path(path)
            (client.log_artifacts if path.is_dir() else client.log_artifact)(rid, str(path), "artifacts")
    except Exception:
        client.set_terminated(rid, status="FAILED")
        raise
    client.set_terminated(rid)
    return rid


def log_evaluation(settings: Settings, result, split: str = "test", run_name: str | None = None,
                   config: Any = None, tags: dict[str, str] | None = None) -> str:
    """An evaluation: a parent run holding the report folder (HTML, Markdown, figures, tables) and one child
    run per configuration with every metric overall and per vendor / tracer (``bleu4``, ``bleu4/siemens``,
    ``bleu4/fdg``). -> the parent run id."""
    client = configure(settings)
    exp = experiment_id(settings, "evaluate")
    base_tags = {**lineage_tags(settings), "petcap.flow": "evaluate", "petcap.split": split, **(tags or {})}
    parent = client.create_run(exp, run_name=run_name or f"evaluate-{split}", tags=base_tags)
    pid = parent.info.run_id
    if config is not None:
        log_params(client, pid, flatten_params(config))
    for name, cfg in result.configs.items():
        child = client.create_run(exp, run_name=name, tags={**base_tags, "mlflow.parentRunId": pid,
                                                             "petcap.config": name})
        log_metrics(client, child.info.run_id, cfg.flat_metrics())
        client.set_terminated(child.info.run_id)
    if result.html_path is not None:
        client.log_artifacts(pid, str(Path(result.html_path).parent), artifact_path="report")
    client.set_terminated(pid)
    return pid


# ------------------------------------------------------------------------------------ registered model
# The registered model itself (``PetcapCaptionModel``, its signature, ``register_candidate``) is
# ``serving.pyfunc``: it composes inference (``models``) with the study intake (``tasks``).
def version_checkpoints(settings: Settings, version: str, dst: Path | None = None) -> dict[str, Path]:
    """Download a registered version's two checkpoints -> {"localizer": path, "captioner": path}."""
    client = configure(settings)
    mv = require_version(settings, version, client)
    dst = Path(dst or tempfile.mkdtemp(prefix=f"petcap-v{version}-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{mv.name}/{version}", dst_path=str(dst)))

    spec = yaml.safe_load((local / "MLmodel").read_text())
    artifacts = spec.get("flavors", {}).get("python_function", {}).get("artifacts", {})
    found = {}
    for kind in ("localizer", "captioner"):
        path = local / artifacts.get(kind, {}).get("path", f"missing-{kind}")
        if not path.is_file():
            raise TrackingError(f"model version {version} of {mv.name} has no {kind} checkpoint")
        found[kind] = path
    return found
