"""Training and inference speed of the two models on this machine (CPU by default).

    .venv/bin/python benchmarks/train.py [--config demo] [--threads 1 2] [--steps 5] [--device cpu|cuda]
                                         [--bf16] [--json out.json]

Measures, with the named config's model sizes and synthetic inputs (speed does not depend on the values):
- training samples/s of the localizer and of the captioner (forward + backward + Adam step, batch = config's);
- inference milliseconds per lesion, batch 1 and batch 32, of the whole stage-2 path: localizer top-5 -> DWS on
  the CT channel -> CGLP prompt ids -> captioner decoding (greedy, and beam as configured).
Each figure is the median of ``--repeats`` timings after one warm-up. ``--bf16`` runs under
``torch.autocast(bfloat16)`` (meant for CUDA; see ``benchmarks/gpu_train.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from data_contracts.settings import Settings
from models.captioner import build_captioner, caption_loss, shift_captions
from models.cglp import cglp_prompt_ids, prompt_texts
from models.inference import CaptionPipeline, InferenceParams, LesionAnswer
from models.localizer import build_localizer
from models.training.configs import load_config
from models.training.loop import make_optimizer
from models.vocab import Vocab

CAPTIONS = [  # a realistic vocabulary size and caption length for the decoder
    "right upper lobe of the lung, solid pulmonary nodule with intensely increased FDG uptake",
    "subcarinal lymph node (station 7), enlarged lymph node with mildly increased FDG uptake",
    "T7 vertebral body, osteolytic bone lesion with increased PSMA uptake",
    "right adrenal gland, increased FDG uptake without CT correlate",
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeats: int) -> float:
    """Median seconds of fn() over ``repeats`` runs after one warm-up."""
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def raw_patches(n: int, size: tuple[int, int, int], device: torch.device) -> torch.Tensor:
    """(n, 3, *size) patches in physical units: CT HU in [-1000, 1500], PET SUV in [0, 15], a central mask."""
    x = torch.rand(n, 3, *size, device=device)
    x[:, 0] = x[:, 0] * 2500 - 1000
    x[:, 1] = x[:, 1] * 15
    x[:, 2] = 0
    c = [s // 2 for s in size]
    x[:, 2, c[0] - 2:c[0] + 2, c[1] - 2:c[1] + 2, c[2] - 2:c[2] + 2] = 1
    return x


def infer_captions(pipeline: CaptionPipeline, large: torch.Tensor, small: torch.Tensor, positions: torch.Tensor,
                   tracers: list[str], beam: int | None = None) -> list[LesionAnswer]:
    """What the inference figures time: the one inference path on raw patches (``CaptionPipeline.caption``)."""
    return pipeline.caption(large, small, positions, tracers, beam_size=beam)


def build(config: str, device: torch.device):
    loc_cfg = load_config("localizer", config)
    cap_cfg = load_config("captioner", config)
    vocab = Vocab.build(CAPTIONS * 10, extra_texts=prompt_texts())
    cap_model_cfg = cap_cfg.model
    cap_model_cfg.vocab_size = len(vocab)
    torch.manual_seed(0)
    return loc_cfg, cap_cfg, vocab, build_localizer(loc_cfg.model).to(device), build_captioner(cap_model_cfg).to(device)


def measure(config: str = "demo", threads: int = 1, steps: int = 5, repeats: int = 3, device: str = "cpu",
            bf16: bool = False, batches: tuple[int, ...] = (1, 32)) -> dict:
    dev = torch.device(device)
    if dev.type == "cpu":
        torch.set_num_threads(threads)
    settings = Settings()
    loc_cfg, cap_cfg, vocab, localizer, captioner = build(config, dev)
    amp = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    out = {"config": config, "device": str(dev), "threads": torch.get_num_threads(), "bf16": bf16,
           "localizer_patch": list(loc_cfg.model.patch_size), "captioner_patch": list(cap_cfg.model.patch_size),
           "decoder": cap_cfg.model.decoder}

    # ---- training throughput
    B = loc_cfg.loop.batch_size
    x = torch.rand(B, 3, *loc_cfg.model.patch_size, device=dev)
    loc = torch.randint(0, localizer.num_categories, (B,), device=dev)

    def guidance(n: int) -> dict:  # the localizer's inputs besides the large FOV, as configured
        g = {}
        if loc_cfg.model.uses_position:
            g["position"] = torch.rand(n, 3, device=dev)
        if loc_cfg.model.detail_size is not None:
            g["detail"] = torch.rand(n, 3, *loc_cfg.model.detail_size, device=dev)
        return g
    g_train = guidance(B)
    opt, _ = make_optimizer(localizer, loc_cfg.loop)
    localizer.train()

    def loc_step():
        for _ in range(steps):
            opt.zero_grad()
            with amp:
                loss = localizer(x, loc, **g_train)
            loss.backward()
            opt.step()
    out["localizer_train_samples_per_s"] = B * steps / timed(loc_step, dev, repeats)

    Bc = cap_cfg.loop.batch_size
    img = torch.rand(Bc, cap_cfg.model.in_channels, *cap_cfg.model.patch_size, device=dev)
    caps = torch.tensor([vocab.encode(CAPTIONS[i % 4], cap_cfg.model.max_caption_len) for i in range(Bc)], device=dev)
    ids = torch.randint(0, localizer.num_categories, (Bc, 5))
    tracers = (lambda n: ["FDG"] * n if cap_cfg.method.tracer_token else None)  # noqa: E731
    prompts = cglp_prompt_ids(ids, torch.full((Bc, 5), 0.5), vocab, length=cap_cfg.model.prompt_len,
                              tracers=tracers(Bc)).to(dev)
    prompts = prompts if cap_cfg.model.use_prompt else None
    opt_c, _ = make_optimizer(captioner, cap_cfg.loop)
    captioner.train()

    def cap_step():
        for _ in range(steps):
            opt_c.zero_grad()
            inputs, targets = shift_captions(caps)
            with amp:
                loss = caption_loss(captioner(img, prompts, inputs), targets)
            loss.backward()
            opt_c.step()
    out["captioner_train_samples_per_s"] = Bc * steps / timed(cap_step, dev, repeats)

    # ---- inference: localizer -> DWS -> CGLP -> captioner, per lesion, through the one inference path
    localizer.eval()
    captioner.eval()
    if localizer.position_prior is not None:  # time the fused path a trained localizer runs
        localizer.position_prior.fit(torch.rand(512, 3), torch.randint(0, localizer.num_categories, (512,)))
    extra = {"train_config": {"method": dataclasses.asdict(cap_cfg.method)},
             "inference": InferenceParams.from_settings(settings).to_dict()}
    pipeline = CaptionPipeline(localizer, captioner, cap_cfg.model, vocab, extra, dev)
    for batch in batches:
        big, small = raw_patches(batch, loc_cfg.model.patch_size, dev), raw_patches(batch, cap_cfg.model.patch_size, dev)
        positions = torch.rand(batch, 3, device=dev)

        def infer(beam: int, big=big, small=small, positions=positions, batch=batch):
            with amp:
                # a random model may stop early; a trained one writes ~15 words
                infer_captions(pipeline, big, small, positions, ["FDG"] * batch, beam)
        out[f"infer_ms_per_lesion_b{batch}_greedy"] = 1000 * timed(lambda: infer(1), dev, repeats) / batch
        beam = cap_cfg.method.beam_size
        if beam > 1:
            out[f"infer_ms_per_lesion_b{batch}_beam{beam}"] = 1000 * timed(lambda beam=beam: infer(beam), dev, repeats) / batch
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="demo")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    results = [measure(args.config, t, args.steps, args.repeats, args.device, args.bf16) for t in args.threads]
    for r in results:
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
