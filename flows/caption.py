"""``caption-study`` (and ``petcap caption``): captions for every lesion of one new study.

raw DICOM or NIfTI + lesion mask -> ingestion into a private store -> localizer top-5 -> DWS -> CGLP ->
captions; writes ``captions.json`` (top-5 locations and confidences per lesion) and ``report.png``.
The models are the checkpoint files given, else the registered version given, else the ``champion``.

``caption-studies``: every study of a drop folder, mapped over a ``DaskTaskRunner`` (the cluster of
``settings.patches``: a scheduler address, or a LocalCluster of worker processes) — where Dask pays: studies
are independent, each costs seconds of CPU, and each worker keeps its loaded models between studies.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger, unmapped
from prefect_dask import DaskTaskRunner

from data_contracts.settings import get_settings
from flows.common import flow_settings
from flows.task_wrappers import (
    caption_study_files_task,
    caption_study_task,
    champion_checkpoints_task,
    load_models_task,
)
from tasks.ingest.pseudonym import study_pseudonym


@flow(name="caption-study", log_prints=True)
def caption_study_flow(study_dir: str, out_dir: str | None = None, home: str | None = None,
                       model_version: str | None = None, localizer_checkpoint: str | None = None,
                       captioner_checkpoint: str | None = None, vendor: str | None = None,
                       tracer: str | None = None) -> dict:
    """Caption one study folder; returns where the JSON and the visual report are, the lesion count and time."""
    settings = flow_settings(home)
    # Named by the study's pseudonym: a raw folder name (accession number, sometimes a name) is never a path.
    out = Path(out_dir) if out_dir else settings.captions_dir / study_pseudonym(Path(study_dir).name,
                                                                                settings.pseudonym_key)
    if localizer_checkpoint is None or captioner_checkpoint is None:
        found = champion_checkpoints_task(settings, model_version, out / "model")
        localizer_checkpoint, captioner_checkpoint = found["localizer"], found["captioner"]
    models = load_models_task(settings, localizer_checkpoint, captioner_checkpoint)
    result = caption_study_task(study_dir, out, settings, models, vendor=vendor, tracer=tracer)
    get_run_logger().info("captioned %d lesions in %.1f s: %s, %s", result.lesions, result.seconds,
                          result.json_path, result.report_path)
    return {"json": str(result.json_path), "report": str(result.report_path), "lesions": result.lesions,
            "seconds": result.seconds}


def _dask_runner() -> DaskTaskRunner:
    """The Dask cluster of ``settings.patches``: an existing scheduler when configured, else a LocalCluster of
    worker processes (one thread each: torch uses the process's cores)."""
    cfg = get_settings().patches
    if cfg.scheduler_address:
        return DaskTaskRunner(address=cfg.scheduler_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": cfg.workers, "threads_per_worker": 1, "processes": True,
                                          "memory_limit": cfg.memory_limit, "dashboard_address": None})


@flow(name="caption-studies", log_prints=True, task_runner=_dask_runner())
def caption_studies_flow(drop_dir: str, out_dir: str | None = None, home: str | None = None,
                         model_version: str | None = None) -> dict:
    """Caption every study folder under ``drop_dir/studies`` (or ``drop_dir`` itself) — a day's new studies —
    mapped over the Dask cluster; each worker loads the models once. A study that fails is reported, the
    others are captioned. Returns per study pseudonym where its JSON is (or its error), and the lesion count."""
    settings = flow_settings(home)
    root = Path(drop_dir) / "studies" if (Path(drop_dir) / "studies").is_dir() else Path(drop_dir)
    studies = sorted(p for p in root.iterdir() if p.is_dir())
    out = Path(out_dir) if out_dir else settings.captions_dir
    found = champion_checkpoints_task(settings, model_version, out / "model")
    # Outputs and results are keyed by each study's pseudonym, never its raw folder name.
    names = [study_pseudonym(s.name, settings.pseudonym_key) for s in studies]
    futures = caption_study_files_task.map([str(s) for s in studies], [out / n for n in names],
                                           unmapped(settings), found["localizer"], found["captioner"])
    results: dict[str, dict] = {}
    for name, future in zip(names, futures):
        future.wait()
        if future.state.is_completed():
            r = future.result()
            results[name] = {"json": str(r.json_path), "lesions": r.lesions, "seconds": r.seconds}
        else:
            results[name] = {"error": str(future.state.message)}
    captioned = [r for r in results.values() if "json" in r]
    get_run_logger().info("captioned %d of %d studies (%d lesions)", len(captioned), len(studies),
                          sum(r["lesions"] for r in captioned))
    return {"model_version": found["version"], "studies": results}
