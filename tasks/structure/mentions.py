"""Place mentions of one sentence and the clauses they own (``tasks.structure.rules``, steps 3 and 4).

``find_mentions`` turns location phrases into mentions (side words, "bilateral", "ipsilateral", ambiguous
terms, landmarks, diagnoses and reference organs); ``make_groups`` joins mentions coordinated by "and"/","/"or"
into groups that share their words, and ``assign_ranges`` cuts the sentence between groups at the last clause
separator.
"""

from __future__ import annotations

import re

from data_contracts import hierarchy, taxonomy
from data_contracts.findings import CTFinding
from data_contracts.taxonomy import Laterality, System
from tasks.structure import cues
from tasks.structure import lexicon as lx
from tasks.structure.drafts import Group, Mention, ReadState, clause_cut
from tasks.structure.restatements import introduces_new
from tasks.structure.sites import other_exam_subject, strong_negation_between
from tasks.structure.text import Sentence

_COORD_FILLER = re.compile(
    r"\b(?:the|a|an|and|or|as|well|plus|both|in|at|of|within|involving|lymph|nodes?|nodal|regions?|"
    r"vertebral|bod(?:y|ies)|vertebrae|lobes?|ribs?|bones?|chains?|stations?|levels?|also|sides?)\b|[,/&\s\-]",
    re.IGNORECASE)
_TYPED_AT = re.compile(r"[\s-]*(?:[\w-]+\s+){0,2}?(?:nodules?|lesions?|mass(?:es)?|opacit\w+|metastas[ie]s|"
                       r"deposits?|foci|focus|tumou?rs?|carcinoma|cancer|uptake)\s+(?:[\w-]+\s+){0,2}?"
                       r"(?:in|at|within|of|involving|on)\s+(?:the\s+)?(?:[\w-]+\s+)?.$", re.IGNORECASE)
# "no pleural effusion": a place named with what is not a lesion there, denied: a negative statement.
_DENIED_BEFORE = re.compile(r"\b(?:no|without|nor)\s+(?:[\w-]+\s+){0,2}$", re.IGNORECASE)
# "extra-adrenal", "extranodal", "extrahepatic": outside the place named, not in it.
_OUTSIDE = re.compile(r"\bextra[\s-]?$", re.IGNORECASE)
# In a sentence about the prostate, "apex"/"base" are the gland's.
_NON_NODAL_MASS = re.compile(r"[\s-]+(?:soft[\s-]+tissue\s+)?(?:mass(?:es)?|implants?|deposits?|nodularity|thickening|"
                             r"stranding|infiltration)\b", re.IGNORECASE)
_GLAND_PART = re.compile(r"\b(?:apex|apical|base)\b", re.IGNORECASE)
_PROSTATE_SENTENCE = re.compile(r"\b(?:Gleason|prostat\w*|PI-?RADS|ISUP)\b", re.IGNORECASE)
_BIOPSY_SCORE = re.compile(r"\b(?:Gleason|ISUP|grade\s+group)\b[^;)]*$", re.IGNORECASE)
_SUBORDINATOR = re.compile(lx.SUBORDINATOR, re.IGNORECASE)
_TNM = re.compile(r"^\s*[,/]?\s*N[0-3xX]", re.IGNORECASE)


def inside(hit: lx.Hit, others: list[lx.Hit]) -> bool:
    return any(o.start <= hit.start < o.end for o in others)


# -------------------------------------------------------------------------------------------- mentions
def find_mentions(norm: str, loc_hits: list[lx.Hit], sentence: Sentence, state: ReadState,
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
            if lid == "ln_mesenteric" and _NON_NODAL_MASS.match(norm, h.end):
                lid = "peritoneum"  # "a mesenteric mass", "mesenteric implants": the peritoneal fold, not a node
            if _GLAND_PART.search(h.text) and _PROSTATE_SENTENCE.search(norm):
                if _BIOPSY_SCORE.search(norm, max(0, h.start - 30), h.start):
                    continue  # "(Gleason 3 + 4 left apex)": where the biopsy core was, a pathology result
                lid = "prostate"  # "uptake in the left apex" of a prostate report: the gland's, not the lung's
            out.append(Mention(h.start, h.end, lid, h.start, alternatives=tuple(i for i in value if i != lid),
                                spot=h.extra.get("spot", False), words=lx.key(h.text)))
            if taxonomy.get(lid).laterality is not Laterality.midline:
                state.last_side = taxonomy.get(lid).laterality.value
                twin = taxonomy.mirror(taxonomy.get(lid))
                if twin is not None:  # "a left level II node ... the level II nodal focus": the left one
                    state.named[frozenset((lid, twin))] = state.last_side
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
                                                             norm[max(0, h.start - 30):h.start]) \
                and _DEFINITE_HEAD.match(norm, h.end):
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
    if state.operated_bed is not None:  # "recurrence in the surgical bed" after a prostatectomy
        for bed in cues.SURGICAL_BED.finditer(norm):
            if not any(h.start <= bed.start() < h.end for h in loc_hits):
                out.append(Mention(bed.start(), bed.end(), state.operated_bed, bed.start()))
    out = [m for m in out if not _OUTSIDE.search(norm[max(0, m.start - 8):m.anchor])
           and not cues.REFERENCE.search(norm[max(0, m.start - 40):m.start])
           and not (cues.NOT_A_LESION.match(norm, m.end) and not _DENIED_BEFORE.search(norm, 0, m.start)
                    and not _nodal_station_of_node(norm, m, None)) and not cues.MODALITY_AFTER.match(norm, m.end)
           and (state.other_exam or not other_exam_subject(norm, m.start))
           and not (cues.BENIGN.search(norm) and not cues.PET_EVIDENCE.search(norm))
           and not cues.BENIGN_EXPLAINED.search(norm, m.end)
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
    out = _relations(norm, out)
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
    # Not across a ";" or a turn ("but", "however"): "10R LN, SUVmax 6.5; right hilar node, SUVmax 17.8" states
    # two nodes; nor across a denial: "pleural disease, but no pleural effusion" denies the second.
    first: dict[str, Mention] = {}
    kept: list[Mention] = []
    for m in sorted(out, key=lambda m: (m.start, m.anchor)):
        prior = first.get(m.location_id)
        if prior is not None and (((m.spot or prior.spot) and prior.words != m.words)
                                  or _parts_differ(norm, prior, m)):
            kept.append(m)  # "prevascular, precarinal": two spots of one coarse node
            continue
        if (prior is not None and not lx.SCOPE_END.search(norm, prior.end, max(prior.end, m.start))
                and not strong_negation_between(norm, prior, m)
                and not introduces_new(norm[prior.end:m.start])):  # "..., and multiple masses at the omentum"  # "pleural disease, however no pleural effusion"
            prior.repeats.append(m.anchor)
            continue
        first[m.location_id] = m
        kept.append(m)
    return kept


# The subject of a relation: what extends to / abuts the place. A nodal head makes the place the nodes' own
# ("the tumour and associated lymphadenopathy extends to the left hilar region"); a definite lesion noun is
# the lesion told before ("the mass extends to the pleural surface": its extent, not a new lesion).
_NODAL_HEAD = re.compile(r"\b(?:(?:lymph)?adenopath\w*|lymph\s+nodes?|nodes?|nodal\s+(?:mass\w*|disease|"
                         r"conglomerate\w*)|conglomerate\w*)\b", re.IGNORECASE)
_DEFINITE_LESION = re.compile(lx.definite_lesion(), re.IGNORECASE)
_CLAUSE_START = re.compile(r"[;:.]|,\s+(?=[A-Z])|\b(?:but|however|whereas|while|and\s+there)\b", re.IGNORECASE)


def _nodal_station_of_node(norm: str, m: Mention, prev: Mention | None) -> bool:
    """Whether a landmark is a nodal station named by its vessel or region, said of a node: the head noun
    before the relation is a node ("lymph node dorsal of the right external iliac vein")."""
    if taxonomy.get(m.location_id).system is not System.lymph_node:
        return False
    lo = max(prev.end if prev is not None else 0, m.start - 60)
    cut = max([lo, *(c.end() for c in _CLAUSE_START.finditer(norm, lo, m.start))])
    return re.search(r"(?i)\b(?:lymph\s+)?nod(?:e|es)\b[^,;]*$", norm[cut:m.start]) is not None


def _relations(norm: str, out: list[Mention]) -> list[Mention]:
    """Drop places named only as landmarks ("extends to", "adjacent to", "dorsal to"). A place listed right
    after a landmark ("encasing the left upper lobe, lingular and lower lobe bronchi") is one too. When every
    place of the sentence is a landmark, the subject decides: a nodal subject keeps the nodal places, a
    definite lesion already described keeps none, any other subject keeps them all."""
    ordered = sorted(out, key=lambda m: m.start)
    for k, m in enumerate(ordered):
        m.relational = bool(lx.RELATIONAL.search(norm[max(0, m.start - 40):m.start]))
        if m.relational and _nodal_station_of_node(norm, m, ordered[k - 1] if k else None):
            m.relational = False  # "a lymph node dorsal of the right external iliac vein": an external iliac node
        prev = ordered[k - 1] if k else None
        if (not m.relational and prev is not None and prev.relational and prev.end <= m.start
                and not _COORD_FILLER.sub("", norm[prev.end:m.start])):
            m.relational = True
    if any(not m.relational for m in out):
        return [m for m in out if not m.relational]
    if not out:
        return out
    first = min(m.start for m in out)
    cut = max([0, *(c.end() for c in _CLAUSE_START.finditer(norm, 0, first))])
    subject = norm[cut:first]
    if _NODAL_HEAD.search(subject):
        nodal = [m for m in out if taxonomy.get(m.location_id).system is System.lymph_node]
        return nodal or out
    if _DEFINITE_LESION.search(subject):
        return []
    return out


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
        # a place between them, or one whose phrase holds the side word ("left breast mass and axillary nodes")
        between_locs = any(o.end > s.end and o.start < hit.start and o is not hit for o in loc_hits)
        if not between_locs and len(gap.split()) <= 3 and not re.search(r"[,;()]", gap):
            return resolve(s.value), s.start
    after = lx.SIDE_AFTER.match(norm[hit.end:])
    if after:
        return lx.side_of(after.group("side")), hit.start
    # The nearest side word earlier in the same clause ("left axillary and supraclavicular nodes").
    # Not past a midline place of the list ("Right paratracheal, prevascular, ..., hilar nodes": the side was
    # the first item's), nor onto another kind of place ("left breast mass and axillary nodes").
    carried = [s for s in before if not s.extra["adjacent_only"] and ";" not in norm[s.end:hit.start]]
    if carried and _carries(carried[-1], hit, loc_hits):
        return resolve(carried[-1].value), hit.start
    if hit.extra.get("dual"):
        return "both", hit.start  # "adrenals", "axillae", "hila" with no side: both sides
    return None, hit.start


# A part of a place written before it: "anterosuperior right pleura and posterobasal right pleura" are two.
_PART_WORD = re.compile(r"\b((?:antero|postero|supero|infero|medio|latero)?(?:anterior|posterior|superior|inferior|"
                        r"medial|lateral|apical|basal|basilar|upper|lower|proximal|distal|mid|central|peripheral)|"
                        r"(?:antero|postero|supero|infero)[a-z]+)[\s-]+(?:(?:right|left)[\s-]+)?$", re.IGNORECASE)


def _parts_differ(norm: str, a: Mention, b: Mention) -> bool:
    """Two mentions of one place, each written with its own part of it (different parts)."""
    pa = _PART_WORD.search(norm, max(0, a.start - 30), a.anchor)
    pb = _PART_WORD.search(norm, max(0, b.start - 30), b.anchor)
    return pa is not None and pb is not None and pa.group(1).lower() != pb.group(1).lower()


# "the submandibular nodal focus", "the level II node": a definite lesion noun phrase (not "the breast of ...").
_DEFINITE_HEAD = re.compile(rf"(?:[\s-]+[\w-]+){{0,2}}?[\s-]+{lx.LESION_HEAD}\b", re.IGNORECASE)


def _systems(hit: lx.Hit) -> set:
    kind, value = hit.value
    ids = value if kind == "term" else tuple(value.values())
    return {taxonomy.get(i).system for i in ids}


def _carries(side: lx.Hit, hit: lx.Hit, loc_hits: list[lx.Hit]) -> bool:
    """Whether a side word said earlier in the clause carries to this stem: the place it names is of the same
    kind (both nodes, both bones, ...) and no midline place is listed in between."""
    owner = next((o for o in loc_hits if o.start <= side.end + 2 and o.end > side.start and o is not hit), None)
    if owner is not None and not (_systems(owner) & _systems(hit)):
        return False
    for o in loc_hits:
        if side.end <= o.start < hit.start and o.value[0] == "term" and o.value[1] and all(
                taxonomy.get(i).laterality is Laterality.midline for i in o.value[1]):
            return False
    return True


def heading_mentions(sentence: Sentence) -> list[Mention]:
    """A sentence under a one-organ heading ("SPLEEN: focal lesion, SUVmax 5.2") is about that organ."""
    if not sentence.heading:
        return []
    ids = [h.value[1] for h in lx.find_locations(sentence.heading) if h.value[0] == "term" and len(h.value[1]) == 1]
    if len(ids) != 1:
        return []
    return [Mention(0, 0, ids[0][0], 0)]


# ---------------------------------------------------------------------------------------------- groups
def make_groups(norm: str, mentions: list[Mention], attr_pos: list[int]) -> list[Group]:
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


def assign_ranges(norm: str, groups: list[Group]) -> None:
    """Split the sentence between groups after the last clause separator outside parentheses."""
    cuts = [0]
    for a, b in zip(groups, groups[1:]):
        cuts.append(clause_cut(norm, a.end, b.start))
    cuts.append(len(norm))
    for i, g in enumerate(groups):
        a, b = cuts[i], cuts[i + 1]
        # A place in a subordinate clause ("Even though the lung abscess is no longer avid, the nodes ...") owns
        # the words up to the comma that closes it; the main clause speaks of something else.
        for sub in _SUBORDINATOR.finditer(norm, 0, g.start):
            close = re.compile(r"[,;]").search(norm, sub.end())
            if close is not None and sub.end() <= g.start < close.start():
                b = min(b, close.start())
        g.ranges = [(a, b)]

