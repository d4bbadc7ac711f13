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
from scipy.optimize import linear_sum_assignment

from data_contracts import anatomy, taxonomy
from data_contracts.caption import caption_for
from data_contracts.records import CaptionSample, Lesion, StructuredFinding, Study
from data_contracts.settings import LinkSettings
from data_contracts.tables import UnmatchedRow


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
    floc = taxonomy.get(finding.location_id)
    if lesion.anatomy_label is None:
        if midline_x is None or floc.laterality is taxonomy.Laterality.midline:
            return cfg.cost_unknown_location
        # LPS: +x is the patient's left
        side = taxonomy.Laterality.left if lesion.centroid_mm[0] > midline_x else taxonomy.Laterality.right
        return cfg.cost_unknown_location if side is floc.laterality else cfg.cost_other_location
    lid = lesion_location(lesion)
    if lid is None:
        return cfg.cost_unknown_location
    if lid == finding.location_id:
        return cfg.cost_same_location
    lloc = taxonomy.get(lid)
    near = (lloc.system, lloc.region, lloc.laterality) == (floc.system, floc.region, floc.laterality)
    return cfg.cost_near_location if near else cfg.cost_other_location


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

    # "multiple ..., the largest ...": remaining masks at exactly a linked finding's location join it.
    for r, lesion in enumerate(lesions):
        if r in linked_lesions:
            continue
        candidates = [
            c for c in linked_findings
            if lesion_location(lesion) == findings[c].location_id
            and (findings[c].suv_max is None or lesion.suv_max <= findings[c].suv_max * cfg.group_suv_margin)
        ]
        if candidates:
            best = min(candidates, key=lambda c: cost[r, c])
            result.pairs.append(Pair(lesion.instance, best, float(cost[r, best]), "group"))
            linked_lesions.add(r)

    for r, lesion in enumerate(lesions):
        if r not in linked_lesions:
            best = float(cost[r].min())
            result.unmatched.append(UnmatchedRow(
                study_id=study_id, kind="lesion", ref=lesion.instance, reason="no_matching_finding",
                detail=f"location {lesion_location(lesion) or 'unlabelled'}, SUVmax {lesion.suv_max:.1f}, "
                       f"best cost {best:.2f} > {cfg.max_cost}"))
    for c, finding in enumerate(findings):
        if c not in linked_findings:
            best = float(cost[:, c].min())
            result.unmatched.append(UnmatchedRow(
                study_id=study_id, kind="finding", ref=c, reason="no_matching_mask",
                detail=f"{finding.location_id}, best cost {best:.2f} > {cfg.max_cost}"))
    return result


def caption_samples(study: Study, findings: list[StructuredFinding], result: LinkResult) -> list[CaptionSample]:
    """One sample per linked mask, keeping the chain report span -> structured record -> lesion instance."""
    out = []
    for p in sorted(result.pairs, key=lambda p: p.instance):
        f = findings[p.finding_index]
        out.append(CaptionSample(
            sample_id=f"{study.study_id}-{p.instance:03d}",
            patient_id=study.patient_id,
            study_id=study.study_id,
            instance=p.instance,
            vendor=study.vendor,
            tracer=study.tracer,
            location_id=f.location_id,
            ct_finding=f.ct_finding,
            caption=caption_for(f),
            finding_index=p.finding_index,
            span=f.span,
        ))
    return out
