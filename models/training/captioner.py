"""Stage 2 training: the captioner on the small-FOV patches, guided by the frozen localizer's cached top-5.

    train_captioner(settings, config="demo") -> TrainResult    checkpoint <checkpoints_dir>/captioner-<config>.pt
    predict(settings, checkpoint, split="test") -> DataFrame   one row per sample, generated caption and guidance

Per sample: the localizer's top-5 (``models.training.localizer.top5_cache``, keyed by the localizer checkpoint's
hash, which the captioner checkpoint records) drives DWS on the CT channel and the CGLP prompt; the config's
``method.dws`` / ``method.cglp`` flags give the ablation B, B+W, B+P, B+W+P. The vocabulary is built from the
training captions plus every CGLP prompt word. Validation: the validation loss, and the caption metric the caller
passes (the flows: the evaluation's BLEU-4, pycocoevalcap on PTB tokens) of greedy captions on the val split.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from data_contracts import taxonomy
from data_contracts.errors import PrerequisiteError
from data_contracts.settings import Settings
from models.captioner import (
    Captioner,
    CaptionerConfig,
    build_captioner,
    caption_loss,
    load_checkpoint,
    save_checkpoint,
    shift_captions,
)
from models.cglp import prompt_texts
from models.inference import CaptionPipeline, GuidedInputs, InferenceParams, decode, guided_inputs
from models.localizer import load_localizer
from models.training import data
from models.training.configs import MethodConfig, ModelTrainConfig, load_config
from models.training.localizer import cache_tensors, checkpoint_path, file_hash, top5_cache
from models.training.loop import TrainResult, dist_rank, fit, init_distributed_from_env, pick_device, set_threads
from models.vocab import Vocab


def captioner_checkpoint(settings: Settings, config: str) -> Path:
    return settings.checkpoints_dir / f"captioner-{Path(config).stem}.pt"


@dataclasses.dataclass
class Prepared:
    """One split's model inputs (``models.inference.guided_inputs``) and its caption ids."""

    samples: pd.DataFrame
    inputs: GuidedInputs  # images (N, C, D, H, W) float16, prompts (N, P), top_ids (N, 5), top_conf (N, 5)
    captions: torch.Tensor  # (N, T)


def prepare(settings: Settings, df: pd.DataFrame, cache: pd.DataFrame, cfg: CaptionerConfig, method: MethodConfig,
            params: InferenceParams, vocab: Vocab) -> Prepared:
    """Samples -> captioner inputs through the one inference path (DWS + PET normalisation, CGLP prompt ids) with
    the captioner's own ``params``, and caption ids. ``settings`` only locates the patch store."""
    top_ids, top_conf = cache_tensors(cache, df["sample_id"])
    raw = data.captioner_raw(settings, df["row"].to_numpy(), cfg.patch_size)
    tracers = df["tracer"].astype(str).tolist()
    inputs = guided_inputs(raw, top_ids, top_conf, vocab, cfg, params, method, tracers)
    captions = torch.tensor([vocab.encode(c, cfg.max_caption_len) for c in df["caption"]],
                            dtype=torch.long).reshape(len(df), cfg.max_caption_len)
    return Prepared(df.reset_index(drop=True), inputs, captions)


def _loss(device, label_smoothing):
    def loss_fn(model, batch):
        inputs, targets = shift_captions(batch["caption"].to(device))
        prompt = batch["prompt"].to(device)
        logits = model(batch["image"].to(device, non_blocking=True), prompt, inputs)
        return caption_loss(logits, targets, label_smoothing)
    return loss_fn


def train_captioner(settings: Settings, config: str = "demo", overrides: dict | None = None,
                    progress: bool = True, resume: bool = True, localizer_checkpoint: Path | str | None = None,
                    on_epoch: Callable[[dict], None] | None = None,
                    score_captions: Callable[[list[str], list[str]], dict[str, float]] | None = None) -> TrainResult:
    """Train (or resume) the captioner of config ``config`` on the frozen localizer's cached answers.

    ``score_captions(references, generated) -> metrics``: the caption metric of each validation, the
    evaluation's own (``tasks.evaluate.metrics.validation_scores``: pycocoevalcap BLEU-4, what the flows pass);
    without it validation reports the loss only."""
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
    params = InferenceParams.from_settings(settings)  # from here on the model's, saved in its checkpoint
    train = prepare(settings, train_df, cache, model_cfg, method, params, vocab)
    val = prepare(settings, val_df, cache, model_cfg, method, params, vocab)
    train_set = data.TensorSamples(train.inputs.images, data.Augment(cfg.augment, cfg.loop.seed + dist_rank()),
                                   prompt=train.inputs.prompts, caption=train.captions)

    path = captioner_checkpoint(settings, config)
    torch.manual_seed(cfg.loop.seed)
    model = build_captioner(model_cfg)
    resume_state = None
    if resume and path.is_file():
        _, _, old_vocab, extra = load_checkpoint(path)
        state = extra.get("train_state")
        if (extra.get("train_config") == cfg.to_dict() and extra.get("localizer") == loc_hash
                and InferenceParams.of_checkpoint(extra) == params
                and old_vocab == vocab and extra.get("train_samples") == len(train_df)
                and state and state["epoch"] <= cfg.loop.epochs):
            model, _, _, _ = load_checkpoint(path)
            resume_state = state
    model.to(device)

    has_val = len(val_df) > 0  # without val samples nothing is validated (fit is given no validate)

    def val_loss(m: Captioner) -> float:
        """Teacher-forced loss of (at most) 256 val captions, no label smoothing."""
        with torch.no_grad():
            n = min(len(val_df), 256)
            batch = {"image": val.inputs.images[:n].float(), "prompt": val.inputs.prompts[:n],
                     "caption": val.captions[:n]}
            return float(_loss(device, 0.0)(m, batch))

    def validate(m: Captioner) -> dict[str, float]:
        loss = val_loss(m)
        if score_captions is None:
            return {"loss": loss}
        hyps = decode(m, vocab, val.inputs, method, beam_size=1, device=device)  # greedy: fast enough per epoch
        return {"loss": loss, **score_captions(val_df["caption"].tolist(), hyps)}

    def save(extra: dict) -> None:
        save_checkpoint(path, model, model_cfg, vocab, extra={
            **extra, "train_config": cfg.to_dict(), "localizer": loc_hash, "localizer_checkpoint": str(loc_path),
            "train_samples": len(train_df), "inference": params.to_dict(),
        })

    loss_fn = _loss(device, model_cfg.label_smoothing)
    state = fit(model, loss_fn, train_set, cfg.loop, device, save=save, validate=validate if has_val else None,
                resume_state=resume_state, progress=progress, desc=f"captioner {config}",
                loader_workers=settings.train.loader_workers, on_epoch=on_epoch,
                quick_validate=(lambda m: {"loss": val_loss(m)}) if has_val else None)
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
    """Caption every sample of ``split`` (None: all) with a trained captioner and its localizer's cached answers,
    through the one inference path (``CaptionPipeline.caption_guided``) with the checkpoint's own parameters.

    ``localizer_checkpoint``: where the captioner's localizer lies (default: the path its checkpoint recorded);
    either way the file must be the exact localizer it was trained with (hash checked).

    -> one row per sample: sample_id, patient_id, study_id, vendor, tracer, location_id, ct_finding, reference,
    generated, top_ids (5 taxonomy ids), top_conf (5 float32), top1_location, window (the CT window applied:
    lung | bone | soft_tissue), prompt (the CGLP words, pads dropped).
    """
    model, cfg, vocab, extra = load_checkpoint(checkpoint)
    loc_path = Path(localizer_checkpoint or extra.get("localizer_checkpoint") or checkpoint_path(settings))
    if not loc_path.is_file():
        raise FileNotFoundError(f"{checkpoint}: its localizer checkpoint {loc_path} does not exist")
    if file_hash(loc_path) != extra.get("localizer"):
        raise ValueError(f"{checkpoint} was trained with localizer {extra.get('localizer')}, but {loc_path} is "
                         f"{file_hash(loc_path)}: retrain the captioner")
    cache = top5_cache(settings, loc_path)
    df = data.samples(settings, split)
    if len(df) == 0:
        raise PrerequisiteError(f"split {split!r} has no caption samples to predict",
                                path=settings.patch_store_url,
                                hint="a cohort this small can draw only lesion-free patients into a split: "
                                     "add patients")
    device = pick_device(settings)
    model.to(device)
    pipeline = CaptionPipeline(load_localizer(loc_path), model, cfg, vocab, extra, device)
    top_ids, top_conf = cache_tensors(cache, df["sample_id"])
    raw = data.captioner_raw(settings, df["row"].to_numpy(), cfg.patch_size)
    out = pipeline.caption_guided(raw, top_ids, top_conf, df["tracer"].astype(str).tolist(), beam_size)
    locs = taxonomy.locations()
    return pd.DataFrame({
        "sample_id": df["sample_id"], "patient_id": df["patient_id"], "study_id": df["study_id"],
        "finding_index": df["finding_index"],  # the stated finding: its node is the stated level (evaluation)
        "vendor": df["vendor"].astype(str), "tracer": df["tracer"].astype(str), "location_id": df["location_id"],
        "ct_finding": df["ct_finding"].astype(str), "split": df["split"], "reference": df["caption"],
        "generated": [a.caption for a in out],
        "top_ids": [[locs[i].id for i in a.top_ids] for a in out],
        "top_conf": [np.asarray(a.top_conf, dtype=np.float32) for a in out],
        "top1_location": [locs[a.top_ids[0]].id for a in out],
        "window": [a.window for a in out], "prompt": [a.prompt for a in out],
    })
