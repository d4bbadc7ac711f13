"""Training of the two models (stage 6) and caption prediction: the functions the CLI and the flows call.

    train_localizer(settings, config="demo", overrides=None, progress=True) -> TrainResult
    train_captioner(settings, config="demo", overrides=None, progress=True) -> TrainResult
    predict(settings, checkpoint, split="test") -> pandas.DataFrame

Recipes are named config files (``models/training/configs/*.toml``; ``available_configs()``). The names are
resolved lazily, so importing ``models.training.loop`` alone (a torchrun worker) does not load MONAI.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainResult": "models.training.loop",
    "train_localizer": "models.training.localizer",
    "train_captioner": "models.training.captioner",
    "predict": "models.training.captioner",
    "available_configs": "models.training.configs",
}
__all__ = ["TrainResult", "available_configs", "predict", "train_captioner", "train_localizer"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'models.training' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    return getattr(module, "available" if name == "available_configs" else name)
