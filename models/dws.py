"""Dynamic Window Setting (DWS, paper section 2.3) and PET normalisation, as MONAI transforms.

The captioner sees a small-FOV CT patch in Hounsfield units. DWS picks the CT window from the localizer's top-1
answer: when its confidence is >= the threshold (``Settings.dws_threshold``, 0.95; inclusive, as the paper says
"0.95 or higher"), the window of that location's group (``taxonomy.window_for``: lung L-600/W1500, bone L800/W2600,
soft tissue L40/W350); otherwise the soft-tissue window. The window [L - W/2, L + W/2] is mapped linearly to [0, 1]
and clipped, by MONAI's ``ScaleIntensityRange`` (reused, not re-implemented).

Ablation: the paper's baseline "B" (and "B+P") has no DWS and normalises every CT patch with ONE fixed window.
``enabled=False`` gives exactly that, and the fixed window is the soft-tissue one (the same window DWS falls back
to, so B and B+W differ only where the localizer is confident).

PET: SUV (body weight) -> [0, 1] over a fixed range [0, ``Settings.pet_suv_max``] (15 by default), clipped above;
``NormalizePET`` / ``NormalizePETd`` are ``ScaleIntensityRange(d)`` with that range.

Location ids: the taxonomy's string id (``"lung_rul"``) or the class index into ``taxonomy.locations()`` (what the
localizer returns). Thresholds are passed in by the caller (from ``Settings``); nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import (
    MapTransform,
    ScaleIntensityRange,
    ScaleIntensityRanged,
    Transform,
)

from data_contracts import taxonomy
from data_contracts.taxonomy import WINDOWS, CTWindow, WindowGroup

FIXED_WINDOW = WindowGroup.soft_tissue  # fallback when not confident, and the one window when DWS is disabled


def location_of(location: str | int | np.integer | np.ndarray | torch.Tensor) -> taxonomy.Location:
    """A taxonomy location from its string id or its class index (int, numpy or tensor; a vector -> first)."""
    if isinstance(location, str):
        return taxonomy.get(location)
    if isinstance(location, torch.Tensor | np.ndarray):
        flat = location.reshape(-1)
        if len(flat) == 0:
            raise ValueError("empty location id")
        location = flat[0].item()
    index = int(location)
    locs = taxonomy.locations()
    if not 0 <= index < len(locs):
        raise IndexError(f"location index {index} outside the taxonomy's 0..{len(locs) - 1}")
    return locs[index]


def top1_reaches(confidence: Any, threshold: float, strict: bool = False) -> bool:
    """``confidence >= threshold`` (``>`` if strict) for the top-1 confidence, compared in the confidence's own
    precision: a float32 0.95 from the localizer is float32(0.95) < 0.95 as a double, so the threshold is cast
    to the confidence's dtype first. A vector (the top-5 confidences) is read as its first element.
    """
    if isinstance(confidence, list | tuple):
        confidence = confidence[0]
    if isinstance(confidence, torch.Tensor):
        c = confidence.reshape(-1)[0]
        t = torch.tensor(threshold, dtype=c.dtype)
    elif isinstance(confidence, np.ndarray | np.floating):
        c = np.asarray(confidence).reshape(-1)[0]
        t = c.dtype.type(threshold)
    else:
        c, t = float(confidence), float(threshold)
    return bool(c > t) if strict else bool(c >= t)


class DynamicWindow(Transform):
    """CT patch in HU -> [0, 1] with the window chosen from the localizer's top-1 location and confidence.

    Args:
        threshold: top-1 confidence at or above which the location's own window is used (``Settings.dws_threshold``).
        enabled: False -> always the fixed soft-tissue window (ablation without DWS).

    Call: ``DynamicWindow(0.95)(ct_hu, location, confidence)``; ``ct_hu`` any shape, numpy or torch; out a float32
    tensor of the same shape (a MetaTensor, meta kept, while MONAI's meta tracking is on, as ScaleIntensityRange).
    """

    backend = ScaleIntensityRange.backend

    def __init__(self, threshold: float, enabled: bool = True):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"DWS threshold must lie in [0, 1], got {threshold}")
        self.threshold = float(threshold)
        self.enabled = enabled

    def window(self, location: str | int | torch.Tensor, confidence: float | torch.Tensor) -> CTWindow:
        """The rule itself: the location's window if enabled and confidence >= threshold, else soft tissue."""
        if self.enabled and top1_reaches(confidence, self.threshold):
            return location_of(location).ct_window
        return WINDOWS[FIXED_WINDOW]

    def __call__(self, img: NdarrayOrTensor, location: str | int | torch.Tensor,
                 confidence: float | torch.Tensor) -> NdarrayOrTensor:
        w = self.window(location, confidence)
        return ScaleIntensityRange(a_min=w.low, a_max=w.high, b_min=0.0, b_max=1.0, clip=True)(img)


class DynamicWindowd(MapTransform):
    """Dictionary wrapper of ``DynamicWindow``.

    Args:
        keys: the CT image key(s) to window (HU in, [0, 1] out, in place in the dict).
        location_key: the dict entry holding the top-1 location (string id or class index); a vector there (the
            cached top-5 ids) is read as its first element.
        confidence_key: the dict entry holding the top-1 confidence; a vector (top-5 confidences) -> first element.
        threshold, enabled: as ``DynamicWindow``.
    """

    backend = DynamicWindow.backend

    def __init__(self, keys: KeysCollection, threshold: float, location_key: str = "top_ids",
                 confidence_key: str = "top_conf", enabled: bool = True, allow_missing_keys: bool = False):
        super().__init__(keys, allow_missing_keys)
        self.window = DynamicWindow(threshold, enabled)
        self.location_key = location_key
        self.confidence_key = confidence_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for name in (self.location_key, self.confidence_key):
            if name not in d and self.window.enabled:
                raise KeyError(f"DynamicWindowd needs {name!r} in the sample (keys: {sorted(map(str, d))})")
        location = d.get(self.location_key, 0)  # unused when disabled
        confidence = d.get(self.confidence_key, 0.0)
        for key in self.key_iterator(d):
            d[key] = self.window(d[key], location, confidence)
        return d


class NormalizePET(ScaleIntensityRange):
    """PET SUV -> [0, 1]: SUV 0..suv_max linearly, clipped (``suv_max`` from ``Settings.pet_suv_max``)."""

    def __init__(self, suv_max: float):
        if suv_max <= 0:
            raise ValueError(f"suv_max must be positive, got {suv_max}")
        super().__init__(a_min=0.0, a_max=float(suv_max), b_min=0.0, b_max=1.0, clip=True)


class NormalizePETd(ScaleIntensityRanged):
    """Dictionary wrapper of ``NormalizePET``."""

    def __init__(self, keys: KeysCollection, suv_max: float, allow_missing_keys: bool = False):
        if suv_max <= 0:
            raise ValueError(f"suv_max must be positive, got {suv_max}")
        super().__init__(keys, a_min=0.0, a_max=float(suv_max), b_min=0.0, b_max=1.0, clip=True,
                         allow_missing_keys=allow_missing_keys)


def dynamic_window_batch(ct_hu: torch.Tensor, top1: torch.Tensor, top1_conf: torch.Tensor, threshold: float,
                         enabled: bool = True) -> torch.Tensor:
    """The same rule on a batch on any device (training inputs, serving): ``DynamicWindow.window`` per sample
    (the one rule, compared in the confidence's own precision), then one vectorised scaling.

    ct_hu (B, ...) HU; top1 (B,) class indices; top1_conf (B,) -> (B, ...) float32 in [0, 1].
    """
    rule = DynamicWindow(threshold, enabled)
    windows = [rule.window(int(i), c) for i, c in zip(top1.reshape(-1).tolist(), top1_conf.reshape(-1).cpu())]
    shape = (-1,) + (1,) * (ct_hu.dim() - 1)
    low = torch.tensor([w.low for w in windows], dtype=torch.float32, device=ct_hu.device).view(shape)
    high = torch.tensor([w.high for w in windows], dtype=torch.float32, device=ct_hu.device).view(shape)
    return ((ct_hu.float() - low) / (high - low)).clamp(0.0, 1.0)
