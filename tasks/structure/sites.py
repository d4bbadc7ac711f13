"""Which places of a sentence are findings of this study, and what else a sentence states: an "other site"
(an uptake statement at a place no hierarchy node names), a negative statement ("no uptake in the liver",
"no distant metastases"), a statement of another exam. Used by ``tasks.structure.rules``.
"""

from __future__ import annotations

import re

from data_contracts import hierarchy
from data_contracts.findings import CTFinding
from data_contracts.records import NegativeFinding, OtherSite, TextSpan
from data_contracts.taxonomy import System
from tasks.structure import cues
from tasks.structure import lexicon as lx
from tasks.structure.drafts import Draft, Mention, ReadState, clause_cut, grade_of
from tasks.structure.text import Sentence


def deny(state: ReadState, sentence: Sentence, location_ids: list[str | None], clause: tuple[int, int]) -> None:
    """Record a negative statement ("no abnormal uptake in the liver"; location None: the whole body)."""
    a, b = clause
    span = TextSpan(start=sentence.start + a, end=sentence.start + b, text=sentence.text[a:b])
    for lid in dict.fromkeys(location_ids):
        neg = NegativeFinding(location_id=lid, span=span)
        if neg not in state.negatives:
            state.negatives.append(neg)


def strong_negation_between(norm: str, a: Mention, b: Mention) -> bool:
    lo, hi = min(a.end, b.end), max(a.start, b.start)
    return any(not lx.WEAK_NEGATION.match(c.group(0).strip()) for c in lx.NEG_FORWARD.finditer(norm, lo, hi))


def other_exam_subject(norm: str, pos: int) -> bool:
    """Whether the clause before ``pos`` reports another exam ("a bone scan showed uptake in the spine")."""
    start = max([0, *(m.end() for m in re.finditer(r"[;]|\b(?:but|however|whereas|while)\b", norm[:pos]))])
    before = norm[start:pos]
    hit = None
    for hit in cues.OTHER_EXAM_SUBJECT.finditer(before):
        pass
    return (hit is not None and not re.search(r"\bPET\b", before[hit.end():])
            and not re.search(r"(?i)\b(?:FDG|PSMA|radiotracer)\b", norm[pos:]))  # "..., corresponding to FDG uptake"


def other_sites(sentence: Sentence, loc_hits: list[lx.Hit], ct_hits: list[lx.Hit], state: ReadState,
                anchors: list[int]) -> list[Draft]:
    """Lesions at places no node names ("a focus of activity in the right anterior sulcus", "uptake along
    the diaphragm", "1 lymph node with intense uptake"): an uptake statement, not negated, with a place
    phrase after it that holds no hierarchy place, in a clause with no mention (``anchors``: where the
    sentence's mentions start; "activity in the right epigastrium compatible with a tumour of the pancreas"
    is about the pancreas). The finding sits on the open node of the region its words (or the heading) tell, else ``body``,
    and keeps the words; a node with no place named sits on ``lymph_nodes``."""
    norm = sentence.norm
    if any(h.value[0] == "term" and not h.value[1] for h in loc_hits):
        return []  # a blocker phrase ("blood pool", "bone scan"): about a reference or another study
    out: list[Draft] = []
    for cue in cues.OTHER_SITE_CUE.finditer(norm):
        draft = _other_site_at(sentence, cue, loc_hits, ct_hits, state, anchors)
        if draft is not None and not any(d.clause[1] > draft.clause[0] for d in out):
            out.append(draft)
    return out


def _other_site_at(sentence: Sentence, cue: re.Match, loc_hits: list[lx.Hit], ct_hits: list[lx.Hit],
                   state: ReadState, anchors: list[int]) -> Draft | None:
    norm = sentence.norm
    place = cues.OTHER_SITE_PLACE.search(norm, cue.end())
    nodal_cue = cue.group("node") is not None  # "1 lymph node with intense uptake": where is not said
    if place is None or place.start() - cue.end() > 40:
        if not nodal_cue:
            return None
        place = cue
    clause_end = re.compile(r"[,;.]|\b(?:as\s+is|as\s+are|but|however|whereas|while)\b").search(norm, place.end())
    clause_end = clause_end.start() if clause_end else len(norm)
    if any(cue.start() <= p < clause_end for p in anchors) or any(
            h.start < place.end() and h.end > place.start() for h in loc_hits):
        return None  # the place is a hierarchy place, or a mention lies in between
    words = (place.group("words") if place is not cue else cue.group(0)).strip(" ,-")
    if cues.GENERIC_PLACE.fullmatch(words) or len(words) < 4 or other_exam_subject(norm, place.start()):
        return None
    nodal = nodal_cue or re.search(r"(?i)\b(?:lymph\s+nodes?|nodes?|lymphadenopathy|adenopathy)\b", words) is not None
    masked = lx.mask(lx.mask(norm, loc_hits), ct_hits)
    fwd, bwd = lx.find_negations(masked)
    clause_start = max([0, *(m.end() for m in lx.SCOPE_END.finditer(norm, 0, cue.start()))])
    if state.hand_scoping and (any(clause_start <= c.start < place.end() and not weak(c) for c in fwd)
                               or any(c.start >= cue.start() and not lx.SCOPE_END.search(norm, place.end(), c.start)
                                      for c in bwd)):
        return None
    # Beside a mention, the words themselves must tell the region (not the heading: "..., 15 mm in size").
    region = cues.region_of(words) or (None if anchors else cues.region_of(sentence.heading or ""))
    if region is None and not nodal:
        return None  # words that tell no body region ("the main component"): too little to keep
    # Its values are those of its own words, not of a place the sentence goes on to tell.
    suv_hits = lx.find_suv(norm)
    a, b = cue.start(), _own_end(norm, place.end(), anchors, loc_hits, ct_hits, suv_hits)
    suv = [h for h in suv_hits if a <= h.start < b]
    value = round(suv[0].value, 2) if len(suv) == 1 else None
    own_ct = [h for h in ct_hits if a <= h.start < b]
    ct = next((h.value for h in own_ct), CTFinding.no_ct_correlate)
    grades = [g for g in lx.find_grades(lx.mask(norm, ct_hits)) if a <= g.start < b]
    if nodal:  # "uptake in 1 lymph node": a node, where is not said
        if not lx.compatible(ct, System.lymph_node):
            ct = CTFinding.non_enlarged_lymph_node
        return Draft(location_id="lymph_nodes", ct_finding=ct, ct_explicit=False, grade=grade_of(value, grades),
                      suv_max=value, size_mm=None, sentence=sentence, section=sentence.section,
                      clause=(a, place.end()))
    return Draft(location_id=hierarchy.region_node(region), ct_finding=ct, ct_explicit=bool(own_ct),
                  grade=grade_of(value, grades), suv_max=value, size_mm=None, sentence=sentence,
                  section=sentence.section, other_site=OtherSite(words=words[:200], region=region),
                  clause=(a, place.end()))


def _own_end(norm: str, place_end: int, anchors: list[int], loc_hits: list[lx.Hit], ct_hits: list[lx.Hit],
             suv_hits: list[lx.Hit]) -> int:
    """Where an other-site's own words end: at the clause separator before the next thing the sentence tells (a
    mention, another other-site cue), else at the sentence end ("Focal activity in the right anterior sulcus,
    SUVmax 4.1." keeps its value; "... sulcus is present, as is a focus in the left hilum, SUVmax 5.2." does not
    take the hilum's)."""
    following = [p for p in anchors if p >= place_end]
    following += [c.start() for c in cues.OTHER_SITE_CUE.finditer(norm, place_end)]
    if not following:
        return len(norm)
    spans = [*loc_hits, *ct_hits, *(lx.Hit(*h.extra["match"], "") for h in suv_hits)]
    return clause_cut(lx.mask(norm, spans), place_end, min(following))


def weak(cue: lx.Hit) -> bool:
    return bool(lx.WEAK_NEGATION.match(cue.text.strip()))
