"""``demo`` (``petcap demo``, what ``make demo`` runs): the whole chain on the embedded defaults.

synthesize a cohort (+ its preview) -> dataset-refresh (ingest, structure, link, patches, splits) -> train-localizer ->
train-captioner (MLflow run + candidate version) -> promote-captioner -> evaluate-captioner (the per-scanner
report) -> caption-study on a new synthetic patient who is not in the cohort. Every stage is the same flow a
deployment runs, called here as a subflow on the ephemeral Prefect API, so the demo exercises the service.
A rerun regenerates the same cohort (deterministic), the refresh adds nothing, training resumes from its
finished checkpoints, and a version that already is the champion is not promoted again.
"""

from __future__ import annotations

import time
from pathlib import Path

from prefect import flow

from data_contracts.settings import Settings
from flows.caption import caption_study_flow
from flows.common import flow_settings
from flows.evaluation import evaluate_captioner_flow, promote_captioner_flow
from flows.refresh import dataset_refresh
from flows.task_wrappers import preview_task, synthesize_cohort_task
from flows.training import train_captioner_flow, train_localizer_flow
from tasks.timing import Laps

NEW_STUDY_SEED_OFFSET = 1_000_003  # the captioned patient is drawn from another seed: not in the cohort


@flow(name="demo", log_prints=True)
def demo(home: str | None = None, patients: int = 12, seed: int = 0, config: str = "demo") -> dict:
    """The whole chain; returns each stage's summary and where the reports are."""
    settings = flow_settings(home)
    laps = Laps()
    lap = laps.lap

    cohort = synthesize_cohort_task(settings.raw_dir, patients=patients, seed=seed, scale=settings.synth.scale,
                                    settings=settings, progress=False)
    print(cohort)
    preview = preview_task(settings.raw_dir, None, settings.preview_path)
    lap("synthesize")
    home_s = str(settings.home)
    refresh = dataset_refresh(home=home_s)
    lap("dataset-refresh")
    localizer = train_localizer_flow(home=home_s, config=config)
    lap("train-localizer")
    captioner = train_captioner_flow(home=home_s, config=config)
    lap("train-captioner")
    promotion = promote_captioner_flow(home=home_s, candidate_version=captioner["model_version"])
    lap("promote-captioner")
    evaluation = evaluate_captioner_flow(home=home_s)
    lap("evaluate-captioner")

    drop = settings.incoming_dir
    synthesize_cohort_task(drop, patients=1, seed=seed + NEW_STUDY_SEED_OFFSET, scale=settings.synth.scale,
                           settings=settings, progress=False)
    study = min((drop / "studies").iterdir())
    caption = caption_study_flow(study_dir=str(study), home=home_s)
    lap("caption-study")
    return {"refresh": refresh, "localizer": localizer, "captioner": captioner, "promotion": promotion,
            "evaluation": evaluation, "caption": caption, "preview": str(preview), "seconds": laps.seconds}


def run_demo(settings: Settings, patients: int, seed: int) -> int:
    """What ``petcap demo`` calls: run the demo flow and print where everything is."""
    t0 = time.perf_counter()
    out = demo(home=str(settings.home), patients=patients, seed=seed)
    r, loc, cap = out["refresh"], out["localizer"], out["captioner"]
    print(f"\nrefresh:    {r['ingested']} studies ingested ({r['quarantined']} quarantined), "
          f"{r['caption_samples']} caption samples, {r['patients']} patients split")
    print(f"localizer:  {loc['epochs']} epochs, val {loc['metrics']}")
    print(f"captioner:  {cap['epochs']} epochs, val {cap['metrics']}; registered version {cap['model_version']}")
    print(f"promotion:  {'promoted' if out['promotion']['promoted'] else 'refused'}: "
          f"{'; '.join(out['promotion']['reasons'])}")
    print(f"caption:    {out['caption']['lesions']} lesions of a new study captioned in "
          f"{out['caption']['seconds']:.1f} s -> {out['caption']['json']}")
    print(f"            visual report: {out['caption']['report']}")
    print(f"stage seconds: {out['seconds']}")
    print(f"MLflow:     {settings.tracking_uri}")
    print(f"preview:    {out['preview']}")
    ev = out["evaluation"]
    if ev.get("baseline"):
        print(f"evaluation: {ev['split']} BLEU-4 {100 * ev['overall']['bleu4']:.1f} vs the trivial baseline "
              f"(most frequent caption of the predicted location) {100 * ev['baseline']['bleu4']:.1f}, "
              f"{ev['predictions']} lesions")
    print(f"\nper-scanner evaluation report: {Path(out['evaluation']['report']).resolve()}")
    print(f"demo finished in {time.perf_counter() - t0:.0f} s")
    return 0
