"""On a CUDA device: both models give the CPU's outputs in fp32, and learn under bf16 autocast through the product's
training step (``models.training.loop.train_step``). Skipped without CUDA; CI deselects them (``-m "not gpu"``).

    python -m pytest -m gpu tests/models/test_gpu.py
"""

from __future__ import annotations

import pytest
import torch

from benchmarks.train import CAPTIONS
from models.captioner import build_captioner, caption_loss, shift_captions
from models.cglp import prompt_texts
from models.localizer import build_localizer
from models.training.configs import LoopConfig, load_config
from models.training.loop import train_step
from models.vocab import PAD, Vocab

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def exact_fp32():
    """TF32 convolutions (cuDNN's default) round to 10 mantissa bits: compare in true fp32."""
    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before


def _demo_models():
    loc_cfg, cap_cfg = load_config("localizer", "demo").model, load_config("captioner", "demo").model
    vocab = Vocab.build(CAPTIONS * 4, extra_texts=prompt_texts())
    cap_cfg.vocab_size = len(vocab)
    torch.manual_seed(0)
    return loc_cfg, cap_cfg, vocab, build_localizer(loc_cfg).eval(), build_captioner(cap_cfg).eval()


def test_demo_models_on_cuda_match_the_cpu():
    loc_cfg, cap_cfg, vocab, localizer, captioner = _demo_models()
    g = torch.Generator().manual_seed(1)
    x = torch.rand(4, 3, *loc_cfg.patch_size, generator=g)
    extra = {}
    if loc_cfg.position_width:
        extra["position"] = torch.rand(4, 3, generator=g)
    if loc_cfg.detail_size is not None:
        extra["detail"] = torch.rand(4, 3, *loc_cfg.detail_size, generator=g)
    image = torch.rand(4, cap_cfg.in_channels, *cap_cfg.patch_size, generator=g)
    prompt = torch.full((4, cap_cfg.prompt_len), PAD)
    prompt[:, :3] = torch.tensor([vocab.encode(t, 3)[:3] for t in ("lung", "liver", "rib", "node")])
    caps = torch.tensor([vocab.encode(c, cap_cfg.max_caption_len) for c in CAPTIONS])
    inputs, _ = shift_captions(caps)

    with torch.no_grad():
        p_cpu = localizer.probabilities(x, **extra)
        logits_cpu = captioner(image, prompt, inputs)
        ids_cpu = captioner.generate(image, prompt, max_len=12)
        localizer.to(CUDA), captioner.to(CUDA)
        on = lambda t: t.to(CUDA)
        p_gpu = localizer.probabilities(on(x), **{k: on(v) for k, v in extra.items()}).cpu()
        logits_gpu = captioner(on(image), on(prompt), on(inputs)).cpu()
        ids_gpu = captioner.generate(on(image), on(prompt), max_len=12).cpu()
    assert torch.allclose(p_gpu, p_cpu, atol=1e-4), (p_gpu - p_cpu).abs().max()
    assert torch.allclose(logits_gpu, logits_cpu, atol=1e-3, rtol=1e-3), (logits_gpu - logits_cpu).abs().max()
    assert torch.equal(ids_gpu, ids_cpu)


def test_bf16_training_step_on_cuda_learns_eight_captions():
    """The captioner memorises 8 (image, prompt) -> caption pairs with the loop's own bf16 step; weights stay fp32."""
    _, cap_cfg, vocab, _, captioner = _demo_models()
    captioner.to(CUDA)
    g = torch.Generator().manual_seed(2)
    image = torch.rand(8, cap_cfg.in_channels, *cap_cfg.patch_size, generator=g).to(CUDA)
    prompt = torch.full((8, cap_cfg.prompt_len), PAD, device=CUDA)
    caps = torch.tensor([vocab.encode(CAPTIONS[i % 4], cap_cfg.max_caption_len) for i in range(8)], device=CUDA)
    loop = LoopConfig(lr=1e-3, amp=True, grad_clip=1.0)
    opt = torch.optim.Adam(captioner.parameters(), lr=loop.lr)

    def loss_fn(model, batch):
        inputs, targets = shift_captions(batch)
        return caption_loss(model(image, prompt, inputs), targets, label_smoothing=0.0)

    captioner.train()
    losses = [train_step(captioner, loss_fn, caps, opt, loop, CUDA) for _ in range(150)]
    captioner.eval()
    with torch.no_grad():
        decoded = [vocab.decode(row) for row in captioner.generate(image, prompt, max_len=cap_cfg.max_caption_len)]
    assert all(p.dtype == torch.float32 for p in captioner.parameters())
    assert losses[-1] < 0.1 * losses[0], (losses[0], losses[-1])
    assert decoded == [CAPTIONS[i % 4].lower() for i in range(8)], decoded
