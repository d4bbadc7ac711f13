"""The working records of the rules extractor (``tasks.structure.rules``): a place mention in a sentence, a group
of mentions sharing their words, a finding draft before it becomes a ``StructuredFinding``, the state carried
through one report; and the helpers that turn a draft's clause into its evidence span and its values into
an uptake grade.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from data_contracts.findings import (
    UPTAKE_THRESHOLDS,
    CTFinding,
    UptakeGrade,
    grade_for_suv,
)
from data_contracts.records import OtherSite, TextSpan
from tasks.structure import lexicon as lx
from tasks.structure.text import Sentence

SUV_TOLERANCE = 0.05  # SUVmax values this close are the same value (reports write one decimal)


@dataclass
class Mention:
    start: int  # includes a side word written right before the stem
    end: int
    location_id: str
    anchor: int  # where the location phrase itself starts
    relational: bool = False
    repeats: list[int] = field(default_factory=list)  # where the sentence names the same place again
    alternatives: tuple[str, ...] = ()  # the other readings of an ambiguous term ("S1")
    spot: bool = False  # a spot inside a coarse node ("precarinal"), see ``lexicon.SPOT_WORDS``
    words: str = ""


@dataclass
class Group:
    mentions: list[Mention]
    ranges: list[tuple[int, int]] = field(default_factory=list)  # the sentence parts whose words it owns

    @property
    def start(self) -> int:
        return min(m.start for m in self.mentions)

    @property
    def end(self) -> int:
        return max(m.end for m in self.mentions)

    def owns(self, pos: int) -> bool:
        return any(a <= pos < b for a, b in self.ranges)


@dataclass
class Draft:
    location_id: str
    ct_finding: CTFinding
    ct_explicit: bool
    grade: UptakeGrade
    suv_max: float | None
    size_mm: float | None
    sentence: Sentence
    section: str
    alternatives: tuple[str, ...] = ()
    other_site: OtherSite | None = None  # the report's words, for a finding at an open node
    clause: tuple[int, int] | None = None  # the sentence part the finding was read from (sentence offsets)
    latest: Sentence | None = None  # the last sentence that told this lesion again
    renewed: bool = False  # told again as it is "now": its earlier values belong to an earlier time


@dataclass
class ReadState:
    hand_scoping: bool = True  # False: negation/history left to medSpaCy (``tasks.structure.context``)
    last_side: str | None = None  # "left" | "right": the side "ipsilateral" refers to
    named: dict = field(default_factory=dict)  # a pair's ids → the side the report last named it with
    negatives: list = field(default_factory=list)  # NegativeFinding: what the report says is not there
    gynaecological: bool = False  # the report is about the female pelvis: a bare "cervical" is the cervix
    other_exam: bool = False  # reading a history or other-exam sentence for what it tells (``rules._told``)
    told: list = field(default_factory=list)  # per history / other-exam sentence since the last finding: a call
    # that reads its Drafts (``rules._told``)
    operated_bed: str | None = None  # the node "the surgical bed" names (``cues.operated_bed``)


# What separates two clauses of a sentence (the text between two groups is cut after the last one).
CLAUSE_SEPARATOR = re.compile(r";|,|\band\b|\bwith\b|\bas\s+well\s+as\b|\bplus\b|\bwhile\b|\bwhereas\b|\bbut\b|"
                              r"\balso\b|\bin\s+addition\b|\bfurthermore\b|\bmoreover\b|\badditionally\b",
                              re.IGNORECASE)


def clause_cut(norm: str, a: int, b: int) -> int:
    """Where ``norm[a:b]``, the words between two things a sentence tells, is cut: after its last clause separator
    outside parentheses, after its last ";" when it has one (the next clause has begun); ``a`` when it has none.
    Phrases whose separators do not cut ("SUVmax 8.2 and 6.1") are expected masked."""
    cut, strong, depth = a, None, 0
    for i in range(a, b):
        depth = depth + 1 if norm[i] == "(" else max(depth - 1, 0) if norm[i] == ")" else depth
        sep = CLAUSE_SEPARATOR.match(norm, i) if depth == 0 else None
        if sep and sep.end() <= b:
            cut = sep.end()
            strong = sep.end() if sep.group(0) == ";" else strong
    return strong if strong is not None else cut


def clause_of(norm: str, group: Group, cues: list[lx.Hit]) -> tuple[int, int]:
    """The group's own words, without the separators around them, ending before a negation said after them
    ("splenic lesions, with normal uptake elsewhere"; "... nodules but no extra-adrenal disease")."""
    a, b = group.ranges[0]
    a, b = min(a, group.start), max(b, group.end)
    before = [m.end() for m in lx.SCOPE_END.finditer(norm, a, group.start)]
    if before:  # "No other sites were identified; however, there was uptake in ...": after the turn
        a = before[-1]
    later = [c.start for c in cues if group.end <= c.start < b]
    if later:
        b = min(later)
        tail = re.search(r"(?i)(?:[\s,;]|\b(?:and|or|but|with|while|whereas|however|as\s+well\s+as|the|a|an|of|"
                         r"in|there|was|were|is|are)\b)*$", norm[a:b])
        b = a + tail.start() if tail else b
    while a < b and (norm[a].isspace() or norm[a] in ",;"):
        a += 1
    while b > a and (norm[b - 1].isspace() or norm[b - 1] in ",;"):
        b -= 1
    cut = re.match(r"(?i)(?:and|or|but|while|whereas|with)\s+", norm[a:b])
    return (a + cut.end(), b) if cut else (a, b)


def span_of(d: Draft) -> TextSpan:
    """Where the finding was read: its clause of the sentence (the whole sentence when it is one clause)."""
    a, b = d.clause if d.clause is not None else (0, len(d.sentence.text))
    start = d.sentence.start + a
    return TextSpan(start=start, end=d.sentence.start + b, text=d.sentence.text[a:b])



def grade_of(suv: float | None, hits: list[lx.Hit]) -> UptakeGrade:
    """The uptake grade: from SUVmax (``grade_for_suv``) when stated, else from the words ("faint" → mild),
    else "increased" (moderate). A written SUVmax on a grade threshold ("4.0", "10.0") may round a value
    from either side, so there the words decide between the two neighbouring grades."""
    specific = [h for h in hits if not h.extra.get("generic")]
    chosen = specific or hits
    worded = chosen[0].value if chosen else None
    if suv is None:
        return worded or UptakeGrade.moderate
    for t in UPTAKE_THRESHOLDS:
        if abs(suv - t) <= SUV_TOLERANCE and worded in (grade_for_suv(t - 2 * SUV_TOLERANCE), grade_for_suv(t)):
            return worded
    return grade_for_suv(suv)
