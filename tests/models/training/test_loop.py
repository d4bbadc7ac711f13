"""The shared training loop: the lr schedule, resume equals an uninterrupted run, DDP keeps ranks equal."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from models.training.configs import LoopConfig
from models.training.loop import fit

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Toy(Dataset):
    """Eight fixed (x, y) pairs of a noisy linear map."""

    def __init__(self, n: int = 8):
        g = torch.Generator().manual_seed(1)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.randn(4, 2, generator=g) + 0.1 * torch.randn(n, 2, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


def toy_loss(model, batch):
    return nn.functional.mse_loss(model(batch["x"]), batch["y"])


def toy_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


CFG = {"epochs": 6, "batch_size": 4, "lr": 1e-2, "weight_decay": 5e-4, "grad_clip": 1.0, "threads": 1, "seed": 3}


def test_milestones_at_each_third():
    assert LoopConfig(epochs=30).lr_milestones() == [10, 20]
    assert LoopConfig(epochs=10).lr_milestones() == [3, 7]
    assert LoopConfig(epochs=2).lr_milestones() == [1]
    assert LoopConfig(epochs=1).lr_milestones() == []


def test_adam_settings_step_decay_and_loss_falls():
    model = toy_model()
    state = fit(model, toy_loss, Toy(), LoopConfig(**CFG), torch.device("cpu"), progress=False)
    assert [h["lr"] for h in state.history] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4, 1e-4])
    assert state.epoch == 6 and state.samples_seen == 6 * 8
    assert state.history[-1]["train_loss"] < state.history[0]["train_loss"]


def test_resume_continues_the_same_schedule_and_optimizer_state():
    """Stopping after 2 of 6 epochs and resuming from the saved state gives exactly the uninterrupted run."""
    full = toy_model()
    saved: list[dict] = []
    fit(full, toy_loss, Toy(), LoopConfig(**CFG), torch.device("cpu"), progress=False,
        save=lambda extra: saved.append({"extra": copy.deepcopy(extra), "weights": {k: v.clone() for k, v in full.state_dict().items()}}))
    assert [s["extra"]["train_state"]["epoch"] for s in saved] == [1, 2, 3, 4, 5, 6]

    at2 = saved[1]
    state = at2["extra"]["train_state"]
    assert state["scheduler"]["last_epoch"] == 2 and state["scheduler"]["milestones"] == {2: 1, 4: 1}
    adam = state["optimizer"]["state"][0]
    assert int(adam["step"]) == 2 * 2  # two epochs of two batches
    assert state["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.999)
    assert state["optimizer"]["param_groups"][0]["weight_decay"] == 5e-4

    resumed = toy_model()
    resumed.load_state_dict(at2["weights"])
    out = fit(resumed, toy_loss, Toy(), LoopConfig(**CFG), torch.device("cpu"), progress=False, resume_state=state)
    assert out.epoch == 6
    assert [h["lr"] for h in out.history] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4, 1e-4])
    assert torch.equal(flat(resumed), flat(full))


DDP_SCRIPT = textwrap.dedent("""
    import sys, torch
    from torch import nn
    sys.path.insert(0, {root!r})
    sys.path.insert(0, {here!r})
    from models.training.configs import LoopConfig
    from models.training.loop import fit, init_distributed_from_env, dist_rank, dist_world
    from test_loop import Toy, toy_loss, toy_model
    torch.set_num_threads(1)
    assert init_distributed_from_env() and dist_world() == 2
    assert torch.distributed.get_backend() == "gloo"
    model = toy_model()
    fit(model, toy_loss, Toy(4), LoopConfig(epochs=1, batch_size=2, lr=1e-2, grad_clip=0.0, threads=1),
        torch.device("cpu"), progress=False)
    torch.save(torch.cat([p.detach().reshape(-1) for p in model.parameters()]), {out!r} + f"/rank{{dist_rank()}}.pt")
    torch.distributed.destroy_process_group()
""")


def test_ddp_two_cpu_processes_keep_weights_equal(tmp_path):
    """torchrun, 2 processes, gloo: after one step on different shards both ranks hold the same weights, and they
    equal one single-process step on the whole batch (DDP averages the gradients)."""
    script = tmp_path / "ddp_step.py"
    script.write_text(DDP_SCRIPT.format(root=str(ROOT), here=str(Path(__file__).parent), out=str(tmp_path)))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and its two workers: one process group
        proc.communicate()
        raise
    assert proc.returncode == 0, err[-3000:]
    w0, w1 = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert torch.equal(w0, w1)
    init = flat(toy_model())
    assert not torch.allclose(w0, init)

    single = toy_model()
    fit(single, toy_loss, Toy(4), LoopConfig(epochs=1, batch_size=4, lr=1e-2, grad_clip=0.0, threads=1),
        torch.device("cpu"), progress=False)
    assert torch.allclose(w0, flat(single), atol=1e-6)


def test_every_epoch_logs_a_line_and_reports_its_row(caplog):
    rows = []
    with caplog.at_level("INFO", logger="models.training.loop"):
        fit(toy_model(), toy_loss, Toy(), LoopConfig(**{**CFG, "epochs": 3, "val_every": 2}), torch.device("cpu"),
            validate=lambda m: {"loss": 0.25}, progress=False, desc="toy", on_epoch=rows.append)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert "val_loss" in rows[1] and "val_loss" not in rows[0]
    lines = [r.getMessage() for r in caplog.records if r.name == "models.training.loop"]
    assert len(lines) == 3 and lines[1].startswith("toy epoch 2/3: train_loss ") and "val_loss 0.25" in lines[1]


def test_every_epoch_carries_a_validation_metric_with_a_quick_validation(caplog):
    """Full validation every ``val_every`` epochs; the cheap ``quick_validate`` in between (and only there), in the
    epoch's line and its row (the MLflow step)."""
    rows, calls = [], []

    def quick(m):
        calls.append(m.training)
        return {"loss": 0.5 + len(calls)}

    with caplog.at_level("INFO", logger="models.training.loop"):
        fit(toy_model(), toy_loss, Toy(), LoopConfig(**{**CFG, "epochs": 4, "val_every": 3}), torch.device("cpu"),
            validate=lambda m: {"loss": 0.25, "bleu4": 0.1}, progress=False, desc="toy", on_epoch=rows.append,
            quick_validate=quick)
    assert calls == [False, False]  # epochs 1 and 2, in eval mode; 3 and 4 are full validations
    assert [r["val_loss"] for r in rows] == [1.5, 2.5, 0.25, 0.25] and "val_bleu4" in rows[2]
    lines = [r.getMessage() for r in caplog.records if r.name == "models.training.loop"]
    assert len(lines) == 4 and all("train_loss " in ln and "val_loss " in ln for ln in lines)
    assert "val_loss 1.5" in lines[0]


# ------------------------------------------------------------------------------------------ every RNG stream
def _random_set():
    """Eight 1x6x6x6 images through MONAI RandAffine (``Augment``), so every epoch draws augmentation randomness."""
    from models.training.configs import AugmentConfig
    from models.training.data import Augment, TensorSamples

    g = torch.Generator().manual_seed(5)
    images = torch.randn(8, 1, 6, 6, 6, generator=g)
    return TensorSamples(images, Augment(AugmentConfig(rotate_deg=20, scale=0.2, prob=1.0), seed=11),
                         y=torch.randn(8, 2, generator=g))


def _random_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(216, 16), nn.Dropout(0.3), nn.Tanh(), nn.Linear(16, 2))


def _random_loss(model, batch):
    import random

    import numpy as np

    jitter = torch.tensor(np.random.normal(size=2) * 1e-3 + random.random() * 1e-3, dtype=torch.float32)
    return nn.functional.mse_loss(model(batch["image"]), batch["y"] + jitter)


def test_resume_restores_every_rng_so_the_run_is_bit_identical():
    """Augmentation (MONAI), dropout (torch), numpy and Python draws, the data order: a run stopped after 2 of 6
    epochs and resumed from its checkpoint state in fresh objects equals the uninterrupted run bit for bit."""
    cfg = LoopConfig(**CFG)
    full = _random_model()
    saved: list[dict] = []
    fit(full, _random_loss, _random_set(), cfg, torch.device("cpu"), progress=False,
        save=lambda extra: saved.append({"extra": copy.deepcopy(extra),
                                         "weights": {k: v.clone() for k, v in full.state_dict().items()}}))
    state = saved[1]["extra"]["train_state"]
    assert set(state["rng"]) == {"torch", "cuda", "numpy", "python", "sampler", "transforms"}
    assert "augment.affine" in state["rng"]["transforms"]

    # The checkpoint round trip the training modules use (weights_only) keeps every state.
    import io
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)

    import random

    import numpy as np
    torch.manual_seed(123), np.random.seed(123), random.seed(123)  # a new process starts elsewhere
    resumed = _random_model()
    resumed.load_state_dict(saved[1]["weights"])
    fit(resumed, _random_loss, _random_set(), cfg, torch.device("cpu"), progress=False, resume_state=state)
    assert torch.equal(flat(resumed), flat(full))

    # Without the transform and numpy states (the old checkpoint) the runs part: the test can fail.
    old = {k: v for k, v in state.items() if k != "rng"}
    legacy = _random_model()
    legacy.load_state_dict(saved[1]["weights"])
    fit(legacy, _random_loss, _random_set(), cfg, torch.device("cpu"), progress=False, resume_state=old)
    assert not torch.equal(flat(legacy), flat(full))
