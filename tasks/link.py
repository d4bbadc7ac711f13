"""Link lesion instances (masks) to report findings, and turn each pair into a caption sample.

Per study, a cost between every lesion and every finding combines
- anatomy: the taxonomy location of the structure under the mask (the anatomy label map) against the
  finding's location — same location, a near one (same system, region and side: T7 vs T8), unknown
  (the mask lies on fat or muscle), or another (never linked);
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

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from data_contracts import anatomy, hierarchy, taxonomy
from data_contracts.caption import caption_for
from data_contracts.records import (
    CaptionSample,
    Lesion,
    LesionTruth,
    StructuredFinding,
    Study,
)
from data_contracts.settings import LinkSettings, Settings
from data_contracts.tables import (
    CAPTION_SAMPLES,
    FINDINGS,
    LESIONS,
    QUARANTINE,
    STUDIES,
    TRUTH,
    UNMATCHED,
    FindingRow,
    UnmatchedRow,
)
from tasks.ingest.manifest import read_manifest
from tasks.ingest.pseudonym import study_pseudonym
from tasks.ingest.report_text import read_reports, report_source
from tasks.structure.backend import structure_texts


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


def lesion_location(lesion: Lesion) -> str | None:
    """Taxonomy location of the structure under the mask, if the label map names one."""
    if lesion.anatomy_label is None:
        return None
    return anatomy.label_location().get(int(lesion.anatomy_label))


def equivalent_diameter_mm(lesion: Lesion) -> float:
    return (6.0 * lesion.volume_ml * 1000.0 / math.pi) ** (1.0 / 3.0)


def _anatomy_cost(lesion: Lesion, finding: StructuredFinding, cfg: LinkSettings, midline_x: float | None) -> float:
    """Same location: the finding's hierarchy node contains the mask's class ("mediastinal lymph node" and a
    mask at station 7; "left rib" and a mask on the left 7th rib), or the node is a further leaf inside the
    class (fossa of Rosenmüller on a nasopharynx mask). A coarse finding costs a little more than an exact
    one, so a finding that names the mask's class exactly wins a tie."""
    floc = taxonomy.get(finding.location_id)
    sided = floc.laterality in (taxonomy.Laterality.left, taxonomy.Laterality.right)
    if lesion.anatomy_label is None:
        if midline_x is None or not sided:
            return cfg.cost_unknown_location
        # LPS: +x is the patient's left
        side = taxonomy.Laterality.left if lesion.centroid_mm[0] > midline_x else taxonomy.Laterality.right
        return cfg.cost_unknown_location if side is floc.laterality else cfg.cost_other_location
    lid = lesion_location(lesion)
    if lid is None:
        return cfg.cost_unknown_location
    if lid == finding.location_id:
        return cfg.cost_same_location
    if hierarchy.can_link(finding.location_id, lid):
        return cfg.cost_same_location + _COARSE_COST
    lloc = taxonomy.get(lid)
    near = (lloc.system, lloc.region, lloc.laterality) == (floc.system, floc.region, floc.laterality)
    return cfg.cost_near_location if near else cfg.cost_other_location


_COARSE_COST = 0.05  # a coarse finding on a mask inside its node: just above an exact match


def linked_location(finding: StructuredFinding, lesion: Lesion | None) -> str:
    """The finest location known for a linked pair: the mask's class when the finding's node contains it
    (linking decided the leaf the report left open), else the finding's own node."""
    lid = lesion_location(lesion) if lesion is not None else None
    if lid is not None and lid != finding.location_id and hierarchy.contains(finding.location_id, lid):
        return lid
    return finding.location_id


def pair_cost(lesion: Lesion, finding: StructuredFinding, cfg: LinkSettings, midline_x: float | None = None) -> float:
    cost = _anatomy_cost(lesion, finding, cfg, midline_x)
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
) -> LinkResult:
    """Match one study's lesion instances to its report findings."""
    result = LinkResult()
    if not lesions or not findings:
        reason_l, reason_f = ("report states no finding", "study has no lesion mask")
        result.unmatched += [UnmatchedRow(study_id=study_id, kind="lesion", ref=l.instance, reason="no_findings",
                                          detail=reason_l) for l in lesions]
        result.unmatched += [UnmatchedRow(study_id=study_id, kind="finding", ref=i, reason="no_lesions",
                                          detail=reason_f) for i in range(len(findings))]
        return result

    cost = np.array([[pair_cost(l, f, cfg, midline_x) for f in findings] for l in lesions])  # (lesions, findings)
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
        lid = lesion_location(lesion)
        candidates = [c for c in linked_findings
                      if lid is not None and hierarchy.can_link(findings[c].location_id, lid)]
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
                detail=f"mask on {lesion_location(lesion) or 'an unlabelled structure'}, SUVmax "
                       f"{lesion.suv_max:.1f}; the nearest finding ({findings[c].location_id}) {why}"))
    for c, finding in enumerate(findings):
        if c not in linked_findings:
            r = int(cost[:, c].argmin())
            why = "is linked to another finding" if r in linked_lesions else f"costs {cost[r, c]:.2f} > {cfg.max_cost}"
            result.unmatched.append(UnmatchedRow(
                study_id=study_id, kind="finding", ref=c, reason="no_matching_mask",
                detail=f"finding at {finding.location_id}; the nearest mask (instance {lesions[r].instance}) {why}"))
    return result


def caption_samples(study: Study, findings: list[StructuredFinding], result: LinkResult,
                    lesions: list[Lesion] | None = None) -> list[CaptionSample]:
    """One sample per linked mask, keeping the chain report span -> structured record -> lesion instance.

    The sample's location is the finest known (``linked_location``: a coarse finding takes the class of its
    linked mask when ``lesions`` are given); its caption names that location, with the study's tracer when
    the report named none. The localizer trains on the samples whose location is one of its classes."""
    by_instance = {l.instance: l for l in lesions or []}
    out = []
    for p in sorted(result.pairs, key=lambda p: p.instance):
        f = findings[p.finding_index]
        location = linked_location(f, by_instance.get(p.instance))
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
    studies: int
    findings: int
    samples: int
    group_links: int
    unmatched_lesions: int
    unmatched_findings: int
    quarantined_reports: int
    pair_precision: float | None = None  # against synthetic ground truth, when the drop folder has it
    pair_recall: float | None = None


def link_dataset(settings: Settings, backend: str | None = None) -> LinkSummary:
    """Structure the report of every ingested study, link findings to masks, write the caption samples.

    Reads the manifest and the ``studies`` / ``lesions`` tables; writes ``findings``, ``caption_samples`` and
    ``link_unmatched`` (whole tables, atomically: a rerun gives the same tables) and appends reports that could
    not be structured to ``quarantine``.
    """
    raw = settings.raw
    manifest = read_manifest(raw.manifest, settings.pseudonym_key).rows  # rejected rows: ingest records them
    studies = {s.study_id: s for s in STUDIES.records(STUDIES.read(settings.table_path("studies")))}
    lesions_by_study: dict[str, list[Lesion]] = {}
    for lesion in LESIONS.records(LESIONS.read(settings.table_path("lesions"))):
        lesions_by_study.setdefault(lesion.study_id, []).append(lesion)

    rows = [(r, study_pseudonym(r.study_key, settings.pseudonym_key)) for r in manifest if r.report_path]
    rows = [(r, sid) for r, sid in rows if sid in studies]  # quarantined at ingestion: nothing to link
    rows, texts, quarantine = read_reports(rows, raw.root)  # missing / undecodable: quarantined, the rest go on
    results = structure_texts(texts, settings, backend, tracers=[studies[sid].tracer for _, sid in rows],
                              items=[sid for _, sid in rows], sources=[report_source(sid, r.report_path)
                                                                       for r, sid in rows])

    finding_rows, samples, unmatched = [], [], []
    groups = 0
    for (row, sid), result in zip(rows, results):
        if result.report is None:
            quarantine.append(result.quarantine)
            continue
        findings = list(result.report.findings)
        finding_rows += [FindingRow(study_id=sid, finding_index=i, finding=f, backend=result.report.backend,
                                    model=result.report.model, prompt_version=result.report.prompt_version)
                         for i, f in enumerate(findings)]
        linked = link_study(sid, lesions_by_study.get(sid, []), findings, settings.link)
        groups += sum(p.kind == "group" for p in linked.pairs)
        samples += caption_samples(studies[sid], findings, linked, lesions_by_study.get(sid, []))
        unmatched += linked.unmatched

    FINDINGS.write(FINDINGS.frame(finding_rows), settings.table_path("findings"))
    CAPTION_SAMPLES.write(CAPTION_SAMPLES.frame(samples), settings.table_path("caption_samples"))
    UNMATCHED.write(UNMATCHED.frame(unmatched), settings.table_path("link_unmatched"))
    if quarantine:
        path = settings.table_path("quarantine")
        old = QUARANTINE.read(path)
        QUARANTINE.write(pd.concat([old[old["stage"] != "structure"], QUARANTINE.frame(quarantine)],
                                   ignore_index=True), path)

    summary = LinkSummary(
        studies=len(rows), findings=len(finding_rows), samples=len(samples), group_links=groups,
        unmatched_lesions=sum(u.kind == "lesion" for u in unmatched),
        unmatched_findings=sum(u.kind == "finding" for u in unmatched), quarantined_reports=len(quarantine))
    if raw.truth_lesions.exists():
        summary.pair_precision, summary.pair_recall = pair_scores(settings, samples, lesions_by_study)
    return summary


def pair_scores(settings: Settings, samples: list[CaptionSample],
                lesions_by_study: dict[str, list[Lesion]]) -> tuple[float, float]:
    """Pair precision and recall of the links against the synthetic ground truth.

    Each ingested lesion is identified with the truth lesion whose centre is nearest its centroid (within
    half the truth lesion's size, at least 5 mm). A sample is a correct pair when that truth lesion is reported
    and the sample's location and CT finding are the truth's. Recall counts the truth lesions that have a
    mask and a report statement: those a perfect pipeline turns into samples.
    """
    truth = TRUTH.records(TRUTH.read(settings.raw.truth_lesions), source=str(settings.raw.truth_lesions))
    by_study: dict[str, list[LesionTruth]] = {}
    for t in truth:
        by_study.setdefault(study_pseudonym(t.study_key, settings.pseudonym_key), []).append(t)

    def truth_of(study_id: str, lesion: Lesion) -> LesionTruth | None:
        best, best_d = None, float("inf")
        for t in by_study.get(study_id, []):
            d = math.dist(t.center_mm, lesion.centroid_mm)
            if d < best_d and d <= max(5.0, t.size_mm / 2):
                best, best_d = t, d
        return best

    lesion_at = {(l.study_id, l.instance): l for ls in lesions_by_study.values() for l in ls}
    correct = 0
    for s in samples:
        t = truth_of(s.study_id, lesion_at[(s.study_id, s.instance)])
        correct += bool(t and t.reported and (t.location_id, t.ct_finding) == (s.location_id, s.ct_finding))
    linkable = sum(t.in_mask and t.reported for sid in lesions_by_study for t in by_study.get(sid, []))
    precision = correct / len(samples) if samples else float("nan")
    recall = correct / linkable if linkable else float("nan")
    return precision, recall
