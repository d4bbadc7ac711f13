"""``caption-study`` (and ``petcap caption``): captions for every lesion of one new study.

raw DICOM or NIfTI + lesion mask -> ingestion into a private store -> localizer top-5 -> DWS -> CGLP ->
captions; writes ``captions.json`` (top-5 locations and confidences per lesion) and ``report.png``.
The models are the checkpoint files given, else the registered version given, else the ``champion``.

``caption-studies``: every study of a drop folder, mapped over a ``DaskTaskRunner`` (the cluster of
``settings.patches``: a scheduler address, or a LocalCluster of worker processes) — where Dask pays: studies
are independent, each costs seconds of CPU, and each worker keeps its loaded models between studies.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from prefect import flow, unmapped
from prefect_dask import DaskTaskRunner

from data_contracts.settings import get_settings
from flows.common import flow_settings, run_logger
from flows.task_wrappers import (
    caption_study_files_task,
    correct_lesion_task,
    export_and_push_task,
    resolve_models_task,
)
from serving.hospital_loop import wants_dicom
from serving.study import default_out_dir
from tasks.ingest.pseudonym import study_pseudonym


@flow(name="caption-study", log_prints=True)
def caption_study_flow(study_dir: str, out_dir: str | None = None, home: str | None = None,
                       model_version: str | None = None, localizer_checkpoint: str | None = None,
                       captioner_checkpoint: str | None = None, vendor: str | None = None,
                       tracer: str | None = None, push: bool = False, correct_lesion: int | None = None,
                       correct_location: str | None = None, corrected_by: str | None = None) -> dict:
    """Caption one study folder; returns where the JSON and the visual report are, the status, lesion count and
    time. The same steps ``petcap caption`` calls directly when no Prefect server is configured.

    A DICOM study also gets its DICOM SEG and TID 1500 SR (``push``: stored on the PACS by STOW-RS).
    ``correct_lesion`` + ``correct_location`` (+ ``corrected_by``): a clinician's correction of a study captioned
    before into the same ``out_dir``: that lesion's caption is regenerated with the corrected location, a
    corrected SR written (and pushed), the correction recorded for the next dataset refresh."""
    settings = flow_settings(home)
    dicom = wants_dicom(study_dir, push)
    found = resolve_models_task(settings, model_version, localizer_checkpoint, captioner_checkpoint)
    if correct_lesion is not None:
        fix = correct_lesion_task(study_dir, out_dir or default_out_dir(settings, study_dir), settings,
                                  found["localizer"], found["captioner"], correct_lesion, correct_location,
                                  corrected_by or "unknown", found["version"], push)
        run_logger().info("lesion %d: %s -> %s", fix.instance, fix.previous_location_id, fix.location_id)
        return {"correction": dataclasses.asdict(fix)}
    result = caption_study_files_task(study_dir, out_dir, settings, found["localizer"], found["captioner"],
                                      vendor=vendor, tracer=tracer, model_version=found["version"])
    run_logger().info("%s: %d lesions in %.1f s: %s, %s", result.captions.status, result.lesions,
                          result.seconds, result.json_path, result.report_path)
    summary = caption_summary(result)
    if dicom:
        summary["dicom"] = export_and_push_task(study_dir, result.json_path.parent, settings, found["version"], push)
    return summary


def caption_summary(result) -> dict:
    """What ``petcap caption`` prints and a flow run returns."""
    return {"json": str(result.json_path), "report": str(result.report_path), "lesions": result.lesions,
            "status": result.captions.status, "seconds": result.seconds}


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
    mapped over the Dask cluster; each worker loads the models once (the files are shared, downloaded once). A study that fails is reported, the
    others are captioned. Returns per study pseudonym where its JSON is (or its error), and the lesion count."""
    settings = flow_settings(home)
    root = Path(drop_dir) / "studies" if (Path(drop_dir) / "studies").is_dir() else Path(drop_dir)
    studies = sorted(p for p in root.iterdir() if p.is_dir())
    out = Path(out_dir) if out_dir else settings.captions_dir
    found = resolve_models_task(settings, model_version)
    # Outputs and results are keyed by each study's pseudonym, never its raw folder name.
    names = [study_pseudonym(s.name, settings.pseudonym_key) for s in studies]
    futures = caption_study_files_task.map([str(s) for s in studies], [out / n for n in names],
                                           unmapped(settings), found["localizer"], found["captioner"],
                                           model_version=found["version"])
    results: dict[str, dict] = {}
    for name, future in zip(names, futures):
        future.wait()
        if future.state.is_completed():
            r = future.result()
            results[name] = {"json": str(r.json_path), "lesions": r.lesions, "seconds": r.seconds}
        else:
            results[name] = {"error": str(future.state.message)}
    captioned = [r for r in results.values() if "json" in r]
    run_logger().info("captioned %d of %d studies (%d lesions)", len(captioned), len(studies),
                          sum(r["lesions"] for r in captioned))
    return {"model_version": found["version"], "studies": results}
