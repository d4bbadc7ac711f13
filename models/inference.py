"""The one inference path: a lesion's two patches -> localizer top-5 -> DWS -> CGLP -> caption.

Every entry point goes through these functions: training validation and ``predict``
(``models.training.captioner``, with the localizer's cached top-5), one served study (``serving.study``), the
MLflow model (``serving.pyfunc``) and ``benchmarks/train.py``. So there is one window name (``window_name``:
"lung" | "bone" | "soft_tissue"), one float16 rounding policy (model inputs are rounded to float16, as training
keeps them in memory, and widened to float32 for the forward pass), one localizer input normalisation
(``models.localizer.normalise_patches``) and one DWS rule (``models.dws.DynamicWindow.window``).

Method parameters travel with the models, never through the environment at inference time:
- the localizer's input ranges (``LocalizerConfig.ct_window_hu``, ``pet_suv_max``) and patch sizes are in its
  checkpoint's config;
- the captioner's (``InferenceParams``: DWS and CGLP thresholds, prompt location counts, PET range) are written
  into its checkpoint at training (``extra["inference"]``) and read back by ``InferenceParams.of_checkpoint``.

    pipeline = CaptionPipeline.load(localizer_checkpoint, captioner_checkpoint)
    results = pipeline.caption(large, small, positions, tracers)   # large (N, 3, z, y, x), small (N, 3, z, y, x)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import torch
from monai.utils import convert_to_tensor

from data_contracts import taxonomy
from data_contracts.settings import Settings
from data_contracts.taxonomy import WINDOWS, CTWindow
from models.captioner import Captioner, CaptionerConfig, load_checkpoint
from models.cglp import cglp_prompt_ids, prompt_candidates, tracer_bans
from models.dws import DynamicWindow, NormalizePET, dynamic_window_batch
from models.localizer import CLIPLocalizer, load_localizer, normalise_patches
from models.training.configs import MethodConfig
from models.vocab import PAD, Vocab

TOP_K = 5  # the localizer's answers kept per lesion (CGLP reads up to 3, the reports show 5)
_DEFAULTS = Settings.model_fields


@dataclass(frozen=True)
class InferenceParams:
    """The captioner's method parameters, fixed when it is trained and saved in its checkpoint."""

    dws_threshold: float = _DEFAULTS["dws_threshold"].default  # top-1 >= this: the location's CT window
    cglp_threshold: float = _DEFAULTS["cglp_threshold"].default  # top-1 > this: prompt top-1 only, else top-3
    cglp_prompt_locations: tuple[int, int] = _DEFAULTS["cglp_prompt_locations"].default
    pet_suv_max: float = _DEFAULTS["pet_suv_max"].default  # PET SUV 0..this -> [0, 1]
    # the patch geometry the models were trained on (``PatchSettings`` fields: sizes, spacings, dtype, CT pad);
    # a served study is cut the same way. {}: files from before it was recorded (the settings' then)
    patches: dict = dataclasses.field(default_factory=dict, hash=False, compare=True)

    @classmethod
    def from_settings(cls, settings: Settings) -> InferenceParams:
        """At training time only: the settings the captioner is trained with."""
        p = settings.patches
        patches = {"localizer_size": list(p.localizer_size), "localizer_spacing_mm": list(p.localizer_spacing_mm),
                   "captioner_size": list(p.captioner_size), "captioner_spacing_mm": list(p.captioner_spacing_mm),
                   "dtype": p.dtype, "ct_pad_hu": float(p.ct_pad_hu)}
        return cls(float(settings.dws_threshold), float(settings.cglp_threshold),
                   tuple(int(n) for n in settings.cglp_prompt_locations), float(settings.pet_suv_max), patches)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "cglp_prompt_locations": list(self.cglp_prompt_locations)}

    def patch_settings(self, settings: Settings) -> Settings:
        """``settings`` with the patch geometry these models were trained on (the rest, where to store, as is)."""
        if not self.patches:
            return settings
        return settings.model_copy(update={"patches": settings.patches.model_copy(update={
            k: tuple(v) if isinstance(v, list) else v for k, v in self.patches.items()})})

    @classmethod
    def from_dict(cls, d: dict) -> InferenceParams:
        known = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in known}
        if "cglp_prompt_locations" in d:
            d["cglp_prompt_locations"] = tuple(int(n) for n in d["cglp_prompt_locations"])
        return cls(**d)

    @classmethod
    def of_checkpoint(cls, extra: dict) -> InferenceParams:
        """A captioner checkpoint's parameters. Files from before ``extra["inference"]`` recorded the two
        thresholds only; the rest were the defaults of that time (never the environment's values)."""
        if "inference" in extra:
            return cls.from_dict(extra["inference"])
        legacy = {k: extra[k] for k in ("dws_threshold", "cglp_threshold") if k in extra}
        return cls.from_dict(legacy)


def method_of(extra: dict) -> MethodConfig:
    """The recipe flags a captioner checkpoint was trained with; files from before the tracer token and the
    constrained decoding were made without them."""
    flags = (extra.get("train_config") or {}).get("method", {})
    return MethodConfig(**{"tracer_token": False, "constrain_location": False, **flags})


def window_name(window: CTWindow) -> str:
    """The preset's group name ("lung", "bone", "soft_tissue") of a DWS window."""
    for group, w in WINDOWS.items():
        if w == window:
            return group.value
    return f"L{window.level:g}/W{window.width:g}"


def centre_crop(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """(N, C, D, H, W) -> (N, C, *size) around the centre (the lesion centroid); refuses a smaller patch."""
    have = x.shape[2:]
    if any(s > h for s, h in zip(size, have)):
        raise ValueError(f"the captioner patches are {tuple(have)}, smaller than the configured "
                         f"{tuple(size)}: extract larger patches or set model.patch_size")
    start = [(h - s) // 2 for s, h in zip(size, have)]
    return x[:, :, start[0]:start[0] + size[0], start[1]:start[1] + size[1], start[2]:start[2] + size[2]]


# ------------------------------------------------------------------------------------------- localizer
@torch.no_grad()
def input_logits(model: CLIPLocalizer, images: torch.Tensor, batch_size: int = 32,
                 device: torch.device | str = "cpu", positions: torch.Tensor | None = None,
                 details: torch.Tensor | None = None, fuse: bool = True) -> torch.Tensor:
    """(N, 3, D, H, W) model inputs [+ scan positions (N, 3)] [+ detail patches] -> (N, K) float32 logits on the
    CPU, in batches (``fuse``: with the position prior, when the model has a fitted one)."""
    model.eval()
    out = []
    for i in range(0, len(images), batch_size):
        pos = positions[i:i + batch_size].to(device) if positions is not None else None
        det = details[i:i + batch_size].float().to(device) if details is not None else None
        out.append(model.logits(images[i:i + batch_size].float().to(device), pos, det, fuse=fuse).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, model.num_categories)


def localize_inputs(model: CLIPLocalizer, images: torch.Tensor, batch_size: int = 32,
                    device: torch.device | str = "cpu", positions: torch.Tensor | None = None,
                    details: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised inputs -> top-5 ids (N, 5) long and confidences (N, 5) float32, on the CPU."""
    logits = input_logits(model, images, batch_size, device, positions, details)
    conf, ids = logits.softmax(dim=-1).topk(TOP_K, dim=-1)
    return ids, conf


def localize(model: CLIPLocalizer, large: torch.Tensor, small: torch.Tensor | None = None,
             positions: torch.Tensor | None = None, device: torch.device | str = "cpu"
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw patches -> top-5. large (N, 3, z, y, x) and small (N, 3, z', y', x') in physical units (CT HU, PET SUV,
    mask); positions (N, 3) scan positions when the model uses them. -> ids (N, 5) long, conf (N, 5) float32."""
    cfg = model.cfg
    x = normalise_patches(large, cfg, cfg.patch_size)
    details = None
    if cfg.detail_size is not None:
        if small is None:
            raise ValueError("this localizer has a detail stream: pass the small-FOV patches")
        details = normalise_patches(small, cfg, cfg.detail_size)
    if cfg.uses_position and positions is None:
        raise ValueError("this localizer uses each lesion's scan position: pass positions (N, 3)")
    return localize_inputs(model, x, device=device, positions=positions if cfg.uses_position else None,
                           details=details)


# ------------------------------------------------------------------------------------------- captioner
def captioner_input(raw: torch.Tensor, top1: torch.Tensor, top1_conf: torch.Tensor, params: InferenceParams,
                    method: MethodConfig) -> torch.Tensor:
    """(N, 3, D, H, W) HU / SUV / mask (already cropped to the model's size) -> (N, 2|3, D, H, W) float16 in
    [0, 1]: DWS on CT (the fixed soft-tissue window without ``method.dws``), PET / pet_suv_max, the mask as 0/1
    when ``method.mask_channel``."""
    raw = raw.float()
    ct = dynamic_window_batch(raw[:, 0], top1, top1_conf, params.dws_threshold, enabled=method.dws)
    pet = convert_to_tensor(NormalizePET(params.pet_suv_max)(raw[:, 1]), dtype=torch.float32, track_meta=False)
    channels = [ct, pet]
    if method.mask_channel:
        channels.append((raw[:, 2] > 0.5).float())
    return torch.stack(channels, dim=1).half()


def prompt_ids(top_ids: torch.Tensor, top_conf: torch.Tensor, vocab: Vocab, cfg: CaptionerConfig,
               params: InferenceParams, method: MethodConfig, tracers: list[str] | None) -> torch.Tensor:
    """CGLP prompt ids (N, cfg.prompt_len), with the study's tracer first when ``method.tracer_token``."""
    return cglp_prompt_ids(top_ids, top_conf, vocab, threshold=params.cglp_threshold, length=cfg.prompt_len,
                           enabled=method.cglp, counts=tuple(params.cglp_prompt_locations),
                           tracers=list(tracers) if method.tracer_token else None)


def windows(top_ids: torch.Tensor, top_conf: torch.Tensor, params: InferenceParams,
            method: MethodConfig) -> list[str]:
    """The CT window each sample's captioner input was made with (``window_name``)."""
    rule = DynamicWindow(params.dws_threshold, enabled=method.dws)
    return [window_name(rule.window(int(i), c)) for i, c in zip(top_ids[:, 0].tolist(), top_conf[:, 0])]


def prompt_words(prompts: torch.Tensor, vocab: Vocab) -> list[str]:
    """Prompt ids -> their words, pads dropped ("fdg ; right upper lobe")."""
    return [" ".join(vocab.itos[t] for t in row if t != PAD) for row in prompts.tolist()]


@torch.no_grad()
def generate_captions(model: Captioner, vocab: Vocab, images: torch.Tensor, prompts: torch.Tensor,
                      beam_size: int = 1, batch_size: int = 32, device: torch.device | str = "cpu",
                      method: MethodConfig | None = None, confidences: torch.Tensor | None = None) -> list[str]:
    """Captions of prepared inputs; with ``method.cglp`` and ``method.constrain_location`` each caption starts
    with one of its prompt's location names (``Captioner.generate``'s constrained decoding), chosen by the
    captioner's score plus the log of the localizer's confidence in it (``confidences``: (N, k) top-k, in
    prompt order). With ``method.tracer_token`` a caption never names another tracer than its prompt's
    (``tracer_bans``)."""
    model.eval()
    constrain = method is not None and method.cglp and method.constrain_location and model.cfg.use_prompt
    ban = method is not None and method.tracer_token
    out: list[str] = []
    for i in range(0, len(images), batch_size):
        p = prompts[i:i + batch_size]
        cands = prompt_candidates(p, vocab, method.tracer_token) if constrain else None
        priors = None
        if cands is not None and confidences is not None:
            conf = confidences[i:i + batch_size].float().clamp(min=1e-6).log().tolist()
            priors = [row[: len(c)] for row, c in zip(conf, cands)]
        ids = model.generate(images[i:i + batch_size].float().to(device),
                             p.to(device) if model.cfg.use_prompt else None,
                             beam_size=beam_size, candidates=cands, candidate_priors=priors,
                             banned=tracer_bans(p, vocab).to(device) if ban else None)
        out += [vocab.decode(row) for row in ids.cpu().tolist()]
    return out


@dataclass(frozen=True)
class GuidedInputs:
    """Captioner inputs of N lesions and the guidance they were made with."""

    images: torch.Tensor  # (N, C, D, H, W) float16
    prompts: torch.Tensor  # (N, P) long
    top_ids: torch.Tensor  # (N, 5) long
    top_conf: torch.Tensor  # (N, 5) float32


def guided_inputs(raw_small: torch.Tensor, top_ids: torch.Tensor, top_conf: torch.Tensor, vocab: Vocab,
                  cfg: CaptionerConfig, params: InferenceParams, method: MethodConfig,
                  tracers: list[str] | None) -> GuidedInputs:
    """Small-FOV patches (N, 3, z, y, x) HU / SUV / mask and the localizer's top-5 -> DWS image + CGLP prompt."""
    raw = centre_crop(raw_small, cfg.patch_size)
    images = captioner_input(raw, top_ids[:, 0], top_conf[:, 0], params, method)
    if tracers is None and method.tracer_token:
        raise ValueError("this captioner takes the study's tracer: pass tracers")
    prompts = prompt_ids(top_ids, top_conf, vocab, cfg, params, method, tracers)
    return GuidedInputs(images, prompts, top_ids, top_conf.float())


def decode(model: Captioner, vocab: Vocab, inputs: GuidedInputs, method: MethodConfig, beam_size: int | None = None,
           device: torch.device | str = "cpu") -> list[str]:
    """Captions of guided inputs (beam size: the recipe's unless given)."""
    return generate_captions(model, vocab, inputs.images, inputs.prompts, beam_size=beam_size or method.beam_size,
                             device=device, method=method, confidences=inputs.top_conf)


@dataclass(frozen=True)
class LesionAnswer:
    """One lesion's answer: top-5 class indices and confidences, the CT window, the prompt words, the caption."""

    top_ids: list[int]
    top_conf: list[float]
    window: str
    prompt: str
    caption: str

    def top5(self) -> list[dict]:
        """The top-5 as JSON entries {location_id, location, confidence}, best first."""
        locs = taxonomy.locations()
        return [{"location_id": locs[i].id, "location": locs[i].name, "confidence": round(float(c), 6)}
                for i, c in zip(self.top_ids, self.top_conf)]


def answers(inputs: GuidedInputs, captions: list[str], vocab: Vocab, params: InferenceParams,
            method: MethodConfig, use_prompt: bool = True) -> list[LesionAnswer]:
    words = prompt_words(inputs.prompts, vocab) if use_prompt else [""] * len(captions)
    return [LesionAnswer(ids, conf, w, p, c) for ids, conf, w, p, c in zip(
        inputs.top_ids.tolist(), inputs.top_conf.tolist(), windows(inputs.top_ids, inputs.top_conf, params, method),
        words, captions)]


class CaptionPipeline:
    """Both models and the parameters they were trained with, applied the one way.

    Load once (``CaptionPipeline.load``) and reuse between studies: loading costs more than a study's lesions.
    """

    def __init__(self, localizer: CLIPLocalizer, captioner: Captioner, cfg: CaptionerConfig, vocab: Vocab,
                 extra: dict, device: str | torch.device = "cpu", paths: dict | None = None):
        self.localizer, self.captioner, self.cfg, self.vocab = localizer, captioner, cfg, vocab
        self.method = method_of(extra)
        self.params = InferenceParams.of_checkpoint(extra)
        self.device = device
        self.paths = dict(paths or {})

    @classmethod
    def load(cls, localizer_checkpoint: Path | str, captioner_checkpoint: Path | str,
             device: str | torch.device = "cpu") -> CaptionPipeline:
        localizer = load_localizer(localizer_checkpoint, map_location=device)
        captioner, cfg, vocab, extra = load_checkpoint(captioner_checkpoint, map_location=device)
        return cls(localizer, captioner, cfg, vocab, extra, device,
                   {"localizer": str(localizer_checkpoint), "captioner": str(captioner_checkpoint)})

    def describe(self) -> dict:
        """What a served answer was made with: the method flags and parameters from the checkpoints."""
        lc = self.localizer.cfg
        return {"method": dataclasses.asdict(self.method), "inference": self.params.to_dict(),
                "localizer_input": {"ct_window_hu": list(lc.ct_window_hu), "pet_suv_max": lc.pet_suv_max,
                                    "patch_size": list(lc.patch_size),
                                    "detail_size": list(lc.detail_size) if lc.detail_size else None},
                "captioner_patch_size": list(self.cfg.patch_size)}

    def caption_guided(self, raw_small: torch.Tensor, top_ids: torch.Tensor, top_conf: torch.Tensor,
                       tracers: list[str] | None, beam_size: int | None = None) -> list[LesionAnswer]:
        """Captions from the localizer's (cached or fresh) top-5: DWS -> CGLP -> decoding."""
        if len(raw_small) == 0:
            return []
        inputs = guided_inputs(raw_small, top_ids, top_conf, self.vocab, self.cfg, self.params, self.method, tracers)
        texts = decode(self.captioner, self.vocab, inputs, self.method, beam_size, self.device)
        return answers(inputs, texts, self.vocab, self.params, self.method, self.cfg.use_prompt)

    def caption(self, large: torch.Tensor, small: torch.Tensor, positions: torch.Tensor | None,
                tracers: list[str] | None, beam_size: int | None = None) -> list[LesionAnswer]:
        """N lesions' raw patches (CT HU, PET SUV, mask) -> N answers: top-5 -> DWS -> CGLP -> caption."""
        if len(large) == 0:
            return []
        large, small = torch.as_tensor(large).float(), torch.as_tensor(small).float()
        ids, conf = localize(self.localizer, large, small, positions, self.device)
        return self.caption_guided(small, ids, conf, tracers, beam_size)
