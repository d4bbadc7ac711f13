"""``dataset-refresh``: take in what is new in the raw drop folder and bring every derived table up to date.

ingest (new or changed studies; bad ones quarantined, the others go on) -> structure reports and link findings
to lesion masks -> extract patches (only new or re-ingested samples; Dask) -> assign splits to new patients.

Incremental and idempotent because each step is: ingestion skips a study whose raw bytes and recipe are
unchanged, linking rewrites the same tables from the same inputs (the LLM backend answers from its cache),
patch extraction registers nothing when nothing changed and starts no cluster, and splits are assigned once
per patient. A second run over the same drop folder therefore adds nothing (``RefreshSummary.added`` is 0).

The nightly deployment (``infra/prefect.yaml``: ``dataset-refresh/nightly``) runs this on a cron schedule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from prefect import flow, get_run_logger

from flows.common import flow_settings
from flows.task_wrappers import (
    extract_patches_task,
    ingest_task,
    link_task,
    update_splits_task,
)


@dataclass(frozen=True)
class RefreshSummary:
    ingested: int  # studies ingested by this run (new or changed)
    skipped: int  # unchanged studies
    quarantined: int  # studies that failed ingestion this run (see the quarantine table)
    caption_samples: int  # in the caption-sample table after linking
    patches_extracted: int  # samples whose patches were cut this run
    patches_relabelled: int
    patches_removed: int
    new_patients: int  # patients assigned a split this run
    patients: int

    @property
    def added(self) -> int:
        """Everything this run added or changed; 0 on a rerun with nothing new."""
        return (self.ingested + self.patches_extracted + self.patches_relabelled + self.patches_removed
                + self.new_patients)


@flow(name="dataset-refresh", log_prints=True)
def dataset_refresh(home: str | None = None, raw_dir: str | None = None, backend: str | None = None,
                    progress: bool = False) -> dict:
    """One refresh of the dataset from the raw drop folder; returns ``RefreshSummary`` as a dict."""
    settings = flow_settings(home, raw_dir)
    log = get_run_logger()
    ingested = ingest_task(settings, progress=progress)
    log.info("%s", ingested)
    linked = link_task(settings, backend)
    log.info("link: %d reports -> %d findings -> %d caption samples", linked.studies, linked.findings,
             linked.samples)
    patches = extract_patches_task(settings, progress=progress)
    log.info("%s", patches)
    splits = update_splits_task(settings)
    log.info("split: %d patients, %d newly assigned", splits.patients, splits.new_patients)
    summary = RefreshSummary(
        ingested=ingested.ingested, skipped=ingested.skipped, quarantined=ingested.quarantined,
        caption_samples=linked.samples, patches_extracted=patches.extracted, patches_relabelled=patches.relabelled,
        patches_removed=patches.removed, new_patients=splits.new_patients, patients=splits.patients)
    log.info("refresh: %s (added %d)", summary, summary.added)
    return {**asdict(summary), "added": summary.added}
