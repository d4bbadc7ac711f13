"""caption-study benchmark: seconds per new study on CPU (ingestion included) and per lesion.

    python benchmarks/caption_study.py --home DIR [--studies 4] [--scale demo] [--seed 7] [--threads 2]
    python benchmarks/caption_study.py --localizer L.pt --captioner C.pt [...]

Models: the registry's ``champion`` under ``--home`` (what ``petcap demo`` trains and promotes), or the two
checkpoint files given. Studies: ``--studies`` new synthetic patients (another seed than any training cohort),
written by ``petcap synth``'s generator at ``--scale`` (DICOM and NIfTI as the vendor mix draws them).

Each study is captioned by ``serving.study.caption_study`` with the models loaded once (a service keeps
them): describe -> ingest into a private store -> both patches per lesion -> localizer -> DWS -> CGLP ->
captions (beam search as trained) -> captions.json + report.png. Printed per study: lesions, total seconds
and the stage split (ingest, patches, models, outputs); then the median seconds per study and per lesion.
The first study is a warm-up (lazy imports, allocator), reported but not in the medians. Model loading is
timed separately. Run on an idle machine.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--home", type=Path, help="petcap home whose registry holds a champion (after petcap demo)")
    parser.add_argument("--localizer", type=Path, help="localizer checkpoint (with --captioner: no registry)")
    parser.add_argument("--captioner", type=Path)
    parser.add_argument("--studies", type=int, default=4, help="studies timed (plus one warm-up)")
    parser.add_argument("--scale", choices=["tiny", "demo", "full"], default="demo")
    parser.add_argument("--seed", type=int, default=7_000_001)
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--work", type=Path, help="folder for the studies and outputs (default: a tmp folder)")
    args = parser.parse_args()

    import torch

    from data_contracts.settings import Settings
    from serving.models_cache import load_pipeline, resolve_models
    from serving.study import caption_study
    from tasks.synth.cohort import synthesize_cohort

    torch.set_num_threads(args.threads)
    settings = Settings(home=args.home) if args.home else Settings()
    work = args.work or Path(tempfile.mkdtemp(prefix="petcap-bench-caption-"))
    try:
        t0 = time.perf_counter()
        if args.localizer and args.captioner:
            localizer, captioner = args.localizer, args.captioner
        else:
            found = resolve_models(settings)
            localizer, captioner = found["localizer"], found["captioner"]
            print(f"models: registered version {found['version']} (champion) of {settings.tracking_uri}")
        models = load_pipeline(localizer, captioner)
        print(f"models loaded in {time.perf_counter() - t0:.2f} s ({models.method}, {models.params})")

        drop = work / "incoming"
        synthesize_cohort(drop, patients=args.studies + 1, seed=args.seed, scale=args.scale, settings=settings,
                          progress=False)
        studies = sorted((drop / "studies").iterdir())[: args.studies + 1]
        rows = []
        for i, study in enumerate(studies):
            fmt = "dicom" if (study / "ct").is_dir() else "nifti"
            result = caption_study(study, work / "out" / study.name, settings, models)
            s = result.captions.seconds
            rows.append((result.lesions, result.seconds, s))
            tag = " (warm-up)" if i == 0 else ""
            print(f"study {i} [{fmt}, {result.captions.vendor}]: {result.lesions} lesions, {result.seconds:.2f} s "
                  f"(ingest {s['ingest']:.2f}, patches {s['patches']:.2f}, models {s['models']:.2f}, "
                  f"outputs {s['outputs']:.2f}){tag}")
        timed = rows[1:] or rows
        per_study = statistics.median(r[1] for r in timed)
        per_lesion = statistics.median(r[1] / max(r[0], 1) for r in timed)
        models_per_lesion = statistics.median(r[2]["models"] / max(r[0], 1) for r in timed)
        print(f"\ncaption-study on CPU ({args.threads} threads, scale {args.scale}, {len(timed)} studies): "
              f"median {per_study:.2f} s per study (ingestion included), {per_lesion:.3f} s per lesion; "
              f"models alone {models_per_lesion:.3f} s per lesion")
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
