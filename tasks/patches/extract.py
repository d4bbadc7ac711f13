"""Stage 4 (``petcap extract-patches``): the localizer and captioner patches of every caption sample.

``extract_patches(settings)`` compares the caption-sample table (from linking) with the sample table of the
patch store and does only what changed:

* new sample, or its study re-ingested since (the group's content hash or recipe changed): cut its patches
  into free rows of the patch store, then register them;
* caption columns changed (re-linking, another report extractor), or a removed sample came back: register a
  new row pointing at the same patches (no extraction);
* sample gone from the caption-sample table: register a tombstone — only when linking recorded why it left
  (a ``tombstones`` row: study withdrawn, or a forced removal); otherwise ``RemovalRefused`` before anything
  is written, unless ``allow_removals``;
* otherwise nothing — a refresh with nothing new starts no cluster, writes nothing.

Extraction runs one Dask task per study (``tasks.patches.resample.extract_study``: the study's lesions in one
sweep over its chunks) on a ``distributed`` LocalCluster sized by ``settings.patches`` (workers x threads,
processes by default) or on an existing scheduler at ``settings.patches.scheduler_address`` (its workers
need this package installed and access to both stores: use fsspec URLs or a shared file system). The
address lives in the patch settings because extraction is the only Dask stage so far; a second one should
move it to a shared section. Tasks go out largest study first; progress is a tqdm bar over completed
futures. Only what is needed to sample: a study's lesion centroids and boxes come from its group's
attributes; the worker decodes only the chunks the patches touch, each once.

Splits are not written here: ``tasks.splits`` keeps them in their own table, and ``read_patch_samples``
joins them in.

Atomicity: a worker writes a sample's patches (one chunk per field of view) before its task returns; the
driver registers rows only for tasks that returned, as new table parts (every ``commit_every`` samples and
at the end). A crash leaves at most rows written but not registered; the rerun allocates them again and
finishes the job. A study whose task fails is reported (``PatchExtractionError``, after the others are
registered) and retried by the next run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd
from tqdm import tqdm

from data_contracts.records import CaptionSample
from data_contracts.settings import PatchSettings, Settings
from data_contracts.errors import PetcapError, PrerequisiteError
from data_contracts.tables import CAPTION_SAMPLES, PATCH_SAMPLES, TOMBSTONES, PatchSampleRow, TombstoneRow
from tasks.deliveries import RemovalRefused
from tasks.ingest import store as volumes
from tasks.patches import resample
from tasks.patches.resample import Request, StudyJob
from tasks.patches.store import (
    PatchStoreError,
    SampleTable,
    current,
    ensure_rows,
    fields_of_view,
    free_rows,
    open_store,
)

log = logging.getLogger(__name__)

CAPTION_FIELDS = tuple(name for name in CaptionSample.model_fields if name != "split")


class PatchExtractionError(PetcapError):
    """Some studies could not be extracted; the others were registered. ``summary`` has the details."""

    def __init__(self, summary: PatchSummary):
        self.summary = summary
        failures = "; ".join(f"{k}: {v}" for k, v in sorted(summary.failed.items()))
        super().__init__(f"patch extraction failed for {len(summary.failed)} item(s): {failures}"[:2000],
                         reason="extraction_failed", hint="the others were registered; a rerun retries these")

    def __reduce__(self):
        return PatchExtractionError, (self.summary,)


@dataclass
class PatchSummary:
    samples: int  # in the caption-sample table
    new: int = 0  # samples extracted for the first time
    reextracted: int = 0  # samples whose study was re-ingested: extracted again into new rows
    relabelled: int = 0  # caption columns changed: new table row, same patches
    removed: int = 0  # tombstones written
    unchanged: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # study id (or sample id) -> reason
    tasks: int = 0  # Dask tasks submitted
    commits: int = 0  # table parts written
    rows: int = 0  # rows of the patch store
    seconds: float = 0.0
    workers: int = 0  # Dask workers used (0: no cluster was needed)

    @property
    def extracted(self) -> int:
        return self.new + self.reextracted

    def __str__(self) -> str:
        head = (f"extract-patches: {self.samples} caption samples; {self.new} new, {self.reextracted} re-extracted "
                f"(study re-ingested), {self.relabelled} relabelled, {self.removed} removed, {self.unchanged} "
                f"unchanged; {self.tasks} study tasks on {self.workers} workers, {self.commits} commits, "
                f"{self.rows} store rows, {self.seconds:.1f} s")
        lines = [head]
        lines += [f"  failed {k}: {v}" for k, v in sorted(self.failed.items())]
        return "\n".join(lines)


@dataclass(frozen=True)
class _StudyMeta:
    version: str  # "<content hash>:<recipe>"
    lesions: dict[int, tuple[tuple[float, float, float], tuple[int, ...]]]  # instance -> (centroid, bbox)


@dataclass
class Refresh:
    """What a refresh has to do, sample by sample (``plan_refresh``)."""

    extract: list[tuple[CaptionSample, _StudyMeta, bool]] = field(default_factory=list)  # (, , re-extract)
    relabel: list[tuple[CaptionSample, PatchSampleRow]] = field(default_factory=list)  # (new, current row)
    remove: list[PatchSampleRow] = field(default_factory=list)
    unchanged: int = 0
    failed: dict[str, str] = field(default_factory=dict)


def _study_meta(store_url: str, study_ids: list[str]) -> dict[str, _StudyMeta | None]:
    """Version and lesion geometry of each study from its complete group (None: not in the store)."""
    out: dict[str, _StudyMeta | None] = {}
    for sid in study_ids:
        attrs = volumes.completed(store_url, sid)
        if attrs is None:
            out[sid] = None
            continue
        lesions = {int(r["instance"]): (tuple(r["centroid_mm"]), tuple(r["bbox"])) for r in attrs["lesions"]}
        out[sid] = _StudyMeta(f"{attrs['content_hash'][:16]}:{attrs['recipe']}", lesions)
    return out


def _caption_columns(record: CaptionSample | PatchSampleRow) -> dict:
    return {name: getattr(record, name) for name in CAPTION_FIELDS}


def plan_refresh(samples: list[CaptionSample], now: pd.DataFrame, meta: dict[str, _StudyMeta | None]) -> Refresh:
    """Classify every caption sample against the current patch samples ``now`` (tombstones included; see the
    module docstring). A sample that comes back after removal is registered again on its old patches."""
    plan = Refresh()
    by_id = {r.sample_id: r for r in PATCH_SAMPLES.records(now)} if len(now) else {}
    for s in samples:
        m = meta.get(s.study_id)
        if m is None:
            plan.failed[s.study_id] = "study not in the volume store (not ingested, quarantined or interrupted)"
            continue
        if s.instance not in m.lesions:
            plan.failed[s.sample_id] = f"lesion instance {s.instance} is not in study {s.study_id}"
            continue
        old = by_id.get(s.sample_id)
        if old is None:
            plan.extract.append((s, m, False))
        elif old.volume_version != m.version:
            plan.extract.append((s, m, True))
        elif old.removed or _caption_columns(old) != _caption_columns(s):
            plan.relabel.append((s, old))
        else:
            plan.unchanged += 1
    present = {s.sample_id for s in samples}
    plan.remove = [old for sid, old in by_id.items() if sid not in present and not old.removed]
    return plan


def local_cluster(cfg: PatchSettings):
    """A LocalCluster of ``cfg.workers`` workers x ``cfg.threads_per_worker`` threads.

    Dask's nanny starts worker processes with ``MALLOC_TRIM_THRESHOLD_=65536``, which also switches off
    glibc's adaptive mmap threshold: then every large temporary array is a fresh mmap and page-faults in
    anew (measured: 1.9 million faults and as much system time as user time for 4 full-scale studies). The
    workers here start with glibc's defaults instead, which reuse those blocks (each task hands the free
    memory back when its study is done), and without Dask's statistical profiler (a dashboard diagnostic
    that costs ~5 % CPU); the peak RSS stays as the benchmark measures it.
    """
    import dask
    from distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
                          "distributed.worker.profile.enabled": False}):
        return LocalCluster(n_workers=cfg.workers, threads_per_worker=cfg.threads_per_worker,
                            processes=cfg.processes, memory_limit=cfg.memory_limit,
                            dashboard_address=":0", silence_logs=logging.WARNING)  # dashboard: any free port


@contextmanager
def dask_client(cfg: PatchSettings, client=None) -> Iterator:
    """The given client, a client of the scheduler at ``cfg.scheduler_address``, or a fresh LocalCluster's."""
    if client is not None:
        yield client
        return
    from distributed import Client

    if cfg.scheduler_address:
        with Client(cfg.scheduler_address) as c:
            yield c
        return
    with local_cluster(cfg) as cluster, Client(cluster) as c:
        yield c


def _sample_row(sample: CaptionSample, row: int, commit: int, centre, version: str, at: datetime,
                removed: bool = False) -> PatchSampleRow:
    return PatchSampleRow(**{k: getattr(sample, k) for k in CAPTION_FIELDS}, split=None, row=row, commit=commit,
                          centre_mm=tuple(centre), volume_version=version, extracted_at=at, removed=removed)


def extract_patches(settings: Settings, progress: bool = True, client=None,
                    allow_removals: bool | None = None) -> PatchSummary:
    """Bring the patch store and its sample table up to date with the caption-sample table.

    ``client``: an existing ``distributed.Client`` to run on (tests share one); by default a cluster is made
    from ``settings.patches`` only when something must be extracted. Raises ``PatchExtractionError`` (after
    registering everything that succeeded) when some studies failed.
    """
    t0 = time.perf_counter()
    allow = settings.refresh.allow_removals if allow_removals is None else allow_removals
    source = settings.table_path("caption_samples")
    if not source.exists():
        raise PrerequisiteError("no caption-sample table", path=str(source), reason="not_linked",
                                hint="run `petcap link` (or `petcap refresh`) first")
    samples: list[CaptionSample] = CAPTION_SAMPLES.records(CAPTION_SAMPLES.read(source), source=str(source))
    table = SampleTable(settings.table_path("patch_samples"))
    with table.lock():
        history = table.read_all()
        group = open_store(settings, create=False)
        if group is None and len(history):
            raise PatchStoreError(f"the sample table {table.path} registers patches but there is no patch store "
                                  f"at {settings.patch_store_url}: remove the table to rebuild, or restore the store")
        plan = plan_refresh(samples, current(history, keep_removed=True), _study_meta(settings.store_url,
                                                                    sorted({s.study_id for s in samples})))
        summary = PatchSummary(samples=len(samples), unchanged=plan.unchanged, failed=dict(plan.failed))
        now = datetime.now(timezone.utc)
        tombstones = _removal_tombstones(settings, plan.remove, allow, now)

        # Relabels and tombstones need no patches: one commit.
        if plan.relabel or plan.remove:
            commit = table.next_commit()
            rows = [old.model_copy(update={**_caption_columns(s), "commit": commit, "removed": False})
                    for s, old in plan.relabel]
            rows += [old.model_copy(update={"commit": commit, "removed": True}) for old in plan.remove]
            if tombstones:
                path = settings.table_path("tombstones")
                TOMBSTONES.write(pd.concat([TOMBSTONES.read(path), TOMBSTONES.frame(tombstones)],
                                           ignore_index=True), path)
            table.append(PATCH_SAMPLES.frame(rows))
            summary.relabelled, summary.removed, summary.commits = len(plan.relabel), len(plan.remove), 1

        if plan.extract:
            group = group if group is not None else open_store(settings, create=True)
            _extract(settings, plan, history, group, table, summary, now, progress, client)
        summary.rows = int(group["localizer"].shape[0]) if group is not None else 0
    summary.seconds = time.perf_counter() - t0
    if summary.failed:
        raise PatchExtractionError(summary)
    return summary


def _removal_tombstones(settings: Settings, remove: list[PatchSampleRow], allow: bool,
                        now: datetime) -> list[TombstoneRow]:
    """Tombstones for the patch rows to remove, with linking's reason; ``RemovalRefused`` for a sample whose
    leaving nobody recorded (e.g. the caption-sample table was replaced by hand) unless ``allow``."""
    if not remove:
        return []
    path = settings.table_path("tombstones")
    why = {r.key: r for r in TOMBSTONES.records(TOMBSTONES.read(path), source=str(path))
           if r.table == "caption_samples"}
    unexplained = [r.sample_id for r in remove if r.sample_id not in why]
    if unexplained and not allow:
        raise RemovalRefused(
            f"{len(unexplained)} samples with patches are gone from the caption-sample table without a recorded "
            f"reason ({', '.join(unexplained[:3])}{', ...' if len(unexplained) > 3 else ''}); nothing was changed",
            path=str(settings.table_path("caption_samples")), reason="removal_refused",
            hint="rerun `petcap link` (it keeps samples and records removals), or pass --allow-removals")
    return [TombstoneRow(table="patch_samples", key=r.sample_id, study_id=r.study_id,
                         reason=why[r.sample_id].reason if r.sample_id in why else "forced",
                         detail=why[r.sample_id].detail if r.sample_id in why else "--allow-removals", at=now)
            for r in remove]


def _extract(settings: Settings, plan: Refresh, history: pd.DataFrame, group, table: SampleTable,
             summary: PatchSummary, now: datetime, progress: bool, client) -> None:
    """Allocate rows, run one task per study, register the rows of every task that returned."""
    cfg = settings.patches
    todo = sorted(plan.extract, key=lambda item: item[0].sample_id)
    rows = free_rows(history, len(todo))  # deterministic: sorted samples -> lowest free rows
    ensure_rows(group, max(rows) + 1)
    by_study: dict[str, list[tuple[CaptionSample, _StudyMeta, bool, int]]] = {}
    for (sample, meta, again), row in zip(todo, rows):
        by_study.setdefault(sample.study_id, []).append((sample, meta, again, row))
    fovs = fields_of_view(cfg)
    jobs = []
    for sid, items in by_study.items():
        requests = tuple(Request(row, s.instance, *m.lesions[s.instance]) for s, m, _, row in items)
        jobs.append(StudyJob(settings.store_url, sid, requests, fovs, settings.patch_store_url, cfg.dtype,
                             cfg.ct_pad_hu, cfg.threads_per_worker, cfg.max_open_lesions))
    jobs.sort(key=lambda j: (-len(j.requests), j.study_id))  # largest first: better load balance

    pending: list[PatchSampleRow] = []

    def commit() -> None:
        if pending:
            number = table.next_commit()
            table.append(PATCH_SAMPLES.frame([r.model_copy(update={"commit": number}) for r in pending]))
            summary.commits += 1
            pending.clear()

    from distributed import as_completed

    with dask_client(cfg, client) as c:
        summary.workers = len(c.nthreads())
        futures = {c.submit(resample.extract_study, job, pure=False): job for job in jobs}
        summary.tasks = len(futures)
        bar = tqdm(total=len(todo), desc="extract-patches", unit="sample", disable=not progress)
        for future in as_completed(list(futures)):
            job = futures[future]
            try:
                done = future.result()
            except Exception as e:  # noqa: BLE001  any failure: the study's rows stay unregistered, rerun retries
                log.warning("patch extraction failed for %s: %s", job.study_id, e)
                summary.failed[job.study_id] = f"{type(e).__name__}: {e}"[:300]
                bar.update(len(job.requests))
                continue
            written = set(done.rows)
            for s, m, again, row in by_study[job.study_id]:
                if row in written:
                    centre, _ = m.lesions[s.instance]
                    pending.append(_sample_row(s, row, 1, centre, m.version, now))
                    summary.reextracted += again
                    summary.new += not again
            bar.update(len(job.requests))
            if len(pending) >= cfg.commit_every:
                commit()
        commit()
        bar.close()
