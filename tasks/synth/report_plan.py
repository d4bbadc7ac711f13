"""Report planning: which statements a report makes about its study's lesions, and which values each writes.

``plan_items`` groups the reported truth lesions by (location, CT finding) into statements, pairs mirrored
ones into bilateral sentences, and decides per statement the written SUVmax (the group's hottest), size (the
representative's) and grade (the peak). ``SECTIONS`` orders the findings by body region.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from data_contracts import taxonomy
from data_contracts.findings import CTFinding
from data_contracts.records import LesionTruth
from data_contracts.taxonomy import Laterality, Location, Region, System, mirror
from tasks.synth.raw import RawStudy
from tasks.synth.report_styles import Said, chance

SECTIONS = ("head_neck", "chest", "abdomen_pelvis", "msk")


@dataclass(frozen=True)
class Statement:
    """One finding statement: the lesions it describes (representative first) and what it writes."""

    lesions: tuple[LesionTruth, ...]
    said: Said

    @property
    def key(self) -> tuple[str, CTFinding]:  # location_id implies laterality
        return self.said.location.id, self.said.ct


@dataclass(frozen=True)
class Item:
    """One sentence of the FINDINGS: one statement, or a bilateral pair in the order the sentence names them."""

    statements: tuple[Statement, ...]
    section: str

    @property
    def suv_max(self) -> float:
        return max((float(s.said.suv) for s in self.statements if s.said.suv), default=-1.0)


def section_of(loc: Location) -> str:
    if loc.system is System.bone or loc.region is Region.extremity:
        return "msk"
    return {Region.head_neck: "head_neck", Region.chest: "chest"}.get(loc.region, "abdomen_pelvis")


def _suv_written(suv: float) -> str:
    tenths = math.floor(suv * 10 + 0.5)
    return f"{tenths // 10}.{tenths % 10}"


def _axes(lesion: LesionTruth, rng: np.random.Generator) -> tuple[int, int]:
    """(long, short) axis in whole mm; the short axis is invented, consistent with the node's CT finding."""
    long = max(1, math.floor(lesion.size_mm + 0.5))
    short = round(long * rng.uniform(0.55, 0.9))
    if lesion.ct_finding is CTFinding.enlarged_lymph_node:
        short = max(short, 11)
    elif lesion.ct_finding is CTFinding.non_enlarged_lymph_node:
        short = min(short, 9)
    return long, min(max(short, 1), long)


def _peak_grade(lesions: list[LesionTruth]):
    return max(lesions, key=lambda t: (t.suv_max, -t.instance)).pet_finding.grade


def plan_items(study: RawStudy, rng: np.random.Generator, terse: bool) -> list[Item]:
    """Group the reported truth lesions into statements, pair mirrored ones, decide which values are written."""
    reported = [t for t in study.truth if t.reported]
    for t in reported:
        if t.pet_finding.tracer is not study.tracer:
            raise ValueError(f"study {study.study_key}: lesion {t.instance} has {t.pet_finding.tracer.value} uptake "
                             f"but the study tracer is {study.tracer.value}")
    reported.sort(key=lambda t: (taxonomy.index_of(t.location_id), t.instance))
    groups: dict[tuple[str, CTFinding], list[LesionTruth]] = {}
    for t in reported:
        groups.setdefault((t.location_id, t.ct_finding), []).append(t)

    def representative(lesions: list[LesionTruth]) -> list[LesionTruth]:
        if lesions[0].ct_finding is CTFinding.no_ct_correlate:
            key = lambda t: (-t.suv_max, -t.size_mm, t.instance)  # noqa: E731
        else:
            key = lambda t: (-t.size_mm, -t.suv_max, t.instance)  # noqa: E731
        return sorted(lesions, key=key)

    ordered = {k: representative(v) for k, v in groups.items()}
    used: set[tuple[str, CTFinding]] = set()
    plans: list[list[tuple[str, CTFinding]]] = []
    for key, lesions in ordered.items():
        if key in used:
            continue
        loc = taxonomy.get(key[0])
        mate = (mirror(loc), key[1])
        pair = (mate in ordered and mate not in used and key[1] is not CTFinding.no_ct_correlate
                and _peak_grade(ordered[mate]) is _peak_grade(lesions) and chance(rng, 0.8))
        if pair:
            keys = sorted([key, mate], key=lambda k: taxonomy.get(k[0]).laterality is not Laterality.right)
            plans.append(keys if chance(rng, 0.7) else keys[::-1])
            used.update(keys)
        else:
            plans.append([key])
            used.add(key)

    items = []
    for keys in plans:
        omit_suv = chance(rng, 0.04)
        many = any(len(ordered[k]) > 1 for k in keys)
        omit_size = not many and chance(rng, 0.15 if terse else 0.08)
        statements = []
        for k in keys:
            lesions = ordered[k]
            rep = lesions[0]
            sized = k[1] is not CTFinding.no_ct_correlate and not omit_size
            hottest = max(lesions, key=lambda t: (t.suv_max, -t.instance))  # grade and SUVmax: the group's peak
            said = Said(location=taxonomy.get(k[0]), ct=k[1], grade=hottest.pet_finding.grade, tracer=study.tracer,
                        count=len(lesions), suv=None if omit_suv else _suv_written(hottest.suv_max),
                        size=_axes(rep, rng) if sized else None)
            statements.append(Statement(tuple(lesions), said))
        items.append(Item(tuple(statements), section_of(statements[0].said.location)))
    return items
