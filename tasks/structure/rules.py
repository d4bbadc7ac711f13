"""The offline ``rules`` backend: report text → ``StructuredReport`` without any model or network.

How one report is read:

1. ``text.split_report`` finds the sentences (wraps undone, lists and headings respected) and the section
   each lies in; history/technique/comparison sections and header fields are not read for findings.
2. In each sentence ``lexicon`` finds location phrases, side words, CT descriptions, uptake grades, SUVmax
   values, measurements and negation cues, each with its offsets.
3. Location phrases become *mentions*: a complete term ("left upper lobe", "T7") names its location; a
   side-free stem ("level II", "hilar", "7th rib") takes its side from a side word just before it
   ("R SCV", "right-sided"), just after it ("on the left", "(right)"), or the nearest side word earlier
   in the sentence; "bilateral"/"both"/"bilaterally" make one mention per side; "ipsilateral" and
   "contralateral" refer to the last side named. A term that names two places ("S1": sacrum or liver
   segment I) is resolved from the words around it. A place named as a landmark ("extending into the
   pleura") is not a finding when the sentence has another.
4. Mentions joined only by "and"/","/"or" form a group that shares the words around it ("lytic lesions
   in T7 and T9, SUVmax 8.1 and 6.2 respectively"). Between groups, the text is cut at the last clause
   separator: what precedes belongs to the earlier group, what follows to the later one.
5. Each mention in a group becomes a finding unless a negation cue covers it ("no abnormal uptake in the
   liver", "has resolved", "physiological uptake in ...") or nothing in its words describes a lesion.
   Values: SUVmax and size from the group's words (count-matched lists are distributed in order, a side
   written next to a value goes to that side, "the largest ..." selects the values after it, otherwise
   the largest value); the CT finding from the first description compatible with the location's system,
   else a default (lymph node: enlarged when the short axis is >= 10 mm, else non-enlarged; elsewhere:
   no CT correlate); the grade from SUVmax via ``grade_for_suv`` when given (the words decide only for a
   value written on a threshold, "4.0"), else from the words, else "increased" (moderate).
6. Restatements are merged into the finding they repeat: an IMPRESSION item (before or after FINDINGS)
   with the same location and a compatible CT finding and SUVmax, and a body sentence (a figure caption
   repeating the text) with the same location, CT finding and SUVmax. An impression that names an
   ambiguous place unambiguously ("segment I of the liver" for "S1") settles it.

Real prose (case reports, figure legends): a place keeps the finest hierarchy node its words support (a
side-free stem names the pair's common node: "hilar nodes" → ``ln_hilar``); sentences of the history or of
another exam, diagnoses, reference organs and benign entities are not findings (``cues``); an uptake
statement at a place no node names is an other-site finding, and negative statements are kept (``sites``).
A finding's span is its clause.

The tracer is the ``tracer`` argument when given (the study's own acquisition record), else the tracer the
report names most often ("FDG", "fluorodeoxyglucose", "PSMA", "18F-DCFPyL", "Ga-68 PSMA-11", ...), else
none: the findings then carry no tracer.
Report text is never logged.

Where each step lives: sentences and sections ``text``; mentions and clause groups ``mentions``; SUVmax, size
and CT values ``values``; negation scope and negative statements ``negation`` and ``sites``; restatements
and coreference ``restatements``; context cues ``cues``; the vocabulary ``lexicon``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from functools import partial

from data_contracts import taxonomy
from data_contracts.findings import Tracer
from data_contracts.records import PetFinding, StructuredFinding
from data_contracts.structured_report import StructuredReport
from tasks.structure import cues
from tasks.structure import lexicon as lx
from tasks.structure.drafts import Draft, Mention, ReadState, clause_of, grade_of, span_of
from tasks.structure.mentions import (
    assign_ranges,
    find_mentions,
    heading_mentions,
    inside,
    make_groups,
)
from tasks.structure.negation import (
    NO_CHANGE,
    absence_statements,
    said_of_place,
    denied_ids,
    denied_mentions,
    negated,
    scope_end,
)
from tasks.structure.restatements import (
    add_draft,
    drop_impression_repeats,
    refer_back,
    values_told_after,
)
from tasks.structure.sites import deny, other_sites, weak
from tasks.structure.text import Sentence, split_report
from tasks.structure.values import ct_for, largest, pick

EXTRACTOR_VERSION = "rules-2.0.0"



# ------------------------------------------------------------------------------------------------- API
def extract(text: str, tracer: Tracer | None = None, scoping: str = "rules") -> StructuredReport:
    """Read every finding a PET/CT report states; see the module docstring for the rules. ``scoping``
    "medspacy" replaces the hand-written negation, uncertainty and history rules by medSpaCy's ConText and
    sectionizer (``tasks.structure.context``; measured worse on real prose, kept for the comparison)."""
    if not isinstance(text, str):
        raise TypeError(f"report text must be str, got {type(text).__name__}")
    report_tracer = tracer if tracer is not None else report_tracer_of(text)
    if scoping not in ("rules", "medspacy"):
        raise ValueError(f"unknown scoping {scoping!r}: rules or medspacy")
    state = ReadState(hand_scoping=scoping == "rules", gynaecological=bool(cues.GYNAECOLOGICAL.search(text)),
                      operated_bed=cues.operated_bed(text))
    drafts: list[Draft] = []
    recent: list[Sentence] = []
    history_paragraph, prev_end = False, None
    for sentence in split_report(text):
        if sentence.section == "skip":
            continue
        # A paragraph that opens with the history ("35 year old male status post ... New lesion in the liver
        # concerning for metastatic disease. PET/CT ordered for restaging.") is the indication throughout,
        # up to a sentence that speaks of the PET.
        if prev_end is None or sentence.item or re.search(r"\n\s*\n", text[prev_end:sentence.start]):
            history_paragraph = state.hand_scoping and _history(sentence.norm) and not _PET_NAMED.search(sentence.norm)
        prev_end = sentence.end
        if history_paragraph and not cues.PET_EVIDENCE.search(sentence.norm) and not _PET_NAMED.search(sentence.norm):
            state.told = [*state.told, _told(sentence, state)]
            continue
        found = refer_back(_sentence_findings(sentence, state), sentence, state)
        for draft in found:
            add_draft(drafts, draft)
        if not found and drafts and recent:
            values_told_after(drafts[-1], recent[-2:], sentence)
        recent.append(sentence)
    drafts = drop_impression_repeats(drafts)
    findings = []
    for d in drafts:  # no tracer named or given: the findings carry none
        findings.append(StructuredFinding(
            location_id=d.location_id,
            laterality=taxonomy.get(d.location_id).laterality,
            ct_finding=d.ct_finding,
            pet_finding=PetFinding(tracer=report_tracer, grade=d.grade),
            suv_max=d.suv_max,
            size_mm=d.size_mm,
            span=span_of(d),
            other_site=d.other_site,
        ))
    report = StructuredReport(findings=tuple(findings), negatives=tuple(state.negatives), backend="rules",
                              extractor_version=EXTRACTOR_VERSION)
    if scoping == "medspacy":
        from tasks.structure.context import medspacy_scope

        report = medspacy_scope(text, report)
    return report


_PET_NAMED = re.compile(r"\b(?:PET|FDG|PSMA)\b", re.IGNORECASE)


def _told(sentence: Sentence, state: ReadState) -> Callable[[], list[Draft]]:
    """How to read the lesions a history or other-exam sentence describes (not findings of this study). Its
    place mentions are read now, since the sides it names carry on ("a 7-cm right hilar mass ... PET revealed
    avidity throughout the hilar mass"); its lesions only when a PET sentence refers back (``refer_back``)."""
    told_state = replace(state, hand_scoping=False, other_exam=True, negatives=[], told=[])
    return partial(_findings, sentence, told_state, *_places(sentence, told_state))


def _history(norm: str) -> bool:
    """A sentence of the history or of another exam, with no PET words."""
    return bool(cues.HISTORY.search(norm) or cues.OTHER_STUDY.search(norm)) and not cues.PET_EVIDENCE.search(norm)


def report_tracer_of(text: str) -> Tracer | None:
    """The tracer the report names most often (ties: the first named); None when it names none."""
    mentions = {t: pos for t, pos in lx.tracer_mentions(text).items() if pos}
    if not mentions:
        return None
    return max(mentions, key=lambda t: (len(mentions[t]), -mentions[t][0]))


# -------------------------------------------------------------------------------------------- sentence
def _sentence_findings(sentence: Sentence, state: ReadState) -> list[Draft]:
    norm = sentence.norm
    if state.hand_scoping and _history(norm):
        # The history, another study's findings ("a contrast-enhanced CT of the neck showed ...", "FNA of the
        # node showed ...") and the treatment, told among the findings: not findings of this PET/CT. Its lesions
        # are kept aside: a PET sentence may go on about "the lesion" (``refer_back``).
        state.told = [*state.told, _told(sentence, state)]  # "... biopsies showed carcinoma": still that lesion
        return []
    return _findings(sentence, state, *_places(sentence, state))


def _places(sentence: Sentence, state: ReadState) -> tuple[list[lx.Hit], list[lx.Hit], list[Mention]]:
    """A sentence's location phrases, CT descriptions and place mentions (the sides it names go to ``state``)."""
    norm = sentence.norm
    loc_hits = lx.find_locations(norm)
    ct_hits = lx.find_ct(lx.mask(norm, loc_hits))
    return loc_hits, ct_hits, find_mentions(norm, loc_hits, sentence, state, ct_hits)


def _findings(sentence: Sentence, state: ReadState, loc_hits: list[lx.Hit], ct_hits: list[lx.Hit],
              mentions: list[Mention]) -> list[Draft]:
    norm = sentence.norm
    if not mentions:
        mentions = heading_mentions(sentence)
        if not mentions:
            others = other_sites(sentence, loc_hits, ct_hits, state, [])
            if not others and state.hand_scoping:  # "No evidence of distant metastatic disease."
                for ids, where in absence_statements(norm):
                    deny(state, sentence, ids, where)
            return others
    suv_hits = lx.find_suv(norm)
    size_hits = lx.find_sizes(norm)
    grade_hits = [g for g in lx.find_grades(lx.mask(norm, ct_hits)) if not inside(g, loc_hits)]
    masked = lx.mask(lx.mask(norm, loc_hits), ct_hits)
    masked = NO_CHANGE.sub(lambda m: "_" * len(m.group(0)), masked)
    fwd, bwd = lx.find_negations(masked)
    attr_pos = sorted([h.start for h in (*ct_hits, *suv_hits, *size_hits, *grade_hits, *fwd, *bwd)])

    groups = make_groups(norm, mentions, attr_pos)
    # Separators inside phrases ("mixed lytic and sclerotic", "SUVmax 8.2 and 6.1") do not cut clauses.
    spans = [*loc_hits, *ct_hits, *size_hits, *(lx.Hit(*h.extra["match"], "") for h in suv_hits)]
    assign_ranges(lx.mask(norm, spans), groups)
    fwd_scopes = [(c, c.end, scope_end(masked, c.end)) for c in fwd]
    drafts: list[Draft] = []
    prev_ct: list[lx.Hit] = []
    prev_end = 0
    described_before, prev_group_end = False, 0
    for group in groups:
        owned = lambda hits: [h for h in hits if group.owns(h.start)]
        g_ct, g_suv, g_size, g_grade = owned(ct_hits), owned(suv_hits), owned(size_hits), owned(grade_hits)
        # CT words negated in their own clause ("without lytic or sclerotic change") do not describe it.
        g_ct = [h for h in g_ct if not any(a <= h.start < b and not weak(c) for c, a, b in fwd_scopes)]
        # "Lytic lesions in T7 (SUVmax 8.1) and T9 (SUVmax 6.2)": a site with no words of its own shares
        # the CT description of the site before it.
        a, b = group.ranges[0]
        inherited = (not g_ct and bool(prev_ct) and not lx.NOUN_HEAD.search(norm, a, b)
                     and not re.search(r"[;:]", norm[prev_end:group.start]))
        if inherited:
            g_ct = prev_ct
        prev_ct, prev_end = g_ct or prev_ct, group.end
        # Described: something in its words says "lesion" outside every negation ("spleen without focal
        # uptake" and "right adrenal negative for malignancy" describe nothing).
        nouns = [m.start() for a, b in group.ranges for m in lx.LESION_NOUN.finditer(masked, a, b)]
        evidence = [*(h.start for h in (*g_ct, *g_suv, *g_size, *g_grade)), *nouns]
        negated_at = lambda p: state.hand_scoping and any(
            a <= p < b for c, a, b in fwd_scopes if not weak(c))
        # A list goes on ("lesions in both kidneys, both ovaries and the skeleton, including the calvarium,
        # clavicles, ..."): a group with no words of its own shares the description of the group before it.
        listed = (not evidence and described_before
                  and not re.search(r"[;:]|\.\s", re.sub(r"\([^()]*\)", "", norm[prev_group_end:group.start])))
        if listed:
            evidence = [group.start]
        if all(negated_at(p) for p in evidence):
            if evidence:  # said and denied ("no uptake in the liver"): a negative statement
                deny(state, sentence, denied_ids(norm, group.mentions), clause_of(norm, group, []))
            elif state.hand_scoping:  # a place and a denial only: "the right axilla is negative"
                denied = denied_mentions(norm, group, fwd_scopes, bwd)
                if denied:
                    deny(state, sentence, denied_ids(norm, denied), clause_of(norm, group, []))
            continue
        described_before, prev_group_end = True, group.end
        # A lesion whose uptake is denied ("GGO without significant uptake", "non-avid nodule") is a CT
        # finding only, not a PET/CT finding.
        uptake = [m.start() for a, b in group.ranges for m in lx.UPTAKE_NOUN.finditer(masked, a, b)
                  if not m.group(0).upper().startswith(("SUV", "FDG", "PSMA"))]
        if not g_suv and uptake and all(negated_at(p) for p in uptake):
            deny(state, sentence, denied_ids(norm, group.mentions), clause_of(norm, group, []))
            continue
        marker, target = largest(norm, group)
        for i, m in enumerate(group.mentions):
            side = taxonomy.get(m.location_id).laterality
            m_suv, m_size = g_suv, g_size
            if marker is not None:  # "multiple ..., the largest [at <place>] measuring ... with SUVmax ..."
                after = m is target or target is None
                m_suv = [h for h in g_suv if (h.start >= marker) == after] or ([] if target else g_suv)
                m_size = [h for h in g_size if (h.start >= marker) == after] or ([] if target else g_size)
            suv = pick(norm, m_suv, i, group, side)
            size = pick(norm, m_size, i, group, side)
            if state.hand_scoping and negated(norm, m, group, fwd_scopes, bwd, suv, g_ct):
                deny(state, sentence, denied_ids(norm, [m]), clause_of(norm, group, []))
                continue
            loc = taxonomy.get(m.location_id)
            ct, explicit = ct_for(loc.system, g_ct, size, inherited)
            grade = grade_of(suv.value if suv is not None else None, g_grade)
            drafts.append(Draft(
                location_id=m.location_id, ct_finding=ct, ct_explicit=explicit, grade=grade,
                suv_max=round(suv.value, 2) if suv is not None else None,
                size_mm=round(size.value, 1) if size is not None else None,
                sentence=sentence, section=sentence.section, alternatives=m.alternatives,
                clause=clause_of(norm, group, [c for c, _, _ in fwd_scopes])))
    # "Moderate activity in the right anterior sulcus is present, as is a small focus in the right hilum."
    drafts += other_sites(sentence, loc_hits, ct_hits, state, [m.anchor for m in mentions])
    if state.hand_scoping:  # "..., with normal uptake elsewhere", "; no other sites were identified"
        for ids, (a, b) in absence_statements(norm):
            if any(a <= m.anchor < b + 15 for m in mentions):
                continue  # "no uptake in the liver": the mention's own negation
            if ids == [None] and any(said_of_place(norm, m, a) for m in mentions):
                continue  # "The liver is free of metastases": about the liver, not the whole body
            deny(state, sentence, ids, (a, b))
    return drafts

