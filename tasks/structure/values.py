"""The values of a mention read from its group's words (``tasks.structure.rules``, step 5): SUVmax and size
(side labels, "respectively", count-matched lists, "the largest ..."), and the CT finding with its defaults.
"""

from __future__ import annotations

import re

from data_contracts import taxonomy
from data_contracts.findings import CTFinding
from data_contracts.taxonomy import Laterality, System
from tasks.structure import lexicon as lx
from tasks.structure.drafts import Group, Mention

_ENLARGED_SHORT_AXIS_MM = 10.0  # lymph node short axis at and above which a node counts as enlarged


def largest(norm: str, group: Group) -> tuple[int | None, Mention | None]:
    """Where "the largest"/"the dominant" is said in the group's words, and the mention it points at when
    the sentence names the place right after it ("..., the largest at level II ...")."""
    a, b = group.ranges[0]
    m = lx.LARGEST.search(norm, a, b)
    if m is None:
        return None, None
    for mention in group.mentions:
        if any(m.end() <= p <= m.end() + 30 for p in (mention.anchor, *mention.repeats)):
            return m.start(), mention
    return m.start(), None


_VALUE_SIDE = re.compile(r"^\s*\)?\s*(?:\(|,)?\s*(?:(?:on|in|at|for)\s+the\s+)?(?P<s>right|left|rt|lt|(?-i:R|L))\b",
                         re.IGNORECASE)
_SIDE_WORD = re.compile(r"(?<![A-Za-z])(?:right|left|(?:rt|lt)\.?(?=\s*[:),(])|(?-i:R|L)(?=\s*[:),(]|\s*$))"
                        r"(?![A-Za-z])", re.IGNORECASE)
_RESPECTIVELY = re.compile(r"^[^;]{0,40}?\brespectively\b", re.IGNORECASE)


def _value_sides(norm: str, hits: list[lx.Hit], lo: int) -> list[str | None]:
    """The side each value is labelled with, if any. Two writing styles: after the value ("5.2 on the right,
    4.8 on the left") or before it ("right SUVmax 6.6, left SUVmax 4.2", "left: 29 mm, SUVmax 23.3;
    right: ..."); the one that labels more values is the one the sentence uses (after, on a tie)."""
    after, before = [], []
    for k, h in enumerate(hits):
        m = _VALUE_SIDE.match(norm[h.end:h.end + 25])
        after.append(lx.side_of(m.group("s")) if m else None)
        floor = max(lo, hits[k - 1].end if k else lo, h.start - 60)
        # A side word that names a place ("right axilla, SUVmax 3.7") labels the place, not the value.
        words = [w for w in _SIDE_WORD.finditer(norm, floor, h.start)
                 if not lx.find_locations(norm[w.start():h.start])]
        before.append(lx.side_of(words[-1].group(0)) if words else None)
    count = lambda sides: sum(s is not None for s in sides)
    return before if count(before) > count(after) else after


def _side_order(norm: str, group: Group) -> list[str]:
    """Sides in the order the group's words name them ("... on the right and ... on the left")."""
    a, b = group.ranges[0]
    order: list[str] = []
    for w in _SIDE_WORD.finditer(norm, a, b):
        side = lx.side_of(w.group(0))
        if side not in order:
            order.append(side)
    return order


def pick(norm: str, hits: list[lx.Hit], i: int, group: Group, side: Laterality):
    """The value of the group's i-th mention from the group's values: by side label, by "respectively" in the
    order the sides are named, count-matched in order, else the largest."""
    if not hits:
        return None
    n = len(group.mentions)
    sides = {taxonomy.get(m.location_id).laterality for m in group.mentions}
    if n > 1 and side is not Laterality.midline and len(sides) > 1:  # side labels tell the values apart
        respectively = _RESPECTIVELY.match(norm[hits[-1].end:])
        order = _side_order(norm, group)
        if respectively and len(hits) == n == 2 and len(order) == 2:
            return hits[order.index(side.value)] if side.value in order else None
        labels = _value_sides(norm, hits, group.ranges[0][0])
        sided = [h for h, s in zip(hits, labels) if s == side.value]
        if sided:
            return max(sided, key=lambda h: h.value)
        if any(labels):
            return None  # values are labelled with the other side only
    if n > 1 and len(hits) == n:
        return hits[i]
    return max(hits, key=lambda h: h.value)


def ct_for(system: System, hits: list[lx.Hit], size: lx.Hit | None, inherited: bool = False
            ) -> tuple[CTFinding, bool]:
    """(CT finding, whether the report said it) for a location of this system. A node's own measurement
    outranks a description it only shares with an earlier site."""
    if inherited and system is System.lymph_node and size is not None:
        hits = []
    for h in hits:
        if lx.compatible(h.value, system):
            return h.value, True
    if system is System.organ and any(h.value is CTFinding.solid_nodule for h in hits):
        return CTFinding.mass, True  # "adrenal nodule", "thyroid nodule": a solid focal lesion
    if system is System.lymph_node:
        if any(h.value is CTFinding.mass for h in hits):
            return CTFinding.enlarged_lymph_node, True  # "nodal mass"
        if size is not None:
            short = size.extra.get("short_mm")
            axis = short if short is not None else size.value
            enlarged = axis >= _ENLARGED_SHORT_AXIS_MM
            return (CTFinding.enlarged_lymph_node if enlarged else CTFinding.non_enlarged_lymph_node), False
        return CTFinding.non_enlarged_lymph_node, False
    return CTFinding.no_ct_correlate, False

