"""Clinical accuracy by word matching: does a generated caption name the right location and CT finding?

The paper's Table 2 reports "Localization" and "CT finding" accuracy, computed "by word matching" of the
generated description. Here the words are the project's vocabularies: every term of every taxonomy location
(canonical name and synonyms: "R7 rib" and "right 7th rib" both name ``rib_7_r``), side-free stems combined
with a side word in the same caption ("7th rib ... right"), and every CT finding's phrase and synonyms.

Text is compared case- and punctuation-insensitively (the PTB tokenizer lower-cases and drops punctuation,
so "ground-glass" and "ground glass" are the same words). Matching is leftmost-longest and non-overlapping:
"left 7th rib" is one mention of ``rib_7_l``, never also "7th rib"; "non-enlarged lymph node" is the
non-enlarged finding, never "enlarged lymph node". A caption is correct when its FIRST mention is
unambiguously the truth (captions name the location first, then the CT finding); a term naming two
categories (``S1``: sacrum or liver segment I) is not a correct answer for either.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from functools import cache

from data_contracts import hierarchy, taxonomy
from data_contracts.findings import CT_FINDINGS, CTFinding
from data_contracts.taxonomy import Laterality

_SIDE_WORDS = {"right": "right", "rt": "right", "left": "left", "lt": "left"}


def normalize(text: str) -> str:
    """Lower case, every run of non-alphanumerics one space: 'Ground-glass, R7 rib' -> 'ground glass r7 rib'."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", str(text).lower()).split())


def _pattern(terms) -> re.Pattern:
    """Alternation of the terms, longest first (so the leftmost match is the longest there), on word edges."""
    alts = sorted(set(terms), key=lambda t: (-len(t), t))
    return re.compile(r"(?<![0-9a-z])(?:" + "|".join(re.escape(t) for t in alts) + r")(?![0-9a-z])")


@dataclass(frozen=True)
class _Vocab:
    pattern: re.Pattern
    ids: dict[str, frozenset[str]]  # normalized term -> what it names


@cache
def _locations() -> _Vocab:
    names: dict[str, set[str]] = defaultdict(set)
    for loc in taxonomy.locations():
        for term in loc.terms:
            if normalize(term):
                names[normalize(term)].add(loc.id)
    return _Vocab(_pattern(names), {k: frozenset(v) for k, v in names.items()})


@cache
def _stems() -> tuple[re.Pattern, dict[str, dict[str, frozenset[str]]]]:
    """Side-free stems of lateral categories -> {side: ids}; only stems that are not themselves a full term."""
    by_stem: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    terms = _locations().ids
    for loc in taxonomy.locations():
        if loc.laterality is Laterality.midline:
            continue
        for stem in loc.stems:
            s = normalize(stem)
            if s and s not in terms:
                by_stem[s][loc.laterality.value].add(loc.id)
    table = {s: {side: frozenset(ids) for side, ids in sides.items()} for s, sides in by_stem.items()}
    return _pattern(table), table


@cache
def _findings() -> _Vocab:
    names: dict[str, set[str]] = defaultdict(set)
    for finding, info in CT_FINDINGS.items():
        for term in (info.phrase, *info.synonyms):
            names[normalize(term)].add(finding.value)
    return _Vocab(_pattern(names), {k: frozenset(v) for k, v in names.items()})


def _side_near(text: str, start: int, end: int) -> str | None:
    """The side word nearest to text[start:end] (either direction), or None when the caption names none."""
    best, best_d = None, None
    for m in re.finditer(r"(?<![0-9a-z])(right|rt|left|lt)(?![0-9a-z])", text):
        d = start - m.end() if m.end() <= start else m.start() - end
        if best_d is None or d < best_d:
            best, best_d = _SIDE_WORDS[m.group(1)], d
    return best


def location_mentions(caption: str) -> list[frozenset[str]]:
    """Location ids each mention in the caption names, in reading order (a set > 1 is an ambiguous term)."""
    text = normalize(caption)
    vocab = _locations()
    found: list[tuple[int, frozenset[str]]] = []
    covered = [False] * len(text)
    for m in vocab.pattern.finditer(text):
        found.append((m.start(), vocab.ids[m.group(0)]))
        covered[m.start():m.end()] = [True] * (m.end() - m.start())
    stem_pattern, stems = _stems()
    for m in stem_pattern.finditer(text):
        if any(covered[m.start():m.end()]):
            continue
        sides = stems[m.group(0)]
        side = _side_near(text, m.start(), m.end())
        ids = sides.get(side) if side else None
        found.append((m.start(), ids if ids else frozenset().union(*sides.values())))
    return [ids for _, ids in sorted(found, key=lambda f: f[0])]


def _without_locations(text: str) -> str:
    return _locations().pattern.sub(" | ", text)


def ct_finding_mentions(caption: str) -> list[frozenset[str]]:
    """CT findings (``CTFinding`` values) each mention names, in reading order; location words are skipped."""
    text = _without_locations(normalize(caption))
    vocab = _findings()
    return [vocab.ids[m.group(0)] for m in vocab.pattern.finditer(text)]


def location_correct(caption: str, location_id: str) -> bool:
    """The caption's first location mention is exactly ``location_id``."""
    taxonomy.get(location_id)  # unknown ids are an error, not a miss
    mentions = location_mentions(caption)
    return bool(mentions) and mentions[0] == frozenset({location_id})


def location_correct_at_level(caption: str, location_id: str) -> bool:
    """The caption's first location mention lies inside ``location_id`` (any hierarchy node): exact for a
    class, "any mediastinal station" for ``ln_mediastinal``; an ambiguous mention must lie inside as a whole."""
    taxonomy.get(location_id)
    mentions = location_mentions(caption)
    return bool(mentions) and all(hierarchy.is_within(m, location_id) for m in mentions[0])


def ct_finding_correct(caption: str, finding: CTFinding | str) -> bool:
    """The caption's first CT-finding mention is exactly ``finding``."""
    value = CTFinding(finding).value
    mentions = ct_finding_mentions(caption)
    return bool(mentions) and mentions[0] == frozenset({value})
