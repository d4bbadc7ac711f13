"""Restatements (``tasks.structure.rules``, step 6): a finding told again (a figure caption, the impression, a
later sentence about the same place) is merged into the finding it repeats.
"""

from __future__ import annotations

import re
from dataclasses import replace

from data_contracts import hierarchy, taxonomy
from data_contracts.taxonomy import System
from tasks.structure import cues
from tasks.structure import lexicon as lx
from tasks.structure.drafts import SUV_TOLERANCE, Draft, grade_of


def _same(a: Draft, b: Draft, loose: bool) -> bool:
    """Whether b restates a. Loose (impression): a missing SUV/size or a defaulted CT finding agrees."""
    if a.location_id != b.location_id and not (loose and (b.location_id in a.alternatives
                                                        or a.location_id in b.alternatives)):
        return False
    if a.ct_finding != b.ct_finding and not (loose and not (a.ct_explicit and b.ct_explicit)):
        return False
    if a.suv_max is not None and b.suv_max is not None:
        return abs(a.suv_max - b.suv_max) <= SUV_TOLERANCE or (loose and _NOW.search(_clause_text(b)) is not None)
    if a.size_mm is not None and b.size_mm is not None and abs(a.size_mm - b.size_mm) > 1.0:
        return False
    if loose:
        return True
    return a.suv_max is None and b.suv_max is None and a.size_mm is not None and a.size_mm == b.size_mm


# "The SPN was now FDG avid", "currently measures": the lesion as it is at this study, after an earlier one.
_NOW = re.compile(r"\b(?:now|currently|at\s+present|has\s+(?:grown|increased|progressed)|on\s+the\s+(?:current|"
                  r"present|follow-?up)\s+(?:study|scan|examination))\b", re.IGNORECASE)


def _merge(into: Draft, other: Draft) -> None:
    """Complete a finding with what a restatement adds (an SUVmax, a size, an explicit CT finding). A
    restatement of the lesion as it is "now" replaces the values told of an earlier time."""
    into.latest = other.sentence
    if other.section == into.section and _NOW.search(_clause_text(other)):
        into.renewed = True
        if other.suv_max is not None:
            into.suv_max, into.grade = other.suv_max, other.grade
        if other.size_mm is not None:
            into.size_mm = other.size_mm
    if into.suv_max is None and other.suv_max is not None:
        into.suv_max, into.grade = other.suv_max, other.grade
    if into.size_mm is None and other.size_mm is not None:
        into.size_mm = other.size_mm
    if not into.ct_explicit and other.ct_explicit:
        into.ct_finding, into.ct_explicit = other.ct_finding, True


# How a clause refers to its lesion: "there is/are ..." and an indefinite noun phrase ("a nodule", "another
# lesion", "several nodes") introduce a new one; a definite one ("the lesion", "this focus", "the submandibular
# nodal focus") refers to one told before, whatever the clause says of it afterwards ("... localized to an
# 8-mm node").
_INDEFINITE = (r"(?:a|an|another|second|third|new|additional|further|other|several|multiple|numerous|few|two|"
               r"three)")
_LESION_NP = re.compile(rf"\b(?:(?P<definite>{lx.DEFINITE_DETERMINER})|{_INDEFINITE})\s+(?:[\w-]+\s+){{0,4}}?"
                        rf"{lx.LESION_HEAD}\b", re.IGNORECASE)
_EXISTENTIAL = re.compile(r"\bthere\s+(?:is|are|was|were)\s+(?:also\s+)?(?!the\b|no\b|none\b)", re.IGNORECASE)


def reference_of(clause: str) -> str | None:
    """"new" (an existential or an indefinite lesion noun phrase comes first), "definite" (a definite one does),
    or None (no lesion noun phrase: a place named again)."""
    if _EXISTENTIAL.search(clause):
        return "new"
    np = _LESION_NP.search(clause)
    if np is None:
        return None
    return "definite" if np.group("definite") else "new"


# "the lesion", "this focus" with no word of its own: the lesion just told, wherever the clause places it. Narrower
# than ``lx.LESION_HEAD`` on purpose: singular, no modifier, no node ("The nodes at level III are also avid" is
# a second lesion, not the level II node told before).
_GENERIC_DEFINITE = re.compile(r"^(?:(?!\b(?:a|an|another)\b).)*?\b(?:the|this|that)\s+(?:lesion|mass|tumou?r|focus|"
                               r"abnormality|finding|uptake)\b(?!\s+(?:of|in|at)\s+the\s+(?:right|left))",
                               re.IGNORECASE)


def _region(node: str):
    return taxonomy.get(node).region


def _clause_text(d: Draft) -> str:
    a, b = d.clause if d.clause is not None else (0, len(d.sentence.text))
    return d.sentence.text[a:b]


_PREDICATE = re.compile(r"\b(?:reflects?|represents?|representing|suggest\w*|is|are|was|were|be|likely|probably|"
                        r"possibly|(?:consistent|compatible|in\s+keeping)\s+with|suspicious\s+(?:for|of)|concerning\s+for|"
                        r"such\s+as|as|or)\s+$", re.IGNORECASE)


def introduces_new(text: str) -> bool:
    """Whether words between two mentions of one place introduce a second lesion ("..., and multiple nodular
    masses at the omentum"), not a predicate about the first ("..., which may reflect a hyperfunctioning
    nodule")."""
    if _EXISTENTIAL.search(text):
        return True
    np = _LESION_NP.search(text)
    return (np is not None and not np.group("definite")
            and not _PREDICATE.search(text, max(0, np.start() - 40), np.start()))


def add_draft(drafts: list[Draft], new: Draft) -> None:
    """Append a finding unless it restates one of another sentence of the body text (figure captions and
    repeated mentions: same place, CT finding and SUVmax). In free prose without headings (a case report,
    a figure legend) a place named again with no value that contradicts is the same lesion told again,
    unless the clause introduces a new lesion ("there is a second nodule in ...")."""
    fresh = reference_of(_clause_text(new)) == "new"
    if new.section == "body" and _GENERIC_DEFINITE.search(_clause_text(new)) and not fresh and drafts:
        # "... intense uptake in the left supraglottic region. CT images localize the lesion at the base of the
        # tongue.": "the lesion" is the one just told, placed again in the same body region and system.
        last = drafts[-1]
        if (last.section == "body" and last.sentence is not new.sentence and last.location_id != new.location_id
                and _region(last.location_id) == _region(new.location_id)
                and taxonomy.get(last.location_id).system is taxonomy.get(new.location_id).system):
            if hierarchy.contains(last.location_id, new.location_id):
                last.location_id, last.alternatives = new.location_id, ()
            _merge(last, new)
            return
    if new.section == "body":
        for old in drafts:
            # Two introductions ("there is a mass in the left lower lobe" ... "there are small nodules in the
            # left lower lobe") are two lesions; a bare mention told again is one.
            if fresh and reference_of(_clause_text(old)) == "new":
                continue
            if (old.section == "body" and old.sentence is not new.sentence and old.location_id == new.location_id
                    and _same(old, new, loose=True)):
                _merge(old, new)
                return
        # A coarser word for a place told before ("... right perihilar adenopathy ... lung cancer and associated
        # hilar adenopathy"), with no value of its own, is that lesion told again.
        if not fresh and new.suv_max is None and new.size_mm is None and not hierarchy.is_leaf(new.location_id):
            for old in reversed(drafts):
                if (old.section == "body" and old.sentence is not new.sentence
                        and old.location_id != new.location_id and hierarchy.contains(new.location_id, old.location_id)
                        and not hierarchy.is_open(new.location_id)):
                    return
    if new.section == "impression" and reference_of(_clause_text(new)) == "definite":
        # "... defined the primary pancreatic tumor and the extent of liver metastases": the impression's own
        # lesions named again
        for old in drafts:
            if (old.section == "impression" and old.sentence is not new.sentence
                    and old.location_id == new.location_id and _same(old, new, loose=True)):
                _merge(old, new)
                return
    if new.section != "impression":
        for old in drafts:
            if old.section != "impression" and old.sentence is not new.sentence and _same(old, new, loose=False):
                _merge(old, new)
                return
    drafts.append(new)


def drop_impression_repeats(drafts: list[Draft]) -> list[Draft]:
    """Impression items restating a body finding (before or after it: some houses put the impression
    first) are merged into it; impression items with no counterpart stay, they may be the only statement."""
    body = [d for d in drafts if d.section != "impression"]
    out = []
    for d in drafts:
        if d.section == "impression":
            twin = next((b for b in body if _same(b, d, loose=True)), None)
            if twin is not None:
                if twin.location_id != d.location_id and not d.alternatives:
                    # The impression names the place unambiguously ("segment I of the liver" for "S1").
                    twin.location_id, twin.alternatives = d.location_id, ()
                    if not lx.compatible(twin.ct_finding, taxonomy.get(d.location_id).system):
                        twin.ct_finding, twin.ct_explicit = d.ct_finding, d.ct_explicit
                _merge(twin, d)
                continue
        out.append(d)
    return out


_OSSEOUS = re.compile(r"\b(?:bone|bony|osseous|skeletal|osteo\w*)\b", re.IGNORECASE)
# "the lesion", "the bronchial tumor": a definite lesion noun phrase, said of something already told. Its own head
# list still: with ``lx.definite_lesion()`` ("foci", ...) a CT or MRI sentence about "the hypoattenuating foci"
# ("foci" counts as PET evidence) took up the lesions an earlier sentence told, even where it calls them benign.
_DEFINITE_LESION = re.compile(r"\b(?:the|this|that|these|such)\s+(?:[\w-]+\s+){0,2}?(?:lesions?|mass|tumou?r|nodules?|"
                              r"nodes?|focus|abnormality|neoplasm|primary)\b", re.IGNORECASE)


def refer_back(found: list[Draft], sentence, state) -> list[Draft]:
    """A PET sentence about "the lesion" that another exam's sentence has just described ("CT revealed a 3 cm
    lesion in the right upper lobe. A PET scan showed that the lesion was hypermetabolic."): the lesion is a
    finding of this PET/CT at the place told (a finer one than the PET sentence names: "the bronchial tumor"
    after "a lesion in the right main bronchus"); its values come from the PET sentence."""
    pending, state.told = state.told, []
    definite = _DEFINITE_LESION.search(sentence.norm)
    if not pending or definite is None or not cues.PET_EVIDENCE.search(sentence.norm):
        return found
    told_by_sentence = [read() for read in pending]  # read only here: most PET sentences refer to none
    if not any(told_by_sentence):
        return found
    # The antecedent is the nearest sentence that told a lesion of the kind the noun phrase names.
    for told in reversed(told_by_sentence):
        out = _refer_to(found, told, sentence, definite)
        if out is not None:
            return out
    return found


def _refer_to(found: list[Draft], told: list[Draft], sentence, definite: re.Match) -> list[Draft] | None:
    """``refer_back`` against one sentence's told lesions; None when none of them is the one referred to."""
    # "the nodule" is the lesion told, not the nodes told beside it (and "the node" a node)
    nodal = re.search(r"(?i)\bnod(?:e|es|al)\b|adenopathy", definite.group(0)) is not None
    told = [t for t in told if (taxonomy.get(t.location_id).system is System.lymph_node) == nodal]
    if _OSSEOUS.search(definite.group(0)):  # "these bone lesions": the told lesions of the skeleton
        told = [t for t in told if taxonomy.get(t.location_id).system is System.bone]
    plural = re.match(r"(?i)these|those", definite.group(0)) is not None or definite.group(0).endswith("s")
    places = list(dict.fromkeys(t.location_id for t in told))
    # the finest: "right lung" told beside "right upper lobe" is that lobe
    places = [p for p in places if not any(q != p and hierarchy.contains(p, q) for q in places)]
    if not places:
        return None
    if not found and (len(places) == 1 or plural):  # one place told (maybe twice), or "these lesions"
        values = lx.find_suv(sentence.norm)
        suv = round(values[0].value, 2) if len(values) == 1 and len(places) == 1 else None
        out = []
        for place in places:
            t = next(t for t in reversed(told) if t.location_id == place)
            out.append(Draft(location_id=t.location_id, ct_finding=t.ct_finding, ct_explicit=t.ct_explicit,
                             grade=grade_of(suv, lx.find_grades(sentence.norm)), suv_max=suv, size_mm=t.size_mm,
                             sentence=sentence, section=sentence.section, clause=(0, len(sentence.norm))))
        return out
    if not found:
        return []  # "the lesion" after several places told: which one is not said
    out, refined = [], False
    for d in found:
        finer = [p for p in places if p != d.location_id and hierarchy.contains(d.location_id, p)]
        if len(finer) == 1 or (plural and finer):
            refined = True
            for place in finer:  # "these bone lesions" after "lesions of the vertebrae, ribs and left femur"
                out.append(replace(d, location_id=place, alternatives=()))
        else:
            out.append(d)
    return out if refined else None


_DEFINITE_SUBJECT = re.compile(r"^\s*" + lx.definite_lesion(), re.IGNORECASE)


def values_told_after(last: Draft, recent: list, sentence) -> None:
    """A sentence that reads no finding of its own may give the last one its values (``recent``: the sentences
    before it, the latest last).

    * Its subject is the lesion just told ("The SPN was now FDG avid, and its size was 14mm."): it tells that
      lesion again; its SUVmax (the highest) and size are that lesion's when it had none, and "now" makes
      them its current ones.
    * Else, one SUVmax or several with no place of its own right after a finding without one ("The SPN was FDG
      avid. The max SUV was 12.7."), or one sentence further when it refers back ("it is also hypermetabolic
      (SUV of 8.3)"), gives that finding the highest (the value of a lesion told again "now" replaces the
      earlier one)."""
    norm = sentence.norm
    values, sizes = lx.find_suv(norm), lx.find_sizes(norm)
    if (last.section == sentence.section and _DEFINITE_SUBJECT.match(norm)
            and (cues.PET_EVIDENCE.search(norm) or sizes)):
        now = _NOW.search(norm) is not None
        last.latest, last.renewed = sentence, last.renewed or now
        if values and (now or last.suv_max is None):
            _set_suv(last, values)
        if sizes and (now or last.size_mm is None):
            last.size_mm = round(max(h.value for h in sizes), 1)
        return
    if (last.suv_max is not None and not last.renewed) or lx.find_locations(norm):
        return
    told = last.latest or last.sentence  # the sentence that last told the lesion ("The SPN was now FDG avid.")
    if not recent or (told is not recent[-1] and not (
            len(recent) > 1 and told is recent[-2] and cues.BACK_REFERENCE.search(norm))):
        return
    if values:  # several values with no place of their own: parts of that lesion, its SUVmax the highest
        _set_suv(last, values)


def _set_suv(last: Draft, values: list[lx.Hit]) -> None:
    last.suv_max = round(max(v.value for v in values), 2)
    last.grade = grade_of(last.suv_max, [])
