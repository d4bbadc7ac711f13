"""The training loop both models share: Adam, step decay, bf16 AMP on CUDA, clipping, checkpoints with resume, DDP.

    fit(model, loss_fn, train_set, cfg, save=..., resume_state=..., validate=...) -> FitState

- Optimiser: Adam (betas 0.9/0.999, weight decay 5e-4 by default), lr divided by 10 at each third of the epochs
  (``torch.optim.lr_scheduler.MultiStepLR`` stepped once per epoch).
- AMP: ``torch.autocast("cuda", bfloat16)`` when the device is CUDA and ``cfg.amp``; never on CPU (bf16 matmuls
  are slower than fp32 on these CPUs). bf16 needs no gradient scaler.
- Gradient clipping of the global L2 norm (``cfg.grad_clip``; 0 disables).
- Checkpoints: after every validation the caller's ``save(extra)`` writes the model's own self-describing
  checkpoint; ``extra["train_state"]`` holds what resuming needs (epoch, optimiser and scheduler state, history,
  RNG). ``fit(..., resume_state=extra["train_state"])`` continues at the next epoch with the same lr schedule.
- DDP: under ``torchrun`` (or any launcher that initialised ``torch.distributed``) the model is wrapped in
  ``DistributedDataParallel`` (gloo on CPU, nccl on CUDA), each rank reads its shard (``DistributedSampler``),
  and only rank 0 saves, validates and shows progress.
"""

from __future__ import annotations

import logging
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler
from tqdm.auto import tqdm

from data_contracts.settings import Settings
from models.training.configs import LoopConfig

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What ``train_localizer`` / ``train_captioner`` return (the CLI prints it; flows log it)."""

    model: str  # "localizer" | "captioner"
    config: str  # config name
    checkpoint: str  # path of the saved checkpoint
    epochs: int  # epochs completed in total (resumed ones included)
    train_loss: float  # mean training loss of the last epoch
    val_loss: float | None
    metrics: dict[str, float] = field(default_factory=dict)  # validation metrics of the final model
    seconds: float = 0.0  # wall time of this call
    samples_per_s: float = 0.0  # training throughput of this call (all ranks together)
    train_samples: int = 0
    val_samples: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class FitState:
    epoch: int = 0  # epochs completed
    history: list[dict] = field(default_factory=list)  # one row per epoch: epoch, lr, train_loss, val_*
    samples_seen: int = 0
    train_seconds: float = 0.0


# ------------------------------------------------------------------------------------------ machine
def pick_device(settings: Settings) -> torch.device:
    want = settings.train.device
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("Settings.train.device is 'cuda' but no CUDA device is available")
        if dist_ready():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cuda")
    return torch.device("cpu")


def set_threads(cfg: LoopConfig, settings: Settings) -> int:
    """Torch intra-op threads: the config's, else the settings', else one per core (split between local ranks)."""
    n = cfg.threads or settings.train.threads or (os.cpu_count() or 1)
    if dist_ready():
        n = max(1, n // int(os.environ.get("LOCAL_WORLD_SIZE", str(dist_world()))))
    torch.set_num_threads(n)
    return n


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


# ------------------------------------------------------------------------------------------ RNG state
# Every random stream a training epoch draws from, saved in the checkpoint and restored on resume, so a resumed
# run equals the uninterrupted one bit for bit on CPU: torch (init, dropout), CUDA, numpy's and Python's global
# generators, the data order (the sampler's generator), and every MONAI randomizable transform reachable from the
# training set (``Augment``'s RandAffine and its grid). Stored as tensors and plain numbers, so checkpoints
# still load with ``torch.load(weights_only=True)``. (DataLoader worker processes draw from their own copies;
# bit-exact resume holds with ``loader_workers=0``.)
def _np_state(state: tuple) -> dict:
    kind, keys, pos, has_gauss, gauss = state
    return {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
            "has_gauss": int(has_gauss), "gauss": float(gauss)}


def _np_restore(d: dict) -> tuple:
    return d["kind"], d["keys"].numpy().astype(np.uint32), d["pos"], d["has_gauss"], d["gauss"]


def randomizables(obj: Any, prefix: str = "", depth: int = 4, seen: set | None = None) -> dict[str, Any]:
    """MONAI ``Randomizable`` objects reachable through attributes, lists and dicts of ``obj``, by path."""
    from monai.transforms import Randomizable

    seen = set() if seen is None else seen
    if depth < 0 or id(obj) in seen or isinstance(obj, (torch.Tensor, np.ndarray, str, bytes, int, float)):
        return {}
    seen.add(id(obj))
    found = {prefix or "self": obj} if isinstance(obj, Randomizable) else {}
    if isinstance(obj, dict):
        children = obj.items()
    elif isinstance(obj, (list, tuple)):
        children = enumerate(obj)
    else:
        children = vars(obj).items() if hasattr(obj, "__dict__") else ()
    for name, child in children:
        found.update(randomizables(child, f"{prefix}.{name}" if prefix else str(name), depth - 1, seen))
    return found


def rng_state(train_set: Any, sampler: Any = None) -> dict:
    generator = getattr(sampler, "generator", None)
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": _np_state(np.random.get_state()),
        "python": {"version": random.getstate()[0], "state": list(random.getstate()[1]),
                   "gauss": random.getstate()[2]},
        "sampler": generator.get_state() if generator is not None else None,
        "transforms": {path: _np_state(r.R.get_state()) for path, r in randomizables(train_set).items()},
    }


def restore_rng_state(state: dict, train_set: Any, sampler: Any = None) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        np.random.set_state(_np_restore(state["numpy"]))
    if "python" in state:
        py = state["python"]
        random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    generator = getattr(sampler, "generator", None)
    if state.get("sampler") is not None and generator is not None:
        generator.set_state(state["sampler"])
    found = randomizables(train_set)
    for path, saved in state.get("transforms", {}).items():
        if path in found:
            found[path].R.set_state(_np_restore(saved))


# ------------------------------------------------------------------------------------------ distributed
def dist_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def dist_rank() -> int:
    return torch.distributed.get_rank() if dist_ready() else 0


def dist_world() -> int:
    return torch.distributed.get_world_size() if dist_ready() else 1


def init_distributed_from_env() -> bool:
    """Join the process group torchrun describes (WORLD_SIZE > 1 in the environment); gloo on CPU, nccl on CUDA.
    Returns whether this process is one of several."""
    if dist_ready():
        return True
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    torch.distributed.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return True


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, DistributedDataParallel) else model


# ------------------------------------------------------------------------------------------ the loop
def make_optimizer(model: nn.Module, cfg: LoopConfig):
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=cfg.lr_milestones(), gamma=cfg.gamma)
    return opt, sched


def train_step(model: nn.Module, loss_fn: Callable, batch: Any, opt: torch.optim.Optimizer, cfg: LoopConfig,
               device: torch.device) -> float:
    """One optimiser step on one batch -> the batch loss."""
    use_amp = cfg.amp and device.type == "cuda"
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
        loss = loss_fn(model, batch)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
    opt.step()
    return float(loss.detach())


def fit(model: nn.Module, loss_fn: Callable[[nn.Module, Any], torch.Tensor], train_set: Dataset, cfg: LoopConfig,
        device: torch.device, collate: Callable | None = None, save: Callable[[dict], None] | None = None,
        validate: Callable[[nn.Module], dict[str, float]] | None = None, resume_state: dict | None = None,
        progress: bool = True, desc: str = "train", loader_workers: int = 0,
        on_epoch: Callable[[dict], None] | None = None,
        quick_validate: Callable[[nn.Module], dict[str, float]] | None = None) -> FitState:
    """Train ``model`` (already on ``device``) for ``cfg.epochs`` epochs in total.

    Each epoch ends (rank 0) with one log line (loss, validation metrics, seconds) and ``on_epoch(row)``, the
    epoch's history row (e.g. MLflow step metrics while the run is on).

    loss_fn(model, batch) -> scalar loss, batch as the DataLoader gives it (moved to the device inside loss_fn);
    validate(unwrapped model) -> metrics, on rank 0 every ``cfg.val_every`` epochs and after the last;
    quick_validate(unwrapped model) -> cheap validation metrics (a forward pass: val loss, top-k accuracy), on
    rank 0 after every other epoch, so every epoch's line and MLflow step carry a validation metric;
    save(extra) on rank 0 after each validation, ``extra["train_state"]`` being what ``resume_state`` takes.
    """
    seed_everything(cfg.seed + dist_rank())
    opt, sched = make_optimizer(model, cfg)
    state = FitState()
    if resume_state is not None:
        opt.load_state_dict(resume_state["optimizer"])
        sched.load_state_dict(resume_state["scheduler"])
        state = FitState(epoch=int(resume_state["epoch"]), history=list(resume_state["history"]),
                         samples_seen=int(resume_state.get("samples_seen", 0)),
                         train_seconds=float(resume_state.get("train_seconds", 0.0)))
    net = model
    if dist_ready():
        ids = [device.index] if device.type == "cuda" else None
        net = DistributedDataParallel(model, device_ids=ids)
    sampler = (DistributedSampler(train_set, shuffle=True, seed=cfg.seed) if dist_ready()
               else RandomSampler(train_set, generator=torch.Generator().manual_seed(cfg.seed)))
    loader = DataLoader(train_set, batch_size=cfg.batch_size, sampler=sampler, collate_fn=collate,
                        num_workers=loader_workers, drop_last=len(train_set) > cfg.batch_size * dist_world())
    if resume_state is not None:
        rng = resume_state.get("rng") or {"torch": resume_state["torch_rng"]}  # older checkpoints: torch only
        restore_rng_state(rng, train_set, sampler)
    main = dist_rank() == 0
    bar = tqdm(total=cfg.epochs, initial=state.epoch, desc=desc, disable=not (progress and main), leave=False)
    while state.epoch < cfg.epochs:
        epoch = state.epoch
        if isinstance(sampler, DistributedSampler):
            sampler.set_epoch(epoch)
        else:
            sampler.generator.manual_seed(cfg.seed * 100_003 + epoch)
        net.train()
        t0, losses, seen = time.perf_counter(), [], 0
        for batch in loader:
            losses.append(train_step(net, loss_fn, batch, opt, cfg, device))
            seen += _batch_len(batch)
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch + 1, "lr": opt.param_groups[0]["lr"], "train_loss": float(np.mean(losses)),
               "seconds": seconds, "samples": seen * dist_world()}
        sched.step()
        state.epoch += 1
        state.samples_seen += seen * dist_world()
        state.train_seconds += seconds
        last = state.epoch == cfg.epochs
        if main and (last or state.epoch % cfg.val_every == 0):
            if validate is not None:
                unwrap(net).eval()
                row.update({f"val_{k}": float(v) for k, v in validate(unwrap(net)).items()})
            state.history.append(row)
            if save is not None:
                save({"train_state": {
                    "epoch": state.epoch, "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                    "history": state.history, "samples_seen": state.samples_seen,
                    "train_seconds": state.train_seconds, "torch_rng": torch.get_rng_state(),
                    "rng": rng_state(train_set, sampler),
                    "loop": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()},
                }})
        elif main:
            if quick_validate is not None:
                unwrap(net).eval()
                row.update({f"val_{k}": float(v) for k, v in quick_validate(unwrap(net)).items()})
            state.history.append(row)
        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k.startswith(("train_loss", "val_"))})
        bar.update(1)
        if main:
            log.info("%s epoch %d/%d: %s", desc, state.epoch, cfg.epochs, epoch_line(row))
            if on_epoch is not None:
                on_epoch(row)
    bar.close()
    if dist_ready():
        torch.distributed.barrier()
    return state


def epoch_line(row: dict) -> str:
    """"train_loss 1.234, val_loss 1.301, val_bleu4 0.2100, 12.3 s": one epoch's history row, readable."""
    parts = [f"{k} {v:.4g}" for k, v in row.items() if k.startswith(("train_loss", "val_")) and v is not None]
    return ", ".join(parts + [f"{row['seconds']:.1f} s"])


def _batch_len(batch: Any) -> int:
    if isinstance(batch, dict):
        batch = next(iter(batch.values()))
    if isinstance(batch, list | tuple):
        batch = batch[0]
    return len(batch)
