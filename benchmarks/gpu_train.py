"""GPU speed check (bf16): training samples/s of both models and inference ms per lesion, in one short run.

    .venv/bin/python benchmarks/gpu_train.py                 # CUDA, bf16 autocast, demo and benchmark configs
    .venv/bin/python benchmarks/gpu_train.py --cpu --quick   # the same path on the CPU (fp32), to test the script

Writes one JSON line per config to stdout and, with ``--out DIR`` (default ``$OUT`` when set), ``gpu_train.json``
there. Needs only the repository and its venv (synthetic inputs; no data, no network). Budget: about a minute
on one GPU (warm-up included); ``--quick`` shrinks the step counts for a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from benchmarks.train import measure


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cpu", action="store_true", help="run on the CPU in fp32 (to test the script)")
    ap.add_argument("--quick", action="store_true", help="few steps and repeats")
    ap.add_argument("--configs", nargs="+", default=["demo", "benchmark"])
    ap.add_argument("--out", type=Path, default=Path(os.environ["OUT"]) if os.environ.get("OUT") else None)
    args = ap.parse_args(argv)

    if args.cpu:
        device, bf16 = "cpu", False
    elif torch.cuda.is_available():
        device, bf16 = "cuda", True
        torch.backends.cudnn.benchmark = True
    else:
        print("no CUDA device: rerun with --cpu to test the script on the CPU", file=sys.stderr)
        return 2
    steps, repeats = (2, 1) if args.quick else (10, 5)
    info = {"torch": torch.__version__, "python": platform.python_version(),
            "gpu": torch.cuda.get_device_name(0) if device == "cuda" else None}
    results = []
    for config in args.configs:
        t0 = time.perf_counter()
        r = measure(config, threads=os.cpu_count() or 1, steps=steps, repeats=repeats, device=device, bf16=bf16,
                    batches=(1, 32) if args.quick else (1, 32, 256))
        r.update(info, seconds=round(time.perf_counter() - t0, 1))
        if device == "cuda":
            r["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        results.append(r)
        print(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()}), flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_train.json").write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
