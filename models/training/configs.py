"""Named training configs: TOML files in ``models/training/configs/``, selected by name, with ``key=value`` overrides.

A config file has up to two model sections, each with sub-tables::

    base = "demo"                       # optional: start from that config, then apply this file on top
    [localizer.loop]    LoopConfig      (optimiser, schedule, batch, epochs, clipping, AMP, threads)
    [localizer.model]   models.localizer.LocalizerConfig fields
    [localizer.augment] AugmentConfig   (MONAI random rotation and scaling)
    [captioner.loop] / [captioner.model] (models.captioner.CaptionerConfig) / [captioner.augment]
    [captioner.method]  MethodConfig    (the ablation flags ``dws`` and ``cglp``, decoding)

Overrides use dotted keys below the model: ``--set loop.epochs=3`` or ``--set model.decoder=lstm`` (the model
section is implied by the command); values are parsed as TOML values (``3``, ``1e-4``, ``[16,16,16]``, ``true``),
anything unparsable is taken as a string. Unknown keys are refused, naming the key and the file.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from data_contracts.errors import UsageError

if TYPE_CHECKING:  # imported where needed, so the loop (and a torchrun worker) does not pay for MONAI
    from models.captioner import CaptionerConfig
    from models.localizer import LocalizerConfig

CONFIG_DIR = Path(__file__).parent / "configs"
MODELS = ("localizer", "captioner")


class ConfigError(UsageError, ValueError):
    """A training config, or an override of one, that cannot be used: the message names it and what is known."""


class ConfigNotFound(UsageError, FileNotFoundError):
    """No training config of that name: the hint lists the available ones."""


@dataclass
class LoopConfig:
    """The shared training loop: Adam (betas, weight decay), lr /``gamma`` at each third of the epochs."""

    epochs: int = 10
    batch_size: int = 16
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 5e-4
    gamma: float = 0.1  # lr factor at each milestone
    milestones: int = 3  # the lr steps at each 1/milestones of the epochs (3: after 1/3 and 2/3)
    grad_clip: float = 1.0  # max global L2 norm of the gradients; 0: off
    amp: bool = True  # bf16 autocast on CUDA (never on CPU)
    threads: int = 0  # torch intra-op threads on CPU; 0: Settings.train.threads
    seed: int = 0
    val_every: int = 1  # epochs between validations (and checkpoints)

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError(f"epochs, batch_size and lr must be positive (got {self.epochs}, "
                             f"{self.batch_size}, {self.lr})")

    def lr_milestones(self) -> list[int]:
        """Epochs after which the lr is divided: [E/3, 2E/3] rounded, distinct, inside (0, E)."""
        steps = {round(self.epochs * k / self.milestones) for k in range(1, self.milestones)}
        return sorted(s for s in steps if 0 < s < self.epochs)


@dataclass
class AugmentConfig:
    """MONAI ``RandAffine`` in training only: rotation about each axis and isotropic-ish scaling."""

    rotate_deg: float = 10.0  # uniform in [-r, r] degrees per axis
    scale: float = 0.1  # zoom factor 1 + uniform[-s, s] per axis
    prob: float = 0.8  # probability a sample is transformed at all
    enabled: bool = True


@dataclass
class MethodConfig:
    """The paper's two contributions as flags (ablation B, B+W, B+P, B+W+P) and how captions are decoded."""

    dws: bool = True  # dynamic CT window from the localizer's top-1 (else one fixed soft-tissue window)
    cglp: bool = True  # location prompt from the localizer's top-k (else none)
    beam_size: int = 3
    mask_channel: bool = False  # a third input channel: the lesion mask (CaptionerConfig.in_channels = 3)
    tracer_token: bool = True  # the study's tracer (a header fact) as the first prompt token, in every ablation
    # decoding with CGLP: the caption must start with one of the prompt's location names (the model picks which
    # by its own score), so a location is never invented or garbled (constrained decoding, Anderson et al. 2017)
    constrain_location: bool = True


@dataclass
class ModelTrainConfig:
    """One model's complete recipe; ``model`` is the model's own config dataclass."""

    name: str
    kind: str  # "localizer" | "captioner"
    loop: LoopConfig
    model: LocalizerConfig | CaptionerConfig
    augment: AugmentConfig
    method: MethodConfig | None = None  # captioner only
    description: str = ""
    sources: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-like (tuples as lists) for checkpoints."""
        def plain(obj):
            d = dataclasses.asdict(obj)
            return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
        out = {"name": self.name, "kind": self.kind, "description": self.description, "sources": self.sources,
               "loop": plain(self.loop), "model": plain(self.model), "augment": plain(self.augment)}
        if self.method is not None:
            out["method"] = plain(self.method)
        return out


def available() -> list[str]:
    """Names of the config files."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def _read(name: str, seen: tuple[str, ...] = ()) -> tuple[dict, list[str]]:
    """The merged raw dict of config ``name`` (its bases first) and the files it came from."""
    path = Path(name) if name.endswith(".toml") else CONFIG_DIR / f"{name}.toml"
    if not path.is_file():
        raise ConfigNotFound(f"no training config {name!r} ({path}); available: {', '.join(available())}",
                             reason="unknown_config", hint=f"use --config {' | '.join(available())}")
    if str(path) in seen:
        raise ConfigError(f"training config {path}: 'base' chain loops ({' -> '.join(seen)})")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"training config {path}: not valid TOML ({e})") from e
    base = data.pop("base", None)
    merged, sources = ({}, []) if base is None else _read(base, (*seen, str(path)))
    return _merge(merged, data), [*sources, str(path)]


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_value(text: str) -> Any:
    """A ``--set`` value as TOML would read it (numbers, booleans, arrays, quoted strings), else the raw string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _build(cls, values: dict, where: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (known: {sorted(known)})")
    try:
        return cls(**values)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from e


def load_config(kind: str, name: str = "demo", overrides: dict[str, Any] | None = None) -> ModelTrainConfig:
    """The recipe of model ``kind`` ("localizer" | "captioner") in config ``name`` (a name or a .toml path).

    ``overrides``: {"loop.epochs": 3, "model.decoder": "lstm", ...}; string values are parsed like ``--set``.
    """
    from models.captioner import CaptionerConfig
    from models.localizer import LocalizerConfig

    if kind not in MODELS:
        raise ConfigError(f"model kind must be one of {MODELS}, got {kind!r}")
    data, sources = _read(name)
    section = dict(data.get(kind, {}))
    for key, value in (overrides or {}).items():
        parts = key.split(".")
        if parts[0] == kind:
            parts = parts[1:]
        if len(parts) != 2:
            raise ConfigError(f"override {key!r}: use <section>.<field>, e.g. loop.epochs=3 or model.decoder=lstm")
        sub = dict(section.get(parts[0], {}))
        sub[parts[1]] = parse_value(value) if isinstance(value, str) else value
        section[parts[0]] = sub
    allowed = {"loop", "model", "augment"} | ({"method"} if kind == "captioner" else set())
    extra = sorted(set(section) - allowed)
    if extra:
        raise ConfigError(f"config {name!r} [{kind}]: unknown sections {extra} (allowed: {sorted(allowed)})")
    where = f"config {name!r} [{kind}"
    model_values = dict(section.get("model", {}))
    if kind == "captioner":
        method = _build(MethodConfig, section.get("method", {}), f"{where}.method]")
        from models.cglp import DEFAULT_LENGTH

        model_values.setdefault("use_prompt", method.cglp or method.tracer_token)
        model_values.setdefault("prompt_len", DEFAULT_LENGTH + int(method.tracer_token))
        model_values.setdefault("in_channels", 3 if method.mask_channel else 2)
        model_values.setdefault("vocab_size", 0)  # set from the vocabulary at training time
        model = _build(CaptionerConfig, model_values, f"{where}.model]")
    else:
        method = None
        model = _build(LocalizerConfig, model_values, f"{where}.model]")
    return ModelTrainConfig(
        name=name, kind=kind, description=str(data.get("description", "")), sources=sources,
        loop=_build(LoopConfig, section.get("loop", {}), f"{where}.loop]"),
        model=model, augment=_build(AugmentConfig, section.get("augment", {}), f"{where}.augment]"),
        method=method,
    )


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["loop.epochs=3", ...]`` (the CLI's ``--set``) -> {"loop.epochs": "3"}."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value")
        out[key.strip()] = value.strip()
    return out


def preset_loop_overrides(kind: str, preset: str, overrides: dict | None) -> dict:
    """The preset's training loop for ``kind`` as ``loop.*`` overrides, then the caller's
    ``<kind>.<section>.<field>`` overrides (``{"captioner.loop.epochs": 5}``) on top."""
    out = {f"loop.{k}": v for k, v in dataclasses.asdict(load_config(kind, preset).loop).items()}
    for key, value in (overrides or {}).items():
        parts = key.split(".")
        if parts[0] == kind:
            out[".".join(parts[1:])] = value
    return out
