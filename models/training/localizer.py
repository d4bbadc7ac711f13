"""Stage 1 training: the CLIP localizer on the large-FOV patches, then frozen, its top-5 cached per sample.

    train_localizer(settings, config="demo") -> TrainResult      checkpoint <checkpoints_dir>/localizer.pt
    top5_cache(settings, checkpoint) -> DataFrame                 <checkpoints_dir>/localizer_top5.parquet

Targets are ``taxonomy.index_of(location_id)``. Validation: top-1 / top-5 accuracy over all 134 categories on
the val split (the localizer's real task), plus the contrastive loss. The checkpoint is the localizer's own
self-describing file (``models.localizer.save_localizer``) with the training config and resume state in
``extra``; rerunning with the same config resumes an unfinished run. With ``model.position_prior`` the trained
model's position prior is then fitted (Gaussians on the training lesions, fusion weights on the val split) and
saved into the same checkpoint before the top-5 cache is filled.

The top-5 cache: one row per sample and localizer: sample_id, localizer (hash of the checkpoint file), top_ids
(5 class indices), top_locations (their taxonomy ids), top_conf (5 float32 confidences, kept float32 so a
confidence of exactly float32(0.95) meets the 0.95 rules as the localizer produced it). Rows of other localizer
checkpoints are kept, so the captioner always reads the answers of the localizer it names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from data_contracts import taxonomy
from data_contracts.atomic import atomic_open
from data_contracts.settings import Settings
from models.inference import TOP_K, input_logits, localize_inputs
from models.localizer import CLIPLocalizer, LocalizerConfig, build_localizer, load_localizer, save_localizer
from models.training import data
from models.training.configs import ModelTrainConfig, load_config
from models.training.loop import TrainResult, dist_rank, fit, init_distributed_from_env, pick_device, set_threads

CHECKPOINT = "localizer.pt"
CACHE = "localizer_top5.parquet"


def checkpoint_path(settings: Settings) -> Path:
    return settings.localizer_checkpoint  # <checkpoints_dir>/localizer.pt (CHECKPOINT)


def cache_path(settings: Settings) -> Path:
    return settings.checkpoints_dir / CACHE


def file_hash(path: Path) -> str:
    """First 16 hex digits of the file's SHA-256: names one exact localizer."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def _payload_extra(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True).get("extra", {})


def _loss(device):
    def loss_fn(model, batch):
        extra = {k: batch[k].to(device) for k in ("position", "detail") if k in batch}
        return model(batch["image"].to(device, non_blocking=True), batch["location"].to(device), **extra)
    return loss_fn


def guidance_for(cfg: LocalizerConfig, settings: Settings, df: pd.DataFrame) -> dict[str, torch.Tensor]:
    """The inputs besides the large-FOV patch that this localizer takes, for samples ``df``: ``position`` (N, 3)
    scan positions and / or ``detail`` (N, 3, *detail_size) small-FOV patches; empty for the paper's model."""
    out = {}
    if cfg.uses_position:
        out["position"] = data.localizer_positions(settings, df)
    if cfg.detail_size is not None:
        out["detail"] = data.localizer_inputs(settings, df["row"].to_numpy(), cfg, kind="captioner")
    return out


def accuracy(model: CLIPLocalizer, images: torch.Tensor, targets: torch.Tensor,
             device: torch.device | str = "cpu", guidance: dict[str, torch.Tensor] | None = None) -> dict[str, float]:
    """Top-1 and top-5 accuracy over all categories (``guidance``: ``guidance_for``'s extra inputs)."""
    if len(images) == 0:
        return {}
    g = guidance or {}
    ids, _ = localize_inputs(model, images, device=device, positions=g.get("position"), details=g.get("detail"))
    return {"top1": float((ids[:, 0] == targets).float().mean()),
            "top5": float((ids == targets[:, None]).any(1).float().mean())}


def train_localizer(settings: Settings, config: str = "demo", overrides: dict | None = None,
                    progress: bool = True, resume: bool = True,
                    on_epoch: Callable[[dict], None] | None = None) -> TrainResult:
    """Train (or resume) the localizer of config ``config``, freeze it, and cache its top-5 for every sample."""
    t_start = time.perf_counter()
    cfg: ModelTrainConfig = load_config("localizer", config, overrides)
    init_distributed_from_env()
    device = pick_device(settings)
    set_threads(cfg.loop, settings)
    # the PET range is a setting at training time and part of the model (its checkpoint) from then on
    model_cfg = dataclasses.replace(cfg.model, pet_suv_max=float(settings.pet_suv_max))

    train_df, val_df = data.samples(settings, "train"), data.samples(settings, "val")
    # Leaf labels only: a sample whose finest known location is a coarse node or a leaf outside the classes
    # (no linked mask decided it, see tasks.link.linked_location) trains the captioner, not the localizer.
    train_df, val_df = (df[df["location_id"].map(taxonomy.is_class)].reset_index(drop=True)
                        for df in (train_df, val_df))
    if len(train_df) == 0:
        raise ValueError("no training samples (split 'train' is empty): synthesize/ingest more patients")
    train_x = data.localizer_inputs(settings, train_df["row"].to_numpy(), model_cfg)
    train_y = data.location_index(train_df["location_id"])
    val_x = data.localizer_inputs(settings, val_df["row"].to_numpy(), model_cfg)
    val_y = data.location_index(val_df["location_id"])
    train_g, val_g = guidance_for(model_cfg, settings, train_df), guidance_for(model_cfg, settings, val_df)
    train_set = data.TensorSamples(train_x, data.Augment(cfg.augment, cfg.loop.seed + dist_rank()),
                                   augment_extras=("detail",) if "detail" in train_g else (), location=train_y,
                                   **train_g)

    path = checkpoint_path(settings)
    torch.manual_seed(cfg.loop.seed)
    model = build_localizer(model_cfg)
    resume_state = None
    if resume and path.is_file():
        extra = _payload_extra(path)
        state = extra.get("train_state")
        if (extra.get("train_config") == cfg.to_dict() and extra.get("train_samples") == len(train_df)
                and extra.get("pet_suv_max", model_cfg.pet_suv_max) == model_cfg.pet_suv_max
                and state and state["epoch"] <= cfg.loop.epochs):
            model = load_localizer(path)  # a run of this same recipe and data: continue it (or keep it, if done)
            resume_state = state
            if model.position_prior is not None:  # refitted after training; validate the network alone till then
                model.position_prior.fitted.fill_(False)
    model.to(device)

    def validate(m: CLIPLocalizer) -> dict[str, float]:
        """Top-1 / top-5 of the val split, and the contrastive loss of (at most) 256 val samples (two at least)."""
        out = accuracy(m, val_x, val_y, device, val_g)
        if len(val_x) > 1:
            with torch.no_grad():
                extra = {k: v[:256].float().to(device) for k, v in val_g.items()}
                out["loss"] = float(m(val_x[:256].float().to(device), val_y[:256].to(device), **extra))
        return out

    def save(extra: dict) -> None:
        save_localizer(model, path, extra={**extra, "train_config": cfg.to_dict(),
                                           "train_samples": len(train_df), "pet_suv_max": model_cfg.pet_suv_max})

    state = fit(model, _loss(device), train_set, cfg.loop, device, save=save, validate=validate,
                resume_state=resume_state, progress=progress, desc="localizer",
                loader_workers=settings.train.loader_workers, on_epoch=on_epoch,
                quick_validate=validate)  # a forward pass of the val split: every epoch
    if dist_rank() != 0:
        return TrainResult("localizer", config, str(path), state.epoch, float("nan"), None)

    prior_fit = None
    if model_cfg.position_prior:
        prior_fit = fit_position_prior(path, train_g["position"], train_y, val_x, val_y, val_g, device)
    frozen = freeze(load_localizer(path, map_location=device))
    top5_cache(settings, path, model=frozen, progress=progress)
    metrics = accuracy(frozen, val_x, val_y, device, val_g)
    last = state.history[-1] if state.history else {}
    seconds = time.perf_counter() - t_start
    this_call = [h for h in state.history if resume_state is None or h["epoch"] > resume_state["epoch"]]
    trained_s = sum(h["seconds"] for h in this_call)
    return TrainResult(
        model="localizer", config=config, checkpoint=str(path), epochs=state.epoch,
        train_loss=float(last.get("train_loss", float("nan"))), val_loss=last.get("val_loss"),
        metrics=metrics, seconds=seconds,
        samples_per_s=(sum(h["samples"] for h in this_call) / trained_s) if trained_s else 0.0,
        train_samples=len(train_df), val_samples=len(val_df),
        extra={"history": state.history, "device": str(device), "threads": torch.get_num_threads(),
               **({"position_prior": prior_fit} if prior_fit else {})},
    )


def fit_position_prior(path: Path, train_positions: torch.Tensor, train_y: torch.Tensor, val_x: torch.Tensor,
                       val_y: torch.Tensor, val_g: dict[str, torch.Tensor], device: torch.device) -> dict:
    """Fit the checkpoint's position prior (``models.position_prior``): the Gaussians on the training lesions, the
    fusion weights on the val split's CLIP logits; saved into the checkpoint (atomically) unless it already holds
    the fit of these same training lesions (a resumed, finished run keeps its file and its top-5 cache). -> the
    fit's figures (weights, val cross-entropy and top-1 without and with the prior)."""
    extra = _payload_extra(path)
    done = extra.get("position_prior")
    if done and done.get("train_samples") == len(train_y):
        return done
    model = load_localizer(path, map_location=device)
    val_logits = input_logits(model, val_x, device=device, positions=val_g["position"], details=val_g.get("detail"),
                              fuse=False)
    model.cpu()  # the prior is fitted and saved on the CPU (a few 3x3 matrices)
    model.position_prior.fit(train_positions, train_y)
    fit = model.position_prior.fit_weights(val_logits, val_g["position"], val_y)
    if len(val_y):
        fused = model.position_prior.fuse(val_logits, val_g["position"])
        fit.update(val_top1_clip=float((val_logits.argmax(1) == val_y).float().mean()),
                   val_top1_fused=float((fused.argmax(1) == val_y).float().mean()))
    fit["train_samples"] = len(train_y)
    save_localizer(model, path, extra={**extra, "position_prior": fit})
    return fit


def freeze(model: CLIPLocalizer) -> CLIPLocalizer:
    """Eval mode and no gradients: stage 2 never updates the localizer."""
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def read_cache(settings: Settings, localizer_hash: str) -> pd.DataFrame:
    """The cached top-5 rows of one localizer (empty when none)."""
    path = cache_path(settings)
    if not path.is_file():
        return pd.DataFrame(columns=["sample_id", "localizer", "top_ids", "top_locations", "top_conf"])
    df = pd.read_parquet(path)
    return df[df["localizer"] == localizer_hash].reset_index(drop=True)


def top5_cache(settings: Settings, checkpoint: Path | str | None = None, model: CLIPLocalizer | None = None,
               progress: bool = False) -> pd.DataFrame:
    """Top-5 of every current sample under the localizer ``checkpoint``: cached rows reused, missing ones computed
    and appended (atomic rewrite). -> DataFrame sample_id, localizer, top_ids, top_locations, top_conf."""
    checkpoint = Path(checkpoint or checkpoint_path(settings))
    digest = file_hash(checkpoint)
    all_samples = data.samples(settings)
    cached = read_cache(settings, digest)
    missing = all_samples[~all_samples["sample_id"].isin(set(cached["sample_id"]))]
    if len(missing):
        model = model if model is not None else freeze(load_localizer(checkpoint))
        device = next(model.parameters()).device
        images = data.localizer_inputs(settings, missing["row"].to_numpy(), model.cfg)
        g = guidance_for(model.cfg, settings, missing)
        ids, conf = localize_inputs(model, images, device=device, positions=g.get("position"), details=g.get("detail"))
        locs = taxonomy.locations()
        new = pd.DataFrame({
            "sample_id": missing["sample_id"].to_numpy(), "localizer": digest,
            "top_ids": [row.astype(np.int16) for row in ids.numpy()],
            "top_locations": [[locs[i].id for i in row] for row in ids.tolist()],
            "top_conf": [row.astype(np.float32) for row in conf.numpy()],
        })
        _append_cache(settings, new)
        cached = pd.concat([cached, new], ignore_index=True)
    keep = cached[cached["sample_id"].isin(set(all_samples["sample_id"]))]
    return keep.reset_index(drop=True)


CACHE_SCHEMA = pa.schema([("sample_id", pa.string()), ("localizer", pa.string()),
                          ("top_ids", pa.list_(pa.int16())), ("top_locations", pa.list_(pa.string())),
                          ("top_conf", pa.list_(pa.float32()))])


def _append_cache(settings: Settings, new: pd.DataFrame) -> None:
    path = cache_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    old = pd.read_parquet(path) if path.is_file() else None
    df = new if old is None else pd.concat([old, new], ignore_index=True)
    df = df.drop_duplicates(["sample_id", "localizer"], keep="last")
    table = pa.Table.from_pandas(df, schema=CACHE_SCHEMA, preserve_index=False)
    with atomic_open(path) as f:
        pq.write_table(table, f)


def cache_tensors(cache: pd.DataFrame, sample_ids: pd.Series | list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Cached rows in the order of ``sample_ids`` -> top_ids (N, 5) long, top_conf (N, 5) float32."""
    by_id = cache.set_index("sample_id")
    missing = [s for s in sample_ids if s not in by_id.index]
    if missing:
        raise KeyError(f"{len(missing)} samples have no cached localizer answer (e.g. {missing[0]}): "
                       "run top5_cache with this localizer")
    rows = by_id.loc[list(sample_ids)]
    ids = torch.tensor(np.stack([np.asarray(r, dtype=np.int64) for r in rows["top_ids"]]).reshape(-1, TOP_K))
    conf = torch.from_numpy(np.stack([np.asarray(r, dtype=np.float32) for r in rows["top_conf"]]).reshape(-1, TOP_K))
    return ids, conf
