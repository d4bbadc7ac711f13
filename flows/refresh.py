"""``dataset-refresh``: take in what is new in a delivery and bring every derived table up to date.

register the drop folder (or each delivery folder under ``raw_dir``) in the delivery log -> ingest (new or
changed studies; bad ones quarantined, the others go on) -> structure reports and link findings to lesion
masks, over every registered delivery -> extract patches (only new or re-ingested samples; Dask) -> assign
splits to new patients.

Tables never shrink silently. Deliveries accumulate (a new drop folder adds to the dataset, earlier ones stay);
samples leave only for studies withdrawn from the delivery log, with tombstones giving the reason; any other
removal is refused (``RemovalRefused``, exit 2) unless ``allow_removals``. When more than
``settings.refresh.max_failed_share`` of the studies (ingestion) or of the reports (structuring, LLM calls
included) fail, the run ends FAILED (``RefreshFailed``) with the counts before any derived table changes
(registration and ingestion of the good studies are additive and stay; findings, caption samples, patches and
splits do not change).

Every stage reports added / unchanged / removed / quarantined; the result holds them per stage and the
flow's state matches them: COMPLETED only when the gates passed, with the removals it made listed.

Incremental and idempotent: ingestion skips a study whose raw bytes and recipe are unchanged, linking rewrites
the same tables from the same inputs (the LLM backend answers from its cache), patch extraction registers
nothing when nothing changed and starts no cluster, splits are assigned once per patient. A second run over
the same drop folder adds nothing (``added`` is 0); a run killed at any point and run again ends where a
clean run ends.

The nightly deployment (``infra/prefect.yaml``: ``dataset-refresh/nightly``) runs this on a cron schedule.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from prefect import flow, get_run_logger

from flows.common import flow_settings
from flows.task_wrappers import (
    extract_patches_task,
    find_drops_task,
    ingest_task,
    link_task,
    register_delivery_task,
    update_splits_task,
)
from tasks.deliveries import RefreshFailed, too_many_failures


@dataclass(frozen=True)
class StageCounts:
    added: int
    unchanged: int
    removed: int
    quarantined: int


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
    samples_added: int = 0
    samples_removed: int = 0  # tombstoned (withdrawn studies, or forced)
    reports_quarantined: int = 0

    @property
    def added(self) -> int:
        """Everything this run added or changed (removals not included: see ``removed``); 0 on a rerun."""
        return self.ingested + self.patches_extracted + self.patches_relabelled + self.new_patients

    @property
    def removed(self) -> int:
        return self.samples_removed + self.patches_removed


def _check_ingest(settings, ingested: list) -> None:
    studies = sum(i.ingested + i.skipped + i.quarantined for i in ingested)
    failed = sum(i.quarantined for i in ingested)
    share = settings.refresh.max_failed_share
    if too_many_failures(failed, studies, settings):
        reasons = sorted({q.reason for i in ingested for q in i.quarantine})
        raise RefreshFailed(
            f"{failed} of {studies} studies could not be ingested ({', '.join(reasons)}), more than the allowed "
            f"share {share:g}; linking, patches and splits were not changed", reason="too_many_failures",
            hint="see the quarantine table for each study's file and reason, fix the delivery and rerun; the "
                 "share is PETCAP_REFRESH__MAX_FAILED_SHARE")


@flow(name="dataset-refresh", log_prints=True)
def dataset_refresh(home: str | None = None, raw_dir: str | None = None, backend: str | None = None,
                    progress: bool = False, allow_removals: bool | None = None) -> dict:
    """One refresh of the dataset from the drop folder ``raw_dir``; returns ``RefreshSummary`` as a dict with
    per-stage counts under ``stages``. ``allow_removals``: None takes ``settings.refresh.allow_removals``."""
    settings = flow_settings(home, raw_dir)
    log = get_run_logger()
    registered, ingests = [], []
    for drop in find_drops_task(settings.raw_dir):  # the drop folder, or each delivery folder under it
        registered.append(register_delivery_task(settings, drop, allow_removals=allow_removals))
        log.info("%s", registered[-1])
    for delivery in registered:
        ingests.append(ingest_task(settings, raw_dir=delivery.drop, progress=progress))
        log.info("%s", ingests[-1])
    _check_ingest(settings, ingests)
    linked = link_task(settings, backend, allow_removals=allow_removals)
    log.info("link: %d reports -> %d findings -> %d caption samples (%d added, %d changed, %d unchanged, %d "
             "removed, %d kept from earlier runs); %d reports quarantined", linked.studies, linked.findings,
             linked.samples, linked.added, linked.changed, linked.unchanged, linked.removed, linked.kept,
             linked.quarantined_reports)
    patches = extract_patches_task(settings, progress=progress, allow_removals=allow_removals)
    log.info("%s", patches)
    splits = update_splits_task(settings)
    log.info("split: %d patients, %d newly assigned", splits.patients, splits.new_patients)
    stages = {
        "deliveries": StageCounts(sum(d.added + d.redelivered for d in registered),
                                  sum(d.unchanged for d in registered), sum(len(d.withdrawn) for d in registered), 0),
        "ingest": StageCounts(sum(i.ingested for i in ingests), sum(i.skipped for i in ingests), 0,
                              sum(i.quarantined for i in ingests)),
        "link": StageCounts(linked.added + linked.changed, linked.unchanged + linked.kept, linked.removed,
                            linked.quarantined_reports),
        "patches": StageCounts(patches.extracted + patches.relabelled, patches.unchanged, patches.removed,
                               len(patches.failed)),
        "splits": StageCounts(splits.new_patients, splits.patients - splits.new_patients, 0, 0),
    }
    summary = RefreshSummary(
        ingested=stages["ingest"].added, skipped=stages["ingest"].unchanged, quarantined=stages["ingest"].quarantined,
        caption_samples=linked.samples, patches_extracted=patches.extracted, patches_relabelled=patches.relabelled,
        patches_removed=patches.removed, new_patients=splits.new_patients, patients=splits.patients,
        samples_added=linked.added, samples_removed=linked.removed, reports_quarantined=linked.quarantined_reports)
    for name, c in stages.items():
        log.info("%-10s added %d, unchanged %d, removed %d, quarantined %d", name, c.added, c.unchanged, c.removed,
                 c.quarantined)
    log.info("refresh: added %d, removed %d (tombstoned), quarantined %d studies and %d reports", summary.added,
             summary.removed, summary.quarantined, summary.reports_quarantined)
    return {**asdict(summary), "added": summary.added, "removed": summary.removed,
            "stages": {k: asdict(v) for k, v in stages.items()}}
