"""Stage 2 training: the captioner on the small-FOV patches, guided by the frozen localizer's cached top-5.

    train_captioner(settings, config="demo") -> TrainResult    checkpoint <checkpoints_dir>/captioner-<config>.pt
    predict(settings, checkpoint, split="test") -> DataFrame   one row per sample, generated caption and guidance

Per sample: the localizer's top-5 (``models.training.localizer.top5_cache``, keyed by the localizer checkpoint's
hash, which the captioner checkpoint records) drives DWS on the CT channel and the CGLP prompt; the config's
``method.dws`` / ``method.cglp`` flags give the ablation B, B+W, B+P, B+W+P. The vocabulary is built from the
training captions plus every CGLP prompt word. Validation: BLEU-4 (pycocoevalcap) of greedy captions on the val
split, and the validation loss.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pandas as pd
import torch

from data_contracts import taxonomy
from data_contracts.settings import Settings
from data_contracts.taxonomy import WINDOWS, CTWindow
from models.captioner import (
    Captioner,
    CaptionerConfig,
    build_captioner,
    caption_loss,
    load_checkpoint,
    save_checkpoint,
    shift_captions,
)
from models.cglp import cglp_prompt_ids, prompt_candidates, prompt_texts, tracer_bans
from models.dws import DynamicWindow
from models.training import data
from models.training.configs import MethodConfig, ModelTrainConfig, load_config
from models.training.localizer import cache_tensors, checkpoint_path, file_hash, top5_cache
from models.training.loop import TrainResult, dist_rank, fit, init_distributed_from_env, pick_device, set_threads
from models.training.metrics import bleu4
from models.vocab import Vocab


def captioner_checkpoint(settings: Settings, config: str) -> Path:
    return settings.checkpoints_dir / f"captioner-{Path(config).stem}.pt"


@dataclasses.dataclass
class Prepared:
    """One split's model inputs: images (N, C, D, H, W) float16, prompts (N, P), captions (N, T), guidance."""

    samples: pd.DataFrame
    images: torch.Tensor
    prompts: torch.Tensor
    captions: torch.Tensor
    top_ids: torch.Tensor  # (N, 5)
    top_conf: torch.Tensor  # (N, 5) float32


def prepare(settings: Settings, df: pd.DataFrame, cache: pd.DataFrame, cfg: CaptionerConfig, method: MethodConfig,
            vocab: Vocab) -> Prepared:
    """Samples -> captioner inputs (DWS + PET normalisation, CGLP prompt ids, caption ids)."""
    top_ids, top_conf = cache_tensors(cache, df["sample_id"])
    raw = data.captioner_raw(settings, df["row"].to_numpy(), cfg.patch_size)
    images = data.captioner_inputs(raw, top_ids[:, 0], top_conf[:, 0], settings, method.dws, method.mask_channel)
    tracers = df["tracer"].tolist() if method.tracer_token else None
    counts = tuple(settings.cglp_prompt_locations)
    prompts = cglp_prompt_ids(top_ids, top_conf, vocab, threshold=settings.cglp_threshold, length=cfg.prompt_len,
                              enabled=method.cglp, counts=counts, tracers=tracers)
    captions = torch.tensor([vocab.encode(c, cfg.max_caption_len) for c in df["caption"]],
                            dtype=torch.long).reshape(len(df), cfg.max_caption_len)
    return Prepared(df.reset_index(drop=True), images.half(), prompts, captions, top_ids, top_conf)


def _loss(device, label_smoothing):
    def loss_fn(model, batch):
        inputs, targets = shift_captions(batch["caption"].to(device))
        prompt = batch["prompt"].to(device)
        logits = model(batch["image"].to(device, non_blocking=True), prompt, inputs)
        return caption_loss(logits, targets, label_smoothing)
    return loss_fn


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


def train_captioner(settings: Settings, config: str = "demo", overrides: dict | None = None,
                    progress: bool = True, resume: bool = True, localizer_checkpoint: Path | str | None = None
                    ) -> TrainResult:
    """Train (or resume) the captioner of config ``config`` on the frozen localizer's cached answers."""
    t_start = time.perf_counter()
    cfg: ModelTrainConfig = load_config("captioner", config, overrides)
    init_distributed_from_env()
    device = pick_device(settings)
    set_threads(cfg.loop, settings)
    method = cfg.method

    loc_path = Path(localizer_checkpoint or checkpoint_path(settings))
    if not loc_path.is_file():
        raise FileNotFoundError(f"no localizer checkpoint at {loc_path}: train the localizer first "
                                "(petcap train localizer)")
    loc_hash = file_hash(loc_path)
    cache = top5_cache(settings, loc_path, progress=progress)

    train_df, val_df = data.samples(settings, "train"), data.samples(settings, "val")
    if len(train_df) == 0:
        raise ValueError("no training samples (split 'train' is empty)")
    vocab = Vocab.build(train_df["caption"].tolist(), extra_texts=prompt_texts())
    model_cfg = dataclasses.replace(cfg.model, vocab_size=len(vocab))
    train = prepare(settings, train_df, cache, model_cfg, method, vocab)
    val = prepare(settings, val_df, cache, model_cfg, method, vocab)
    train_set = data.TensorSamples(train.images, data.Augment(cfg.augment, cfg.loop.seed + dist_rank()),
                                   prompt=train.prompts, caption=train.captions)

    path = captioner_checkpoint(settings, config)
    torch.manual_seed(cfg.loop.seed)
    model = build_captioner(model_cfg)
    resume_state = None
    if resume and path.is_file():
        _, _, old_vocab, extra = load_checkpoint(path)
        state = extra.get("train_state")
        if (extra.get("train_config") == cfg.to_dict() and extra.get("localizer") == loc_hash
                and old_vocab == vocab and extra.get("train_samples") == len(train_df)
                and state and state["epoch"] <= cfg.loop.epochs):
            model, _, _, _ = load_checkpoint(path)
            resume_state = state
    model.to(device)

    def validate(m: Captioner) -> dict[str, float]:
        if len(val_df) == 0:
            return {}
        with torch.no_grad():
            n = min(len(val_df), 256)
            batch = {"image": val.images[:n].float(), "prompt": val.prompts[:n], "caption": val.captions[:n]}
            loss = float(_loss(device, 0.0)(m, batch))
        hyps = generate_captions(m, vocab, val.images, val.prompts, beam_size=1, device=device, method=method,
                                 confidences=val.top_conf)
        return {"loss": loss, "bleu4": bleu4(val_df["caption"].tolist(), hyps)}

    def save(extra: dict) -> None:
        save_checkpoint(path, model, model_cfg, vocab, extra={
            **extra, "train_config": cfg.to_dict(), "localizer": loc_hash, "localizer_checkpoint": str(loc_path),
            "train_samples": len(train_df), "dws_threshold": settings.dws_threshold,
            "cglp_threshold": settings.cglp_threshold,
        })

    loss_fn = _loss(device, model_cfg.label_smoothing)
    state = fit(model, loss_fn, train_set, cfg.loop, device, save=save, validate=validate,
                resume_state=resume_state, progress=progress, desc=f"captioner {config}",
                loader_workers=settings.train.loader_workers)
    if dist_rank() != 0:
        return TrainResult("captioner", config, str(path), state.epoch, float("nan"), None)
    last = state.history[-1] if state.history else {}
    this_call = [h for h in state.history if resume_state is None or h["epoch"] > resume_state["epoch"]]
    trained_s = sum(h["seconds"] for h in this_call)
    return TrainResult(
        model="captioner", config=config, checkpoint=str(path), epochs=state.epoch,
        train_loss=float(last.get("train_loss", float("nan"))), val_loss=last.get("val_loss"),
        metrics={k.removeprefix("val_"): v for k, v in last.items() if k.startswith("val_")},
        seconds=time.perf_counter() - t_start,
        samples_per_s=(sum(h["samples"] for h in this_call) / trained_s) if trained_s else 0.0,
        train_samples=len(train_df), val_samples=len(val_df),
        extra={"history": state.history, "device": str(device), "threads": torch.get_num_threads(),
               "localizer": loc_hash, "vocab_size": len(vocab)},
    )


def predict(settings: Settings, checkpoint: Path | str, split: str | None = "test",
            beam_size: int | None = None, localizer_checkpoint: Path | str | None = None) -> pd.DataFrame:
    """Caption every sample of ``split`` (None: all) with a trained captioner and its localizer's cached answers.

    ``localizer_checkpoint``: where the captioner's localizer lies (default: the path its checkpoint recorded);
    either way the file must be the exact localizer it was trained with (hash checked).

    -> one row per sample: sample_id, patient_id, study_id, vendor, tracer, location_id, ct_finding, reference,
    generated, top_ids (5 taxonomy ids), top_conf (5 float32), top1_location, window (the CT window applied:
    lung | bone | soft_tissue), prompt (the CGLP words, pads dropped).
    """
    model, cfg, vocab, extra = load_checkpoint(checkpoint)
    train_cfg = extra.get("train_config", {})
    method = method_of(extra)
    loc_path = Path(localizer_checkpoint or extra.get("localizer_checkpoint") or checkpoint_path(settings))
    if not loc_path.is_file():
        raise FileNotFoundError(f"{checkpoint}: its localizer checkpoint {loc_path} does not exist")
    if file_hash(loc_path) != extra.get("localizer"):
        raise ValueError(f"{checkpoint} was trained with localizer {extra.get('localizer')}, but {loc_path} is "
                         f"{file_hash(loc_path)}: retrain the captioner")
    cache = top5_cache(settings, loc_path)
    df = data.samples(settings, split)
    device = pick_device(settings)
    model.to(device)
    prep = prepare(settings, df, cache, cfg, method, vocab)
    hyps = generate_captions(model, vocab, prep.images, prep.prompts,
                             beam_size=beam_size or method.beam_size, device=device, method=method,
                             confidences=prep.top_conf)
    locs = taxonomy.locations()
    dws = DynamicWindow(settings.dws_threshold, enabled=method.dws)
    windows = [window_name(dws.window(int(i), c)) for i, c in zip(prep.top_ids[:, 0].tolist(), prep.top_conf[:, 0])]
    prompts = [" ".join(vocab.itos[t] for t in row if t != 0) for row in prep.prompts.tolist()]
    return pd.DataFrame({
        "sample_id": df["sample_id"], "patient_id": df["patient_id"], "study_id": df["study_id"],
        "finding_index": df["finding_index"],  # the stated finding: its node is the stated level (evaluation)
        "vendor": df["vendor"].astype(str), "tracer": df["tracer"].astype(str), "location_id": df["location_id"],
        "ct_finding": df["ct_finding"].astype(str), "split": df["split"], "reference": df["caption"],
        "generated": hyps,
        "top_ids": [[locs[i].id for i in row] for row in prep.top_ids.tolist()],
        "top_conf": [row for row in prep.top_conf.numpy()],
        "top1_location": [locs[i].id for i in prep.top_ids[:, 0].tolist()],
        "window": windows, "prompt": prompts,
    })


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
