"""Link lesion instances (masks) to report findings, and turn each pair into a caption sample.

Per study, a cost between every lesion and every finding combines
- anatomy: the lesion's candidate sites (``tasks.sites``: the segmenter class under the mask, or for a lesion
  in fat -- a node -- its position among segmented landmarks; a real segmenter has no nodal stations) against
  the finding's location — one of the candidates (or a hierarchy node containing one), a near one to the
  derived site (same system, region and side: T7 vs T8), unknown (no candidate; or two stations, one only
  guessed from position), or another (never linked);
- SUVmax agreement: |ln(mask SUVmax / stated SUVmax)|;
- size: the stated long axis against the mask's equivalent-sphere diameter, beyond a tolerance.
Without a label map only the side (from the centroid against the body midline) stands in for anatomy.

Pairs are chosen one-to-one with the Hungarian method (scipy's ``linear_sum_assignment``); a pair over the
cost gate is refused. Then a report's "multiple ... the largest ..." statement, which describes several
masks, takes the remaining masks at exactly its location whose SUVmax does not exceed the stated largest
one (``group`` links). Every unmatched mask and finding is recorded with its reason. The paper's rule holds:
one lesion mask and its description per sample, so several lesion types in one region are separate samples.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from data_contracts import hierarchy, segmentation, taxonomy
from data_contracts.caption import caption_for
from data_contracts.errors import PetcapError, PrerequisiteError
from data_contracts.records import (
    CaptionSample,
    Lesion,
    StructuredFinding,
    Study,
)
from data_contracts.settings import LinkSettings, RawLayout, Settings
from data_contracts.tables import (
    CAPTION_SAMPLES,
    FINDINGS,
    LESIONS,
    QUARANTINE,
    STUDIES,
    TOMBSTONES,
    UNMATCHED,
    FindingRow,
    ManifestRow,
    TombstoneRow,
    UnmatchedRow,
)
from tasks import deliveries
from tasks.corrections import apply_corrections, latest_corrections
from tasks.deliveries import RefreshFailed, RemovalRefused, too_many_failures
from tasks.ingest.pseudonym import study_pseudonym
from tasks.ingest.report_text import read_reports, report_source
from tasks.structure.backend import structure_texts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pair:
    instance: int
    finding_index: int
    cost: float
    kind: str  # "hungarian" | "group"


@dataclass
class LinkResult:
    pairs: list[Pair] = field(default_factory=list)
    unmatched: list[UnmatchedRow] = field(default_factory=list)


Sites = dict[int, tuple[str, ...]]  # lesion instance -> candidate taxonomy sites, the derived one first


def lesion_candidates(lesion: Lesion, sites: Sites | None = None) -> tuple[str, ...]:
    """Candidate sites of a lesion: derived from the segmentation and its position (``tasks.sites``) when
    ``sites`` has them, else the sites of the segmenter class under the mask (``anatomy_label``)."""
    if sites is not None and lesion.instance in sites:
        return sites[lesion.instance]
    return segmentation.label_sites(lesion.anatomy_label)


def lesion_location(lesion: Lesion, sites: Sites | None = None) -> str | None:
    """The derived site of a lesion (the first candidate), if any."""
    cand = lesion_candidates(lesion, sites)
    return cand[0] if cand else None


def equivalent_diameter_mm(lesion: Lesion) -> float:
    return (6.0 * lesion.volume_ml * 1000.0 / math.pi) ** (1.0 / 3.0)


def _anatomy_cost(lesion: Lesion, finding: StructuredFinding, cfg: LinkSettings, midline_x: float | None,
                  sites: Sites | None = None) -> float:
    """Same location: the finding's hierarchy node contains the mask's class ("mediastinal lymph node" and a
    mask at station 7; "left rib" and a mask on the left 7th rib), or the node is a further leaf inside the
    class (fossa of Rosenmüller on a nasopharynx mask). A coarse finding costs a little more than an exact
    one, so a finding that names the mask's class exactly wins a tie."""
    floc = taxonomy.get(finding.location_id)
    sided = floc.laterality in (taxonomy.Laterality.left, taxonomy.Laterality.right)
    if lesion.anatomy_label is None and not (sites and lesion.instance in sites):
        if midline_x is None or not sided:
            return cfg.cost_unknown_location
        # LPS: +x is the patient's left
        side = taxonomy.Laterality.left if lesion.centroid_mm[0] > midline_x else taxonomy.Laterality.right
        return cfg.cost_unknown_location if side is floc.laterality else cfg.cost_other_location
    cand = lesion_candidates(lesion, sites)
    if not cand:
        return cfg.cost_unknown_location
    lid = cand[0]
    if finding.location_id in cand:  # the report decides among the candidates (a liver segment, a hip part)
        return cfg.cost_same_location
    if any(hierarchy.can_link(finding.location_id, c) for c in cand):
        return cfg.cost_same_location + _COARSE_COST
    lloc = taxonomy.get(lid)
    near = (lloc.system, lloc.region, lloc.laterality) == (floc.system, floc.region, floc.laterality)
    if near:
        return cfg.cost_near_location
    if lid not in segmentation.segmented_sites() and floc.id not in segmentation.segmented_sites():
        return cfg.cost_unknown_location  # both only derivable from position (a station): uncertain, not other
    return cfg.cost_other_location


_COARSE_COST = 0.05  # a coarse finding on a mask inside its node: just above an exact match


def linked_location(finding: StructuredFinding, lesion: Lesion | None, sites: Sites | None = None) -> str:
    """The finest location known for a linked pair: the mask's site when the finding's node contains it and
    the segmentation names that one site alone (linking decided the leaf the report left open), else the
    finding's own node. A site guessed from position (a station) or one of several (a liver segment) never
    replaces what the report said."""
    cand = lesion_candidates(lesion, sites) if lesion is not None else ()
    lid = cand[0] if len(cand) == 1 and cand[0] in segmentation.segmented_sites() else None
    if lid is not None and lid != finding.location_id and hierarchy.contains(finding.location_id, lid):
        return lid
    return finding.location_id


def pair_cost(lesion: Lesion, finding: StructuredFinding, cfg: LinkSettings, midline_x: float | None = None,
              sites: Sites | None = None) -> float:
    cost = _anatomy_cost(lesion, finding, cfg, midline_x, sites)
    if finding.suv_max:
        cost += cfg.suv_weight * abs(math.log(max(lesion.suv_max, 1e-3) / finding.suv_max))
    if finding.size_mm:
        excess = abs(math.log(finding.size_mm / equivalent_diameter_mm(lesion))) - math.log(cfg.size_tolerance)
        cost += cfg.size_weight * max(0.0, excess)
    return cost


def link_study(
    study_id: str,
    lesions: list[Lesion],
    findings: list[StructuredFinding],
    cfg: LinkSettings,
    midline_x: float | None = None,
    sites: Sites | None = None,
) -> LinkResult:
    """Match one study's lesion instances to its report findings. ``sites``: each lesion's candidate sites
    (``study_sites``); without them the segmenter class under the mask stands in."""
    result = LinkResult()
    if not lesions or not findings:
        reason_l, reason_f = ("report states no finding", "study has no lesion mask")
        result.unmatched += [UnmatchedRow(study_id=study_id, kind="lesion", ref=l.instance, reason="no_findings",
                                          detail=reason_l) for l in lesions]
        result.unmatched += [UnmatchedRow(study_id=study_id, kind="finding", ref=i, reason="no_lesions",
                                          detail=reason_f) for i in range(len(findings))]
        return result

    cost = np.array([[pair_cost(l, f, cfg, midline_x, sites) for f in findings] for l in lesions])  # (lesions, findings)
    rows, cols = linear_sum_assignment(cost)
    linked_lesions: set[int] = set()
    linked_findings: set[int] = set()
    for r, c in zip(rows, cols):
        if cost[r, c] <= cfg.max_cost:
            result.pairs.append(Pair(lesions[r].instance, int(c), float(cost[r, c]), "hungarian"))
            linked_lesions.add(r)
            linked_findings.add(int(c))

    # "multiple ..., the largest ...": remaining masks at exactly a linked finding's location join it. The
    # stated values are the largest lesion's (by size), so a smaller member may well be hotter: no SUV gate.
    for r, lesion in enumerate(lesions):
        if r in linked_lesions:
            continue
        mine = lesion_candidates(lesion, sites)
        positional = bool(mine) and mine[0] not in segmentation.segmented_sites()  # a station: from position only

        def joins(c: int) -> bool:  # its location (or a node containing it); a station guessed from position
            if any(hierarchy.can_link(findings[c].location_id, x) for x in mine):  # also a near one, in the gate
                return True
            near = _anatomy_cost(lesion, findings[c], cfg, midline_x, sites) <= cfg.cost_near_location
            return positional and near and cost[r, c] <= cfg.max_cost

        candidates = [c for c in linked_findings if joins(c)]
        if candidates:
            best = min(candidates, key=lambda c: cost[r, c])
            result.pairs.append(Pair(lesion.instance, best, float(cost[r, best]), "group"))
            linked_lesions.add(r)

    for r, lesion in enumerate(lesions):
        if r not in linked_lesions:
            c = int(cost[r].argmin())
            why = "is linked to another mask" if c in linked_findings else f"costs {cost[r, c]:.2f} > {cfg.max_cost}"
            result.unmatched.append(UnmatchedRow(
                study_id=study_id, kind="lesion", ref=lesion.instance, reason="no_matching_finding",
                detail=f"mask on {lesion_location(lesion, sites) or 'an unlabelled structure'}, SUVmax "
                       f"{lesion.suv_max:.1f}; the nearest finding ({findings[c].location_id}) {why}"))
    for c, finding in enumerate(findings):
        if c not in linked_findings:
            r = int(cost[:, c].argmin())
            why = "is linked to another finding" if r in linked_lesions else f"costs {cost[r, c]:.2f} > {cfg.max_cost}"
            result.unmatched.append(UnmatchedRow(
                study_id=study_id, kind="finding", ref=c, reason="no_matching_mask",
                detail=f"finding at {finding.location_id}; the nearest mask (instance {lesions[r].instance}) {why}"))
    return result


def study_sites(settings: Settings, study_id: str) -> Sites | None:
    """Candidate sites of every lesion of a stored study, from its segmentation and the lesions' positions
    (``tasks.sites``); None when the study has no label map."""
    from data_contracts import volume_store as store
    from tasks.landmarks import Landmarks, canonical_lut
    from tasks.sites import study_lesion_sites

    try:
        st = store.open_study(settings.store_url, study_id)
    except KeyError:
        return None
    if st.anatomy is None:
        return None
    lut = canonical_lut(segmentation.names_json())  # ingest checked the sidecar against this class set
    anat = lut[np.minimum(np.asarray(st.anatomy[...]), len(lut) - 1)]
    marks = Landmarks.from_labels(anat, st.geometry)
    return study_lesion_sites(anat, np.asarray(st.lesions[...]), st.geometry, st.lesion_records, marks)


def caption_samples(study: Study, findings: list[StructuredFinding], result: LinkResult,
                    lesions: list[Lesion] | None = None, sites: Sites | None = None) -> list[CaptionSample]:
    """One sample per linked mask, keeping the chain report span -> structured record -> lesion instance.

    The sample's location is the finest known (``linked_location``: a coarse finding takes the class of its
    linked mask when ``lesions`` are given); its caption names that location, with the study's tracer when
    the report named none. The localizer trains on the samples whose location is one of its classes."""
    by_instance = {l.instance: l for l in lesions or []}
    out = []
    for p in sorted(result.pairs, key=lambda p: p.instance):
        f = findings[p.finding_index]
        location = linked_location(f, by_instance.get(p.instance), sites)
        pet = f.pet_finding if f.pet_finding.tracer is not None else f.pet_finding.model_copy(
            update={"tracer": study.tracer})
        decided = f.model_copy(update={"location_id": location, "pet_finding": pet,
                                       "laterality": taxonomy.get(location).laterality})
        out.append(CaptionSample(
            sample_id=f"{study.study_id}-{p.instance:03d}",
            patient_id=study.patient_id,
            study_id=study.study_id,
            instance=p.instance,
            vendor=study.vendor,
            tracer=study.tracer,
            location_id=location,
            ct_finding=f.ct_finding,
            caption=caption_for(decided),
            finding_index=p.finding_index,
            span=f.span,
        ))
    return out


# ------------------------------------------------------------------------------------------ dataset level
@dataclass
class LinkSummary:
    """What one linking run did. Sample counts: ``added`` (new sample ids), ``changed`` (same id, new caption
    columns), ``unchanged``, ``removed`` (tombstoned: withdrawn studies, or forced), ``kept`` (a study that could
    not be re-linked this time keeps its earlier samples); ``quarantined``: reports that could not be structured."""

    studies: int  # reports structured and linked this run
    findings: int
    samples: int  # in the caption-sample table after this run
    group_links: int
    unmatched_lesions: int
    unmatched_findings: int
    quarantined_reports: int
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    removed: int = 0
    kept: int = 0
    llm_failures: int = 0  # quarantined reports whose LLM call failed (llm_unavailable, llm_rejected, ...)
    corrected: int = 0  # samples whose location a clinician's correction set (``tasks.corrections``)


def _read(schema, settings: Settings, name: str) -> list:
    path = settings.table_path(name)
    return schema.records(schema.read(path), source=str(path))


def _drop_reports(delivered: dict[str, str],
                  settings: Settings) -> tuple[dict[str, tuple[RawLayout, ManifestRow]], set[str]]:
    """study id -> (its drop folder, its manifest row), reading each study from the drop the delivery log
    names for it (``delivered``: study id -> drop); the drops that cannot be read."""
    drops = set(delivered.values())
    where: dict[str, tuple[RawLayout, ManifestRow]] = {}
    unavailable = set()
    for drop in sorted(drops):
        try:
            rows = deliveries.manifest_rows(drop, settings.pseudonym_key)
        except PetcapError as e:
            log.warning("drop folder %s cannot be read (%s): its studies keep their earlier samples", drop, e.reason)
            unavailable.add(drop)
            continue
        for r in rows:
            sid = study_pseudonym(r.study_key, settings.pseudonym_key)
            if r.report_path and delivered.get(sid) == drop:  # a redelivered study: its latest drop only
                where[sid] = (RawLayout(drop), r)
    return where, unavailable


def link_dataset(settings: Settings, backend: str | None = None, allow_removals: bool | None = None) -> LinkSummary:
    """Structure the report of every ingested study of every registered delivery, link findings to masks, write
    the caption samples.

    Reads the delivery log (``tasks.deliveries``; a home without one registers ``settings.raw_dir`` first),
    each drop's manifest and reports, and the ``studies`` / ``lesions`` tables. Writes ``findings``,
    ``caption_samples`` and ``link_unmatched`` atomically; reports that could not be structured go to
    ``quarantine``. The tables never shrink silently:

    * a study that cannot be re-linked this run (its report quarantined, its drop unreadable, its ingestion
      quarantined) keeps its earlier rows;
    * samples leave only for studies withdrawn from the delivery log, each with a ``tombstones`` row giving
      the reason; any other removal (a re-link that no longer matches a mask) raises ``RemovalRefused``
      unless ``allow_removals`` (default ``settings.refresh.allow_removals``), with nothing written;
    * when more than ``settings.refresh.max_failed_share`` of the reports fail, ``RefreshFailed`` with the
      counts, nothing written.
    """
    allow = settings.refresh.allow_removals if allow_removals is None else allow_removals
    studies = {s.study_id: s for s in _read(STUDIES, settings, "studies")}
    if not studies:
        raise PrerequisiteError("no ingested study in this home", path=str(settings.table_path("studies")),
                                reason="nothing_ingested",
                                hint="check --home (PETCAP_HOME), then run `petcap ingest` or `petcap refresh`")
    if not deliveries.read_log(settings):
        deliveries.register_delivery(settings, settings.raw_dir, allow_removals=False)
    logged = deliveries.read_log(settings)
    withdrawn = {r.study_id: r.withdrawn_reason or "withdrawn" for r in logged if r.withdrawn_at is not None}
    where, unavailable = _drop_reports({r.study_id: r.drop for r in logged if r.withdrawn_at is None}, settings)
    lesions_by_study: dict[str, list[Lesion]] = {}
    for lesion in _read(LESIONS, settings, "lesions"):
        lesions_by_study.setdefault(lesion.study_id, []).append(lesion)

    todo = sorted(sid for sid in where if sid in studies and sid not in withdrawn)
    readable, texts, quarantine = [], [], []
    for layout in sorted({where[sid][0].root for sid in todo}):  # each drop's reports from its own folder
        pairs = [(where[sid][1], sid) for sid in todo if where[sid][0].root == layout]
        kept, read, bad = read_reports(pairs, layout)  # missing / undecodable: quarantined, the rest go on
        readable += [sid for _, sid in kept]
        texts += read
        quarantine += bad
    results = structure_texts(texts, settings, backend, tracers=[studies[sid].tracer for sid in readable],
                              items=readable, sources=[report_source(sid, where[sid][1].report_path)
                                                       for sid in readable])
    quarantine += [r.quarantine for r in results if r.report is None]
    llm_failures = sum(q.reason.startswith("llm_") for q in quarantine)
    reports = len(todo)
    share = settings.refresh.max_failed_share
    if too_many_failures(len(quarantine), reports, settings):
        reasons = Counter(q.reason for q in quarantine)
        raise RefreshFailed(
            f"{len(quarantine)} of {reports} reports could not be structured ({llm_failures} by LLM failures; "
            f"{', '.join(f'{k} {v}' for k, v in reasons.most_common())}), more than the allowed share {share:g}; "
            f"no table was changed", reason="too_many_failures",
            hint="fix the cause (is the LLM server up? is llm.model right?) and rerun; the share is "
                 "PETCAP_REFRESH__MAX_FAILED_SHARE")

    old_findings = _read(FINDINGS, settings, "findings")
    old_samples = {s.sample_id: s for s in _read(CAPTION_SAMPLES, settings, "caption_samples")}
    old_unmatched = _read(UNMATCHED, settings, "link_unmatched")
    relinked = set()
    finding_rows, samples, unmatched = [], [], []
    groups = 0
    for sid, result in zip(readable, results):
        if result.report is None:
            continue
        relinked.add(sid)
        findings = list(result.report.findings)
        finding_rows += [FindingRow(study_id=sid, finding_index=i, finding=f, backend=result.report.backend,
                                    model=result.report.model, prompt_version=result.report.prompt_version)
                         for i, f in enumerate(findings)]
        sites = study_sites(settings, sid)
        linked = link_study(sid, lesions_by_study.get(sid, []), findings, settings.link, sites=sites)
        groups += sum(p.kind == "group" for p in linked.pairs)
        samples += caption_samples(studies[sid], findings, linked, lesions_by_study.get(sid, []), sites)
        unmatched += linked.unmatched

    # A clinician's correction of a served lesion is its training label (the corrections table is its provenance).
    by_finding = {(f.study_id, f.finding_index): f.finding for f in finding_rows}
    samples, corrected = apply_corrections(samples, latest_corrections(settings), by_finding)

    # Studies not re-linked this run keep their rows; withdrawn studies lose theirs, with tombstones.
    def kept(study_id: str) -> bool:
        return study_id not in relinked and study_id not in withdrawn

    kept_samples = [s for s in old_samples.values() if kept(s.study_id)]
    finding_rows += [f for f in old_findings if kept(f.study_id)]
    unmatched += [u for u in old_unmatched if kept(u.study_id)]
    samples += kept_samples
    new_ids = {s.sample_id for s in samples}
    gone = [s for sid, s in old_samples.items() if sid not in new_ids]
    forced = [s for s in gone if s.study_id not in withdrawn]
    if forced and not allow:
        raise RemovalRefused(
            f"re-linking would remove {len(forced)} caption samples of studies nobody withdrew "
            f"({', '.join(s.sample_id for s in forced[:3])}{', ...' if len(forced) > 3 else ''}); no table was "
            f"changed", path=str(settings.table_path("caption_samples")), reason="removal_refused",
            hint="withdraw the studies (`petcap withdraw`), or rerun with --allow-removals if the new extractor "
                 "or link settings are meant to drop them")
    now = datetime.now(timezone.utc)
    tombstones = [TombstoneRow(table="caption_samples", key=s.sample_id, study_id=s.study_id,
                               reason="withdrawn" if s.study_id in withdrawn else "relinked",
                               detail=withdrawn.get(s.study_id, "no longer linked after re-linking "
                                                                "(--allow-removals)"), at=now) for s in gone]

    samples.sort(key=lambda s: s.sample_id)
    FINDINGS.write(FINDINGS.frame(sorted(finding_rows, key=lambda f: (f.study_id, f.finding_index))),
                   settings.table_path("findings"))
    if tombstones:  # before the samples leave: a crash in between leaves a tombstone too many, never too few
        path = settings.table_path("tombstones")
        TOMBSTONES.write(pd.concat([TOMBSTONES.read(path), TOMBSTONES.frame(tombstones)], ignore_index=True), path)
    CAPTION_SAMPLES.write(CAPTION_SAMPLES.frame(samples), settings.table_path("caption_samples"))
    UNMATCHED.write(UNMATCHED.frame(sorted(unmatched, key=lambda u: (u.study_id, u.kind, u.ref))),
                    settings.table_path("link_unmatched"))
    path = settings.table_path("quarantine")
    old = QUARANTINE.read(path)
    fresh = QUARANTINE.frame(quarantine)
    if len(old) or len(fresh):
        QUARANTINE.write(pd.concat([old[old["stage"] != "structure"], fresh], ignore_index=True), path)

    relinked_samples = [s for s in samples if s.study_id in relinked]
    changed = sum(s.sample_id in old_samples and s != old_samples[s.sample_id] for s in relinked_samples)
    added = sum(s.sample_id not in old_samples for s in relinked_samples)
    summary = LinkSummary(
        studies=len(relinked), findings=len(finding_rows), samples=len(samples), group_links=groups,
        unmatched_lesions=sum(u.kind == "lesion" for u in unmatched),
        unmatched_findings=sum(u.kind == "finding" for u in unmatched), quarantined_reports=len(quarantine),
        added=added, changed=changed, unchanged=len(relinked_samples) - added - changed, removed=len(gone),
        kept=len(kept_samples), llm_failures=llm_failures, corrected=corrected)
    if unavailable:
        log.warning("link: %d drop folders unreadable; their studies kept their samples", len(unavailable))
    return summary
