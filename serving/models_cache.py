"""Models for serving, shared and bounded: a registered version's checkpoint files are downloaded ONCE per home
(``<home>/models/<registry>/<registered model>/v<version>``, not into every study's output folder), and the
loaded models are kept per process in a small LRU (a service or a Dask worker captions many studies with one
load).
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections import OrderedDict
from pathlib import Path

from data_contracts.settings import Settings
from models.inference import CaptionPipeline

MAX_LOADED = 2  # pipelines kept per process (a champion and a candidate); each holds both networks
_LOADED: OrderedDict[tuple, CaptionPipeline] = OrderedDict()


def models_dir(settings: Settings) -> Path:
    """``<home>/models/<registry>/<registered model>``: versions are immutable within one registry, so a
    downloaded version is reused; the registry's URI (hashed: it may hold credentials) keeps two apart."""
    registry = hashlib.sha256(settings.registry_uri.encode()).hexdigest()[:12]
    return settings.home / "models" / registry / settings.tracking.registered_model


def champion_version(settings: Settings) -> str:
    """The version holding the champion alias; ``PrerequisiteError`` (run promote first) when none does."""
    from tasks.tracking import champion_version as champion

    return champion(settings)


def version_files(settings: Settings, version: str) -> dict[str, Path]:
    """A registered version's two checkpoints, downloaded once into the shared models folder (a complete
    folder is renamed into place, so a crash mid-download leaves nothing half there)."""
    final = models_dir(settings) / f"v{version}"
    names = {"localizer": final / "localizer.pt", "captioner": final / "captioner.pt"}
    if all(p.is_file() for p in names.values()):
        return names  # already here: no registry call (nor MLflow import)
    from tasks.tracking import version_checkpoints

    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=final.parent))
    try:
        found = version_checkpoints(settings, version, tmp / "download")
        staged = tmp / "files"
        staged.mkdir()
        for kind, path in found.items():
            shutil.move(str(path), staged / f"{kind}.pt")
        if final.exists():  # an incomplete folder of an older layout
            shutil.rmtree(final)
        staged.rename(final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return names


def resolve_models(settings: Settings, model_version: str | None = None, localizer: str | None = None,
                   captioner: str | None = None) -> dict:
    """{"version", "localizer", "captioner"}: the checkpoint files given, else the registered version given,
    else the champion's; registered files come from the shared models folder."""
    if localizer and captioner:
        return {"version": None, "localizer": str(localizer), "captioner": str(captioner)}
    version = str(model_version) if model_version else champion_version(settings)
    files = version_files(settings, version)
    return {"version": version, "localizer": str(files["localizer"]), "captioner": str(files["captioner"])}


def load_pipeline(localizer: str | Path, captioner: str | Path, device: str = "cpu") -> CaptionPipeline:
    """Both models, loaded once per process and file version (path, size, mtime), at most ``MAX_LOADED`` kept."""
    key = (device, *(_stamp(Path(p)) for p in (localizer, captioner)))
    if key in _LOADED:
        _LOADED.move_to_end(key)
        return _LOADED[key]
    pipeline = CaptionPipeline.load(localizer, captioner, device)
    _LOADED[key] = pipeline
    while len(_LOADED) > MAX_LOADED:
        _LOADED.popitem(last=False)
    return pipeline


def _stamp(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return str(path.resolve()), st.st_size, st.st_mtime_ns
