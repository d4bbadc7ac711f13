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
"""

from __future__ import annotations

import re

from data_contracts import hierarchy, taxonomy
from data_contracts.findings import CTFinding, Tracer
from data_contracts.records import PetFinding, StructuredFinding
from data_contracts.structured_report import StructuredReport
from data_contracts.taxonomy import Laterality, System
from tasks.structure import cues
from tasks.structure import lexicon as lx
from tasks.structure.drafts import SUV_TOLERANCE, Draft, Group, Mention, ReadState, clause_of, grade_of, span_of
from tasks.structure.sites import deny, other_exam_subject, other_site, strong_negation_between, weak
from tasks.structure.text import Sentence, split_report

EXTRACTOR_VERSION = "rules-2.0.0"

_ENLARGED_SHORT_AXIS_MM = 10.0  # lymph node short axis at and above which a node counts as enlarged
_NO_CHANGE = re.compile(r"\b(?:no|without)\s+(?:significant\s+|interval\s+|appreciable\s+|substantial\s+|"
                        r"relevant\s+|definite\s+|major\s+)?(?:change|progression|increase|decrease|growth)\w*\b"
                        r"|\bnot\s+(?:changed|significantly\s+changed)\b", re.IGNORECASE)
_SEPARATOR = re.compile(r";|,|\band\b|\bwith\b|\bas\s+well\s+as\b|\bplus\b|\bwhile\b|\bwhereas\b|\bbut\b|"
                        r"\balso\b|\bin\s+addition\b|\bfurthermore\b|\bmoreover\b|\badditionally\b",
                        re.IGNORECASE)
_COORD_FILLER = re.compile(
    r"\b(?:the|a|an|and|or|as|well|plus|both|in|at|of|within|involving|lymph|nodes?|nodal|regions?|"
    r"vertebral|bod(?:y|ies)|vertebrae|lobes?|ribs?|bones?|chains?|stations?|levels?|also|sides?)\b|[,/&\s\-]",
    re.IGNORECASE)
_TYPED_AT = re.compile(r"[\s-]*(?:[\w-]+\s+){0,2}?(?:nodules?|lesions?|mass(?:es)?|opacit\w+|metastas[ie]s|"
                       r"deposits?|foci|focus|tumou?rs?|carcinoma|cancer|uptake)\s+(?:[\w-]+\s+){0,2}?"
                       r"(?:in|at|within|of|involving|on)\s+(?:the\s+)?(?:[\w-]+\s+)?.$", re.IGNORECASE)
_TNM = re.compile(r"^\s*[,/]?\s*N[0-3xX]", re.IGNORECASE)



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
    state = ReadState(hand_scoping=scoping == "rules", gynaecological=bool(cues.GYNAECOLOGICAL.search(text)))
    drafts: list[Draft] = []
    recent: list[Sentence] = []
    for sentence in split_report(text):
        if sentence.section == "skip":
            continue
        found = _sentence_findings(sentence, state)
        for draft in found:
            _add(drafts, draft)
        if not found and drafts and recent:
            _value_follows(drafts[-1], recent[-2:], sentence)
        recent.append(sentence)
    drafts = _drop_impression_repeats(drafts)
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


def _value_follows(last: Draft, recent: list[Sentence], sentence: Sentence) -> None:
    """"The SPN was FDG avid. The max SUV was 12.7.": a sentence with one SUVmax and no place of its own right
    after a finding without one gives it that value; one sentence further when it refers back ("it is also
    hypermetabolic (SUV of 8.3)")."""
    if last.suv_max is not None or lx.find_locations(sentence.norm):
        return
    if last.sentence is not recent[-1] and not (
            len(recent) > 1 and last.sentence is recent[-2] and cues.BACK_REFERENCE.search(sentence.norm)):
        return
    values = lx.find_suv(sentence.norm)
    if len(values) == 1:
        last.suv_max = round(values[0].value, 2)
        last.grade = grade_of(last.suv_max, [])


def report_tracer_of(text: str) -> Tracer | None:
    """The tracer the report names most often (ties: the first named); None when it names none."""
    mentions = {t: pos for t, pos in lx.tracer_mentions(text).items() if pos}
    if not mentions:
        return None
    return max(mentions, key=lambda t: (len(mentions[t]), -mentions[t][0]))


# -------------------------------------------------------------------------------------------- sentence
def _sentence_findings(sentence: Sentence, state: ReadState) -> list[Draft]:
    norm = sentence.norm
    if (state.hand_scoping and (cues.HISTORY.search(norm) or cues.OTHER_STUDY.search(norm))
            and not cues.PET_EVIDENCE.search(norm)):
        # The history, another study's findings ("a contrast-enhanced CT of the neck showed ...", "FNA of the
        # node showed ...") and the treatment, told among the findings: not findings of this PET/CT.
        return []
    loc_hits = lx.find_locations(norm)
    ct_hits = lx.find_ct(lx.mask(norm, loc_hits))
    mentions = _mentions(norm, loc_hits, sentence, state, ct_hits)
    if not mentions:
        mentions = _heading_mentions(sentence)
        if not mentions:
            other = other_site(sentence, loc_hits, ct_hits, state)
            if other is None and state.hand_scoping and cues.WHOLE_BODY_NEGATIVE.search(norm):
                deny(state, sentence, [None], (0, len(norm)))  # "No evidence of distant metastatic disease."
            return [other] if other is not None else []
    suv_hits = lx.find_suv(norm)
    size_hits = lx.find_sizes(norm)
    grade_hits = [g for g in lx.find_grades(lx.mask(norm, ct_hits)) if not _inside(g, loc_hits)]
    masked = lx.mask(lx.mask(norm, loc_hits), ct_hits)
    masked = _NO_CHANGE.sub(lambda m: "_" * len(m.group(0)), masked)
    fwd, bwd = lx.find_negations(masked)
    attr_pos = sorted([h.start for h in (*ct_hits, *suv_hits, *size_hits, *grade_hits, *fwd, *bwd)])

    groups = _groups(norm, mentions, attr_pos)
    # Separators inside phrases ("mixed lytic and sclerotic", "SUVmax 8.2 and 6.1") do not cut clauses.
    spans = [*loc_hits, *ct_hits, *size_hits, *(lx.Hit(*h.extra["match"], "") for h in suv_hits)]
    _assign_ranges(lx.mask(norm, spans), groups)
    fwd_scopes = [(c, c.end, _scope_end(masked, c.end)) for c in fwd]
    drafts: list[Draft] = []
    prev_ct: list[lx.Hit] = []
    prev_end = 0
    described_before, prev_group_end = False, 0
    for group in groups:
        owned = lambda hits: [h for h in hits if group.owns(h.start)]  # noqa: E731
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
        negated_at = lambda p: state.hand_scoping and any(  # noqa: E731
            a <= p < b for c, a, b in fwd_scopes if not weak(c))
        # A list goes on ("lesions in both kidneys, both ovaries and the skeleton, including the calvarium,
        # clavicles, ..."): a group with no words of its own shares the description of the group before it.
        listed = (not evidence and described_before
                  and not re.search(r"[;:]|\.\s", re.sub(r"\([^()]*\)", "", norm[prev_group_end:group.start])))
        if listed:
            evidence = [group.start]
        if all(negated_at(p) for p in evidence):
            if evidence:  # said and denied ("no uptake in the liver"): a negative statement
                deny(state, sentence, [m.location_id for m in group.mentions], clause_of(norm, group, []))
            continue
        described_before, prev_group_end = True, group.end
        # A lesion whose uptake is denied ("GGO without significant uptake", "non-avid nodule") is a CT
        # finding only, not a PET/CT finding.
        uptake = [m.start() for a, b in group.ranges for m in lx.UPTAKE_NOUN.finditer(masked, a, b)
                  if not m.group(0).upper().startswith(("SUV", "FDG", "PSMA"))]
        if not g_suv and uptake and all(negated_at(p) for p in uptake):
            deny(state, sentence, [m.location_id for m in group.mentions], clause_of(norm, group, []))
            continue
        marker, target = _largest(norm, group)
        for i, m in enumerate(group.mentions):
            side = taxonomy.get(m.location_id).laterality
            m_suv, m_size = g_suv, g_size
            if marker is not None:  # "multiple ..., the largest [at <place>] measuring ... with SUVmax ..."
                after = m is target or target is None
                m_suv = [h for h in g_suv if (h.start >= marker) == after] or ([] if target else g_suv)
                m_size = [h for h in g_size if (h.start >= marker) == after] or ([] if target else g_size)
            suv = _pick(norm, m_suv, i, group, side)
            size = _pick(norm, m_size, i, group, side)
            if state.hand_scoping and _negated(norm, m, group, fwd_scopes, bwd, suv, g_ct):
                deny(state, sentence, [m.location_id], clause_of(norm, group, []))
                continue
            loc = taxonomy.get(m.location_id)
            ct, explicit = _ct_for(loc.system, g_ct, size, inherited)
            grade = grade_of(suv.value if suv is not None else None, g_grade)
            drafts.append(Draft(
                location_id=m.location_id, ct_finding=ct, ct_explicit=explicit, grade=grade,
                suv_max=round(suv.value, 2) if suv is not None else None,
                size_mm=round(size.value, 1) if size is not None else None,
                sentence=sentence, section=sentence.section, alternatives=m.alternatives,
                clause=clause_of(norm, group, [c for c, _, _ in fwd_scopes])))
    if state.hand_scoping:  # "..., with normal uptake elsewhere", "; no other sites were identified"
        for neg in cues.WHOLE_BODY_NEGATIVE.finditer(norm):
            if not any(neg.start() <= m.anchor < neg.end() + 15 for m in mentions):
                deny(state, sentence, [None], (neg.start(), neg.end()))
    return drafts


def _inside(hit: lx.Hit, others: list[lx.Hit]) -> bool:
    return any(o.start <= hit.start < o.end for o in others)


# -------------------------------------------------------------------------------------------- mentions
def _mentions(norm: str, loc_hits: list[lx.Hit], sentence: Sentence, state: ReadState,
              ct_hits: list[lx.Hit]) -> list[Mention]:
    sides = lx.find_sides(norm)
    out: list[Mention] = []
    for h in loc_hits:
        kind, value = h.value
        if kind == "term":
            if not value:
                continue  # a blocker phrase ("small bowel", "blood pool")
            if _TNM.match(norm[h.end:h.end + 4]) and h.text[:1].upper() in "CTL":
                continue  # a TNM stage ("T2 N1"), not a vertebra
            lid = _disambiguate(value, norm, h, sentence, ct_hits)
            out.append(Mention(h.start, h.end, lid, h.start, alternatives=tuple(i for i in value if i != lid),
                                spot=h.extra.get("spot", False), words=lx.key(h.text)))
            if taxonomy.get(lid).laterality is not Laterality.midline:
                state.last_side = taxonomy.get(lid).laterality.value
            continue
        if len(value) == 1:  # a stem only one side has ("lung middle lobe"): it names that location
            out.append(Mention(h.start, h.end, next(iter(value.values())), h.start))
            continue
        side, side_start = _side_for(norm, h, sides, loc_hits, state)
        pair = frozenset(value.values())
        if (state.gynaecological and "ln_cervical_r" in pair and h.text.lower() == "cervical"
                and not cues.NODAL_AFTER.match(norm, h.end)):
            out.append(Mention(h.start, h.end, "cervix_uteri", h.start))  # "a cervical mass", "cervical recurrence"
            continue
        if side is None and pair in state.named and re.search(r"(?i)\bthe\s+(?:\w+\s+){0,2}$",
                                                             norm[max(0, h.start - 30):h.start]):
            side = state.named[pair]  # "the submandibular nodal focus": the one named before, with its side
        if side is None:  # a side-free stem ("hilar nodes", "a rib lesion"): the pair's common node
            out.append(Mention(h.start, h.end, hierarchy.common_ancestor(value.values()), h.start))
            continue
        if side in ("left", "right"):
            state.named[pair] = side
        for s in (("right", "left") if side == "both" else (side,)):
            out.append(Mention(min(side_start, h.start), h.end, value[Laterality(s)], h.start))
        if side in ("left", "right"):
            state.last_side = side
    out = [m for m in out if not cues.REFERENCE.search(norm[max(0, m.start - 40):m.start])
           and not cues.NOT_A_LESION.match(norm, m.end) and not cues.MODALITY_AFTER.match(norm, m.end)
           and not other_exam_subject(norm, m.start)
           and not (cues.BENIGN.search(norm) and not cues.PET_EVIDENCE.search(norm))
           and not (cues.DISEASE_WORD.search(norm[m.start:m.end])
                    and (not lx.UPTAKE_NOUN.search(norm) or cues.DIAGNOSIS_BEFORE.search(norm[:m.start])))
           and not (cues.DISEASE_AFTER.match(norm, m.end)
                    and (not lx.UPTAKE_NOUN.search(norm) or cues.DIAGNOSIS_BEFORE.search(norm[:m.start])))
           and not (cues.DISEASE_BEFORE.search(norm[max(0, m.start - 40):m.start])
                    and not lx.UPTAKE_NOUN.search(norm))]
    # "the hilum of the right kidney", "the neck of the pancreas": a part named of another place is that place.
    out = [m for m in out if not any(
        o is not m and o.start > m.end and cues.PART_OF.fullmatch(norm, m.end, o.start)
        and not hierarchy.contains(o.location_id, m.location_id) for o in out)]
    for m in out:
        m.relational = bool(lx.RELATIONAL.search(norm[max(0, m.start - 40):m.start]))
    if any(not m.relational for m in out):
        out = [m for m in out if not m.relational]
    # A coarse word that names the diagnosis beside a place ("lytic T7 lesion, suspicious for bone metastasis").
    if len(out) > 1:
        out = [m for m in out if hierarchy.is_leaf(m.location_id) or not (
            cues.DIAGNOSIS_OF.search(norm[max(0, m.start - 40):m.start]) and cues.METASTASIS_AFTER.match(norm, m.end))]
    # A coarse word that only types the lesion ("pulmonary nodule in the left pleural surface", "bone lesion
    # of the right femur"): the place is the one it is said to lie in.
    out = [m for m in out if hierarchy.is_leaf(m.location_id) or not any(
        o.start > m.end and _TYPED_AT.match(norm, m.end, o.start + 1) for o in out if o is not m)]
    # A coarse place said together with a finer one inside it ("mediastinal nodes, station 7"; "vertebral
    # bodies of T7 and T9") is the finer statement.
    # Not when the finer one is negated ("osseous metastases with sparing of the lumbar spine").
    out = [m for m in out if m.spot or not any(
        o is not m and o.location_id != m.location_id and hierarchy.contains(m.location_id, o.location_id)
        and not strong_negation_between(norm, m, o) for o in out)]
    # One place named twice in a sentence is one finding ("multiple lesions in T9, the largest in T9 ...").
    # Not across a ";": "10R LN, SUVmax 6.5; right hilar node, SUVmax 17.8" states two nodes.
    first: dict[str, Mention] = {}
    kept: list[Mention] = []
    for m in sorted(out, key=lambda m: (m.start, m.anchor)):
        prior = first.get(m.location_id)
        if prior is not None and (m.spot or prior.spot) and prior.words != m.words:
            kept.append(m)  # "prevascular, precarinal": two spots of one coarse node
            continue
        if prior is not None and ";" not in norm[prior.end:m.start]:
            prior.repeats.append(m.anchor)
            continue
        first[m.location_id] = m
        kept.append(m)
    return kept


def _disambiguate(ids: tuple[str, ...], norm: str, hit: lx.Hit, sentence: Sentence, ct_hits: list[lx.Hit]) -> str:
    """Pick one of several locations a term names (S1: sacrum or liver segment I): the one the sentence's
    CT description can occur in ("S1 thickening" is hepatic, "sclerotic S1 lesion" osseous), else from
    nearby words ("segment", "hepatic" / "sacral", "vertebra"), else the first."""
    if len(ids) == 1:
        return ids[0]
    systems = {lid: taxonomy.get(lid).system for lid in ids}
    near_ct = sorted((h for h in ct_hits if h.value is not CTFinding.no_ct_correlate),
                     key=lambda h: min(abs(h.start - hit.end), abs(hit.start - h.end)))
    for h in near_ct:
        fits = [lid for lid in ids if lx.compatible(h.value, systems[lid])]
        if len(fits) == 1:
            return fits[0]
    near = norm[max(0, hit.start - 60):hit.start] + " " + norm[hit.end:hit.end + 60]
    for context in (near, norm, sentence.heading or ""):
        organ = lx.AMBIGUOUS_CONTEXT["organ"].search(context) is not None
        bone = lx.AMBIGUOUS_CONTEXT["bone"].search(context) is not None
        if organ != bone:
            want = System.organ if organ else System.bone
            return next((lid for lid in ids if systems[lid] is want), ids[0])
    return ids[0]


def _side_for(norm: str, hit: lx.Hit, sides: list[lx.Hit], loc_hits: list[lx.Hit], state: ReadState):
    """(side, start of the side word) for a stem, or (None, _) when the report names none for it."""

    def resolve(word: str) -> str | None:
        if word == "ipsi":
            return state.last_side
        if word == "contra":
            return {"left": "right", "right": "left"}.get(state.last_side or "")
        return word

    before = [s for s in sides if s.end <= hit.start]
    if before:
        s = before[-1]
        gap = norm[s.end:hit.start]
        between_locs = any(s.end <= o.start < hit.start for o in loc_hits)
        if not between_locs and len(gap.split()) <= 3 and not re.search(r"[,;()]", gap):
            return resolve(s.value), s.start
    after = lx.SIDE_AFTER.match(norm[hit.end:])
    if after:
        return lx.side_of(after.group("side")), hit.start
    # The nearest side word earlier in the same clause ("left axillary and supraclavicular nodes").
    carried = [s for s in before if not s.extra["adjacent_only"] and ";" not in norm[s.end:hit.start]]
    if carried:
        return resolve(carried[-1].value), hit.start
    if hit.extra.get("dual"):
        return "both", hit.start  # "adrenals", "axillae", "hila" with no side: both sides
    return None, hit.start


def _heading_mentions(sentence: Sentence) -> list[Mention]:
    """A sentence under a one-organ heading ("SPLEEN: focal lesion, SUVmax 5.2") is about that organ."""
    if not sentence.heading:
        return []
    ids = [h.value[1] for h in lx.find_locations(sentence.heading) if h.value[0] == "term" and len(h.value[1]) == 1]
    if len(ids) != 1:
        return []
    return [Mention(0, 0, ids[0][0], 0)]


# ---------------------------------------------------------------------------------------------- groups
def _groups(norm: str, mentions: list[Mention], attr_pos: list[int]) -> list[Group]:
    groups: list[Group] = []
    for m in sorted(mentions, key=lambda m: (m.start, m.anchor)):
        if groups:
            last = groups[-1]
            gap_start, gap_end = last.end, m.start
            gap = norm[gap_start:gap_end] if gap_end > gap_start else ""
            no_attrs = not any(gap_start <= p < gap_end for p in attr_pos)
            if no_attrs and (gap_end <= gap_start or not _COORD_FILLER.sub("", gap)):
                last.mentions.append(m)
                continue
        groups.append(Group([m]))
    return groups


def _assign_ranges(norm: str, groups: list[Group]) -> None:
    """Split the sentence between groups after the last clause separator outside parentheses."""
    cuts = [0]
    for a, b in zip(groups, groups[1:]):
        cut, strong, depth = a.end, None, 0
        for i in range(a.end, b.start):
            depth = depth + 1 if norm[i] == "(" else max(depth - 1, 0) if norm[i] == ")" else depth
            sep = _SEPARATOR.match(norm, i) if depth == 0 else None
            if sep and sep.end() <= b.start:
                cut = sep.end()
                strong = sep.end() if sep.group(0) == ";" else strong
        cuts.append(strong if strong is not None else cut)  # after a ";" the next clause has begun
    cuts.append(len(norm))
    for i, g in enumerate(groups):
        g.ranges = [(cuts[i], cuts[i + 1])]


# ---------------------------------------------------------------------------------------------- values
def _largest(norm: str, group: Group) -> tuple[int | None, Mention | None]:
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
    count = lambda sides: sum(s is not None for s in sides)  # noqa: E731
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


def _pick(norm: str, hits: list[lx.Hit], i: int, group: Group, side: Laterality):
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


def _ct_for(system: System, hits: list[lx.Hit], size: lx.Hit | None, inherited: bool = False
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


# -------------------------------------------------------------------------------------------- negation
def _scope_end(masked: str, start: int) -> int:
    m = lx.SCOPE_END.search(masked, start)
    return m.start() if m else len(masked)


def _negated(norm: str, m: Mention, group: Group, fwd_scopes, bwd: list[lx.Hit], suv, g_ct) -> bool:
    strong_evidence = suv is not None or any(h.value is not CTFinding.no_ct_correlate for h in g_ct)
    for cue, a, b in fwd_scopes:
        if a <= m.anchor < b:
            if weak(cue) and strong_evidence:
                continue
            return True
    for cue in bwd:
        if group.owns(cue.start) and cue.start >= m.anchor and ";" not in norm[m.anchor:cue.start]:
            return True  # said of this mention, in its own clause ("...; NP clear" is about something else)
    return False


# ---------------------------------------------------------------------------------------------- dedupe
def _same(a: Draft, b: Draft, loose: bool) -> bool:
    """Whether b restates a. Loose (impression): a missing SUV/size or a defaulted CT finding agrees."""
    if a.location_id != b.location_id and not (loose and (b.location_id in a.alternatives
                                                        or a.location_id in b.alternatives)):
        return False
    if a.ct_finding != b.ct_finding and not (loose and not (a.ct_explicit and b.ct_explicit)):
        return False
    if a.suv_max is not None and b.suv_max is not None:
        return abs(a.suv_max - b.suv_max) <= SUV_TOLERANCE
    if a.size_mm is not None and b.size_mm is not None and abs(a.size_mm - b.size_mm) > 1.0:
        return False
    if loose:
        return True
    return a.suv_max is None and b.suv_max is None and a.size_mm is not None and a.size_mm == b.size_mm


def _merge(into: Draft, other: Draft) -> None:
    """Complete a finding with what a restatement adds (an SUVmax, a size, an explicit CT finding)."""
    if into.suv_max is None and other.suv_max is not None:
        into.suv_max, into.grade = other.suv_max, other.grade
    if into.size_mm is None and other.size_mm is not None:
        into.size_mm = other.size_mm
    if not into.ct_explicit and other.ct_explicit:
        into.ct_finding, into.ct_explicit = other.ct_finding, True


_NEW_LESION = re.compile(r"\b(?:a|an|another|second|third|new|additional|further|other)\s+(?:[\w-]+\s+){0,3}?"
                         r"(?:lesions?|nodules?|mass|focus|foci|nodes?|deposits?|opacit\w+|metastas[ie]s)\b",
                         re.IGNORECASE)


def _add(drafts: list[Draft], new: Draft) -> None:
    """Append a finding unless it restates one of another sentence of the body text (figure captions and
    repeated mentions: same place, CT finding and SUVmax). In free prose without headings (a case report,
    a figure legend) a place named again with no value that contradicts is the same lesion told again."""
    a, b = new.clause if new.clause is not None else (0, len(new.sentence.text))
    if new.section == "body" and not _NEW_LESION.search(new.sentence.text[a:b]):
        for old in drafts:
            if (old.section == "body" and old.sentence is not new.sentence and old.location_id == new.location_id
                    and _same(old, new, loose=True)):
                _merge(old, new)
                return
    if new.section != "impression":
        for old in drafts:
            if old.section != "impression" and old.sentence is not new.sentence and _same(old, new, loose=False):
                _merge(old, new)
                return
    drafts.append(new)


def _drop_impression_repeats(drafts: list[Draft]) -> list[Draft]:
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
