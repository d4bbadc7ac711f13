"""Up-front checks of the ``petcap`` command: a mistake that no retry can fix is named in one line, in seconds,
before Prefect, torch or MLflow are imported.

Each check raises ``UsageError`` (the command or a setting is wrong) or ``PrerequisiteError`` (something that
must exist or run first is missing) with the file at fault and what to do; the CLI prints it and exits 2.
The flows repeat the checks that matter for deployments as their first tasks (without retries), so a
deployment run fails as fast and as clearly. Only light imports here: the settings, the error base, the
config folder listing.
"""

from __future__ import annotations

import os
from pathlib import Path

from data_contracts.errors import PrerequisiteError, UsageError
from data_contracts.settings import Settings, setting_env_names, unknown_settings

RUN_ORDER = "synth/deliver -> refresh -> train localizer -> train captioner -> promote -> evaluate -> caption"


def check_environment(environ: dict[str, str] | None = None) -> None:
    """Every ``PETCAP_`` variable set is a real setting (a misspelt one would otherwise change nothing)."""
    unknown = unknown_settings(environ)
    if unknown:
        known = setting_env_names()
        guesses = []
        for name in unknown:
            close = [k for k in known if k.replace("__", "_") == name.upper().replace("__", "_")]
            guesses.append(f"{name} (did you mean {close[0]}?)" if close else name)
        raise UsageError(f"unknown setting {', '.join(guesses)}", reason="unknown_setting",
                         hint="nested settings use two underscores, e.g. PETCAP_LLM__MODEL; see "
                              "data_contracts/settings.py")


def require_file(path: str | Path, what: str, hint: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"no such {what}", path=str(path), reason="missing_file", hint=hint)
    return path


def require_dir(path: str | Path, what: str, hint: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise UsageError(f"no such {what}", path=str(path), reason="missing_folder", hint=hint)
    return path


def require_writable(target: str | Path, what: str) -> None:
    """A local path (or ``file://`` URL) that can be created or written; other URLs are left to their store."""
    text = str(target)
    if "://" in text and not text.startswith("file://"):
        return
    path = Path(text.removeprefix("file://")).expanduser().absolute()
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"the {what} cannot be written here ({probe} is not a writable folder)", path=str(path),
                         reason="not_writable", hint="choose a folder you can write, or fix its permissions")


def require_manifest(raw_dir: str | Path) -> Path:
    manifest = Path(raw_dir) / "manifest.csv"
    if not manifest.is_file():
        raise PrerequisiteError("no manifest.csv in the drop folder", path=str(manifest), reason="missing_manifest",
                                hint="point --raw (PETCAP_RAW_DIR) at a delivery folder, e.g. one `petcap synth` "
                                     "wrote")
    return manifest


def require_table(settings: Settings, name: str, hint: str) -> Path:
    path = settings.table_path(name)
    if not path.exists():
        raise PrerequisiteError(f"no {name} table in this home", path=str(path), reason="missing_table",
                                hint=f"check --home (PETCAP_HOME, now {settings.home}); {hint}")
    return path


def require_config(kind: str, name: str, overrides: dict[str, str]) -> None:
    """The config file exists and the overrides name known sections (and known keys where that is cheap to
    know); the flow loads the whole config again as its first task."""
    from models.training.configs import (
        AugmentConfig,
        ConfigError,
        ConfigNotFound,
        LoopConfig,
        MethodConfig,
        available,
    )

    if not name.endswith(".toml") and name not in available():
        raise ConfigNotFound(f"no training config {name!r}", reason="unknown_config",
                             hint=f"use --config {' | '.join(available())}")
    sections = {"loop": LoopConfig, "augment": AugmentConfig, "model": None}
    if kind == "captioner":
        sections["method"] = MethodConfig
    for key in overrides:
        parts = key.split(".")
        if parts[0] == kind:
            parts = parts[1:]
        if len(parts) != 2 or parts[0] not in sections:
            raise ConfigError(f"--set {key}: not a <section>.<field> of the {kind} config", reason="unknown_key",
                              hint=f"sections: {', '.join(sections)}; e.g. --set loop.epochs=3")
        cls = sections[parts[0]]
        if cls is not None and parts[1] not in cls.__dataclass_fields__:
            raise ConfigError(f"--set {key}: {parts[0]} has no field {parts[1]!r}", reason="unknown_key",
                              hint=f"fields: {', '.join(cls.__dataclass_fields__)}")


def require_localizer(settings: Settings) -> None:
    if not settings.localizer_checkpoint.is_file():
        raise PrerequisiteError("no trained localizer in this home", path=str(settings.localizer_checkpoint),
                                reason="run_order", hint=f"train the localizer first: `petcap train localizer` "
                                                         f"(run order: {RUN_ORDER})")


def require_registry(settings: Settings) -> None:
    """A local registry (the default sqlite file) exists; a tracking server is asked later by the flow."""
    if settings.tracking.uri is None and not settings.tracking_db.is_file():
        raise PrerequisiteError("no model is registered in this home", path=str(settings.tracking_db),
                                reason="run_order", hint=f"train first: `petcap train localizer`, `petcap train "
                                                         f"captioner` (run order: {RUN_ORDER})")
