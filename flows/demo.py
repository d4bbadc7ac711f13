"""`petcap demo` (what `make demo` runs): the whole chain that exists today, on the embedded defaults.

synthesize a demo cohort -> ingest into Zarr -> structure reports -> link findings to masks -> preview.
Composition only: each step is a task function; this module decides the order and prints where results are.
A rerun regenerates the same cohort (deterministic) and ingestion skips unchanged studies.
"""

from __future__ import annotations

import time

from data_contracts.settings import Settings
from tasks.ingest import ingest_all
from tasks.link import link_dataset
from tasks.synth.cohort import synthesize_cohort
from tasks.synth.preview import render_preview


def run_demo(settings: Settings, patients: int, seed: int) -> int:
    t0 = time.perf_counter()
    cohort = synthesize_cohort(settings.raw_dir, patients=patients, seed=seed, scale=settings.synth.scale,
                               settings=settings)
    print(cohort)
    ingested = ingest_all(settings, raw_dir=settings.raw_dir, store_url=settings.store_url)
    print(ingested)
    linked = link_dataset(settings)
    print(f"link: {linked.studies} reports -> {linked.findings} findings -> {linked.samples} caption samples "
          f"({linked.group_links} via 'multiple ... largest'); unmatched: {linked.unmatched_lesions} masks, "
          f"{linked.unmatched_findings} findings; pair precision {linked.pair_precision:.3f}, "
          f"recall {linked.pair_recall:.3f}")
    preview = render_preview(settings.raw_dir, None, settings.preview_path)
    print(f"\nvolume store: {settings.store_url}")
    print(f"tables:       {settings.tables_dir}  (studies, lesions, quarantine, findings, caption_samples, "
          f"link_unmatched)")
    print(f"preview:      {preview}")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    return 0
