"""Negation scope of the rules extractor (``tasks.structure.rules``, step 5): which mentions a negation cue
covers, and the negative statements a sentence makes (``sites.deny`` records them).
"""

from __future__ import annotations

import re

from data_contracts import hierarchy
from data_contracts.findings import CTFinding
from tasks.structure import cues
from tasks.structure import lexicon as lx
from tasks.structure.drafts import Group, Mention
from tasks.structure.sites import weak

NO_CHANGE = re.compile(r"\b(?:no|without)\s+(?:significant\s+|interval\s+|appreciable\s+|substantial\s+|"
                        r"relevant\s+|definite\s+|major\s+)?(?:change|progression|increase|decrease|growth)\w*\b"
                        r"|\bnot\s+(?:changed|significantly\s+changed)\b", re.IGNORECASE)


_SUBORDINATE = re.compile(lx.SUBORDINATOR + r"[^,;]*$", re.IGNORECASE)


def scope_end(masked: str, start: int) -> int:
    """Where a forward negation stops: the next turn ("but", ";", "however"), or the comma that closes the
    subordinate clause it is said in ("Although no uptake was seen on the first scan, the second showed ...")."""
    m = lx.SCOPE_END.search(masked, start)
    end = m.start() if m else len(masked)
    if _SUBORDINATE.search(masked, 0, start):
        comma = masked.find(",", start, end)
        end = comma if comma >= 0 else end
    return end


def negated(norm: str, m: Mention, group: Group, fwd_scopes, bwd: list[lx.Hit], suv, g_ct) -> bool:
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



# ------------------------------------------------------------------------------ statements of absence
# What a negative statement that names no hierarchy place is about, from its own words: a system ("no nodal
# disease", "no osseous metastases"), the rest of the body ("no distant metastases", "no other lesions",
# "no extra-adrenal disease"), or a body region named after it ("... or metastasis within the abdomen or
# pelvis", "no evidence of disease in the right hemithorax").
_SYSTEM_WORDS = (
    ("lymph_nodes", re.compile(r"\b(?:nodal|lymph\w*|(?:lymph)?adenopath\w*|nodes?)\b", re.IGNORECASE)),
    ("skeleton", re.compile(r"\b(?:osseous|bone|bony|skeletal|osteo\w*)\b", re.IGNORECASE)),
)
_ELSEWHERE = re.compile(r"\b(?:distant|other|elsewhere|further|remaining|rest\s+of|additional|extra[\s-]+\w+|"
                        r"systemic|widespread|whole[\s-]+body)\b", re.IGNORECASE)
# "... [or metastasis] within the abdomen or pelvis": the coordinated heads, then the place phrase.
_COORDINATED_HEAD = re.compile(r"\s+(?:(?:or|nor|and)\s+(?:[\w-]+\s+){0,3}?)?(?:metasta\w*|disease|lesions?|"
                               r"involvement|recurrence|malignan\w*|spread)\b", re.IGNORECASE)
_PLACE_AFTER = re.compile(r"\s+(?:in|within|involving|of|throughout)\s+(?:the\s+)?(?P<place>(?:right\s+|left\s+)?"
                          r"[A-Za-z-]+(?:\s+(?:or|and|nor)\s+(?:in\s+)?(?:the\s+)?[A-Za-z-]+)*)", re.IGNORECASE)


def absence_statements(norm: str) -> list[tuple[list[str | None], tuple[int, int]]]:
    """Every negative statement of a sentence that states no hierarchy place, with the ids it denies
    (None: the whole body; a system's or a region's node) and its span. A place the hierarchy names after
    it ("no metastatic disease in the liver") is a mention, left to the mention's own negation."""
    out = []
    for neg in cues.WHOLE_BODY_NEGATIVE.finditer(norm):
        words = neg.group(0)
        end = neg.end()
        while (co := _COORDINATED_HEAD.match(norm, end)) is not None:
            end = co.end()
        ids: list[str | None] = []
        place = _PLACE_AFTER.match(norm, end)
        if place is not None:  # parts the hierarchy names ("... or in the mediastinum") are mentions
            parts = re.split(r"\s+(?:or|and|nor)\s+(?:in\s+)?(?:the\s+)?", place.group("place"))
            regions = [r for r in (cues.region_of(p) for p in parts if not lx.find_locations(p)) if r is not None]
            if regions:
                ids += [hierarchy.region_node(r) for r in dict.fromkeys(regions)]
                end = place.end()
        said = words + (" " + place.group("place") if place is not None else "")  # "no uptake in the lymph nodes"
        system = next((node for node, pattern in _SYSTEM_WORDS if pattern.search(said)), None)
        if system is not None and not re.search(r"\bextra[\s-]", words, re.IGNORECASE):
            ids.insert(0, system)
        elif not ids or _ELSEWHERE.search(words):
            ids.insert(0, None)
        out.append((ids, (neg.start(), end)))
    return out


# Cues that deny disease at a place ("no uptake in the liver", "the right axilla is negative", "the spleen is
# unremarkable"); physiological, degenerative or post-treatment words explain uptake, they deny nothing.
_DENIAL = re.compile(r"^(?:no|not|without|negative\s+for|free\s+of|absence\s+of|absent|neither|nor|rule\s+out|"
                     r"ruled\s+out|no\s+longer.*|no\s+evidence\s+of|no\s+residual|devoid\s+of|void\s+of|spared|"
                     r"sparing\s+of|resolved|(?:has|have)\s+(?:completely\s+)?resolved|resolution\s+of|"
                     r"interval\s+resolution\s+of|disappear\w*(?:\s+of)?|normal|unremarkable|is\s+absent|"
                     r"not\s+.*|within\s+normal\s+limits|(?:is|are|was|were|appears?)\s+(?:\w+\s+)?"
                     r"(?:normal|unremarkable)|(?:is|are|:)?\s*(?:neg|negative|NAD|nil|clear|free))$", re.IGNORECASE)


def denies(cue: lx.Hit) -> bool:
    """Whether a negation cue states an absence of disease (not a physiological or benign explanation)."""
    return _DENIAL.match(cue.text.strip()) is not None


def denied_mentions(norm: str, group: Group, fwd_scopes, bwd: list[lx.Hit]) -> list[Mention]:
    """The mentions of a group with no lesion words that a denial covers ("right axilla is negative")."""
    out = []
    for m in group.mentions:
        if any(a <= m.anchor < b and denies(c) for c, a, b in fwd_scopes) or any(
                group.owns(c.start) and c.start >= m.anchor and ";" not in norm[m.anchor:c.start] and denies(c)
                for c in bwd):
            out.append(m)
    return out


# Words that name a body compartment rather than an organ: a denial there denies the whole region ("no
# evidence of disease in the right hemithorax" is about the chest, not only its pleura).
_COMPARTMENT = re.compile(r"\b(?:hemi-?thora(?:x|ces)|thora(?:x|cic\s+cavity)|chest|abdomen|abdominal\s+cavity|"
                          r"pelvis|pelvic\s+cavity|neck)\b", re.IGNORECASE)


def denied_ids(norm: str, mentions: list[Mention]) -> list[str | None]:
    """The ids a denial of these mentions states: each mention's node, and the region's open node when the
    words name a compartment."""
    out: list[str | None] = []
    for m in mentions:
        out.append(m.location_id)
        words = norm[m.start:m.end]
        region = cues.region_of(words) if _COMPARTMENT.search(words) else None
        if region is not None:
            out.append(hierarchy.region_node(region))
    return out


def said_of_place(norm: str, m: Mention, start: int) -> bool:
    """Whether a statement of absence at ``start`` is said of the place named before it in the same clause
    ("The liver is free of metastases"), not of the rest of the body ("..., with no distant metastases")."""
    if m.anchor >= start:
        return False
    between = norm[m.end:start]
    if re.search(r"[,;:.]|\b(?:but|however|whereas|while|although|and|with|as\s+well\s+as)\b", between, re.IGNORECASE):
        return False
    return not _ELSEWHERE.search(norm, start, start + 80)
