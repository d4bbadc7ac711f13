"""Compiled matchers for report vocabulary: locations, sides, CT findings, uptake grades, SUVmax, sizes,
negation and tracers.

Everything is built from the shared vocabularies — ``taxonomy.Location.terms``/``.stems``,
``findings.CT_FINDINGS`` synonyms, ``findings.UPTAKE_SYNONYMS`` — plus a short list of phrases real
PET/CT reports use that the taxonomy does not spell (ordinal words for ribs, jugular chain names for neck
levels, "CT-occult", "of normal size", ...). Each matcher returns ``Hit``s with offsets into the sentence
it was given, so the extractor can reason about order and distance.

Matching rules: case-insensitive except short capitalised abbreviations ("RUL", "SCV", side letters "R"/"L");
spaces and hyphens between words are interchangeable or optional ("para-aortic" = "para aortic" =
"paraaortic", "ground glass" = "ground-glass"); a trailing plural is accepted ("nodes", "ribs", "axillae");
whole words only, longest phrase first ("level IIa" before "level II", "T12" never read as "T1").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache

from data_contracts import hierarchy, taxonomy
from data_contracts.findings import (
    CT_FINDINGS,
    UPTAKE_SYNONYMS,
    CTFinding,
    Tracer,
    UptakeGrade,
)
from data_contracts.taxonomy import Laterality, System

_B = r"(?<![A-Za-z0-9])"  # word start
_E = r"(?![A-Za-z0-9])"  # word end
_ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]
_ORDINAL_WORDS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
                  "eleventh", "twelfth"]


@dataclass(frozen=True)
class Hit:
    start: int
    end: int
    text: str
    value: object = None  # what the hit means: location ids, a CTFinding, a grade, a number, ...
    extra: dict = field(default_factory=dict, compare=False)


def key(phrase: str) -> str:
    """Lookup key of a phrase: lower case, without spaces and hyphens."""
    return re.sub(r"[\s\-\u2010-\u2013]+", "", phrase.lower())


def _word_pattern(word: str) -> str:
    if re.fullmatch(r"[A-Z]{1,4}", word) and not re.fullmatch(r"[IVX]+[AB]?", word):
        return f"(?-i:{re.escape(word)})"  # RUL, SCV, R, L: capitals only
    return re.escape(word)


def phrase_pattern(phrase: str, plural: bool = True) -> str:
    words = [w for w in re.split(r"[\s\-]+", phrase.strip()) if w]
    body = r"[\s\-]*".join(_word_pattern(w) for w in words)
    if plural and re.search(r"[^aeiou]y$", phrase):
        body = body[:-1] + "(?:y|ies)"  # "hypodensity" / "hypodensities", "opacities"
    elif plural and re.search(r"[a-z]$", phrase):
        body += "(?:es|s|e)?"  # "nodes", "masses", "axillae", "kidneys"
    elif plural and re.search(r"[A-Z]$", phrase):
        body += "(?-i:s)?"  # "GGOs", "LNs"
    return body


def compile_phrases(phrases, plural: bool = True) -> re.Pattern:
    """One alternation of all phrases, longest first, whole words only."""
    alts = sorted({p for p in phrases if p.strip()}, key=lambda p: (-len(key(p)), p))
    return re.compile(_B + "(?:" + "|".join(phrase_pattern(p, plural) for p in alts) + ")" + _E, re.IGNORECASE)


def _lookup(table: dict, matched: str, plural: list | None = None):
    """The table entry of a matched phrase, trying it as written, then without a plural ending."""
    k = key(matched)
    for cand in (k, k[:-2] if k.endswith("es") else None, k[:-1] if k.endswith(("s", "e")) else None,
                 k[:-3] + "y" if k.endswith("ies") else None):
        if cand and cand in table:
            if plural is not None:
                plural.append(cand != k)
            return table[cand]
    return None


def _finditer(pattern: re.Pattern, text: str, table: dict) -> list[Hit]:
    hits = []
    for m in pattern.finditer(text):
        value = _lookup(table, m.group(0))
        if value is not None:
            hits.append(Hit(m.start(), m.end(), m.group(0), value))
    return hits


# ---------------------------------------------------------------------------------------------- locations
# Phrases real reports use that the taxonomy does not spell. Midline/sided terms: phrase → location ids;
# lateral stems: phrase → taxonomy key prefix (the location ids are prefix + "_l" / "_r").
_EXTRA_TERMS: dict[str, tuple[str, ...]] = {
    "caudate lobe": ("liver_s1",), "caudate": ("liver_s1",),
    "segment IVa": ("liver_s4",), "segment IVb": ("liver_s4",), "segment 4a": ("liver_s4",),
    "segment 4b": ("liver_s4",), "S4a": ("liver_s4",), "S4b": ("liver_s4",),
    "sacral body": ("sacrum",), "sacral vertebra": ("sacrum",), "sacral spine": ("sacrum",),
    "sigmoid": ("colon",), "rectosigmoid": ("colon",), "caecum": ("colon",), "cecum": ("colon",),
    "cecal": ("colon",), "caecal": ("colon",), "ascending colon": ("colon",), "descending colon": ("colon",),
    "transverse colon": ("colon",), "hepatic flexure": ("colon",), "splenic flexure": ("colon",),
    "splenic hilum": ("spleen",),
    "uncinate process": ("pancreas",), "pancreatic neck": ("pancreas",),
    "thyroid bed": ("thyroid",), "gastro-oesophageal junction": ("esophagus",),
    "gastroesophageal junction": ("esophagus",), "GEJ": ("esophagus",), "GOJ": ("esophagus",),
    "aorto-pulmonary window": ("ln_mediastinal_5",), "aorto pulmonary window": ("ln_mediastinal_5",),
    "inter-aortocaval": ("ln_retroperitoneal_aortocaval",), "lingular": ("lung_lul",),
    "aorticopulmonary": ("ln_mediastinal_5",), "aortico-pulmonary": ("ln_mediastinal_5",),
    "peri-aortic": ("ln_retroperitoneal_paraaortic",), "para-aortic retroperitoneal":
        ("ln_retroperitoneal_paraaortic",),
    "gastrohepatic ligament": ("ln_gastric",), "NP": ("nasopharynx",),
    # Not locations: phrases that contain a location word but mean something else ("small bowel" is not
    # the colon, the blood pool is a reference region). An empty tuple consumes the words.
    "blood pool": (), "mediastinal blood pool": (), "renal excretion": (),
    "urinary excretion": (), "bladder activity": (), "L4/5": (), "L5/S1": (), "L4-5": (), "L5-S1": (),
    "bone scan": (), "bone scintigraphy": (), "bone window": (), "lung window": (), "mediastinal window": (),
    "head and neck": (), "head & neck": (), "liver background": (), "background liver": (),
    "hepatic background": (), "normal liver": (), "liver reference": (), "mediastinal reference": (),
    "thoracic surgery": (), "bone metabolism": (), "bone scintigram": (), "lung cancer screening": (),
    "lymph node station": (), "T1 hypointense": (), "T1 hyperintense": (), "T2 hyperintense": (),
    "T2 hypointense": (), "T1-weighted": (), "T2-weighted": (), "T1W": (), "T2W": (), "T1 signal": (),
    "T2 signal": (),
}
_EXTRA_STEMS: dict[str, str] = {
    "jugulodigastric": "ln_cervical_ii", "upper jugular": "ln_cervical_ii", "submandibular": "ln_cervical_i",
    "submental": "ln_cervical_i", "mid jugular": "ln_cervical_iii", "middle jugular": "ln_cervical_iii",
    "lower jugular": "ln_cervical_iv", "low jugular": "ln_cervical_iv", "posterior triangle":
        "ln_cervical_v", "spinal accessory": "ln_cervical_v", "posterior cervical": "ln_cervical_v",
    "supraclavicular fossa": "ln_supraclavicular", "axillary region": "ln_axillary",
    "supra-clavicular": "ln_supraclavicular", "supra clavicular": "ln_supraclavicular",
    "infra-clavicular": "ln_infraclavicular", "infra clavicular": "ln_infraclavicular",
    "hila": "ln_hilar", "interlobar": "ln_hilar", "perihilar": "ln_hilar", "subhilar": "ln_hilar", "station 11": "ln_hilar", "ilia": "ilium",
    "humeri": "humerus", "femora": "femur", "proximal humeri": "humerus", "proximal femora": "femur",
    "iliac crests": "ilium", "pubic bones": "pubis", "ischia": "ischium",
    "iliac wing": "ilium", "hemithoraces": "pleura", "pleurae": "pleura",
    "renal hilum": "kidney", "renal pelvis": "kidney",
    "iliac blade": "ilium", "supra-acetabular": "ilium", "iliac bones": "ilium",
    "greater trochanter": "femur", "lesser trochanter": "femur", "trochanter": "femur",
    "intertrochanteric": "femur", "subtrochanteric": "femur", "femoral head": "femur",
    "acromion": "scapula", "coracoid": "scapula", "scapular body": "scapula",
    "lung base": "lung_lower", "lung apex": "lung_upper", "upper lobe of the": "lung_upper",
    "upper paratracheal": "station_2", "lower paratracheal": "station_4",
    "pubic rami": "pubis", "inferior pubic ramus": "pubis",
    "int iliac": "ln_internal_iliac", "int. iliac": "ln_internal_iliac", "ext iliac": "ln_external_iliac",
    "ext. iliac": "ln_external_iliac", "com iliac": "ln_common_iliac", "common iliac artery": "ln_common_iliac",
}
# Stem prefixes whose sided ids are not "<prefix>_l/_r".
_STEM_SIDES = {
    "lung_lower": {Laterality.right: "lung_rll", Laterality.left: "lung_lll"},
    "lung_upper": {Laterality.right: "lung_rul", Laterality.left: "lung_lul"},
    "station_2": {Laterality.right: "ln_mediastinal_2r", Laterality.left: "ln_mediastinal_2l"},
    "station_4": {Laterality.right: "ln_mediastinal_4r", Laterality.left: "ln_mediastinal_4l"},
}


def _extra_stem_words() -> dict[str, str]:
    out = dict(_EXTRA_STEMS)
    for i, word in enumerate(_ORDINAL_WORDS, start=1):
        out[f"{word} rib"] = f"rib_{i}"
        out[f"{word} costal arc"] = f"rib_{i}"
    for i, rn in enumerate(_ROMAN[:6], start=1):
        for form in (f"level {rn}a", f"level {rn}b", f"level {i}a", f"level {i}b", f"zone {rn}", f"level-{rn}"):
            out[form] = f"ln_cervical_{rn.lower()}"
    return out


def _extra_terms() -> dict[str, tuple[str, ...]]:
    out = dict(_EXTRA_TERMS)
    for i, rn in enumerate(_ROMAN[:8], start=1):
        lid = f"liver_s{i}"
        for form in (f"hepatic segment {i}", f"Couinaud segment {i}", f"segment {i} of the liver",
                     f"segment {rn} of liver", f"liver segment {rn}", f"hepatic segment {rn}",
                     f"segment {rn} liver"):
            out.setdefault(form, (lid,))
        if i >= 2:
            out[f"S{rn}"] = (lid,)
    for side in ("right", "left"):
        s = side[0]
        out[f"{side} lung base"] = ("lung_rll" if s == "r" else "lung_lll",)
        out[f"{side} lung apex"] = ("lung_rul" if s == "r" else "lung_lul",)
    for letter, n in (("C", 7), ("T", 12), ("L", 5)):
        for i in range(1, n + 1):
            out[f"{letter}-{i}"] = (f"vertebra_{letter.lower()}{i}",)
    return out


# Nodes whose names are too generic to mark a place on their own ("lymph node" is said of every nodal site).
_NO_TERMS = frozenset({"lymph_nodes", "soft_tissue"})

# Terms that name two locations; the extractor picks one from context (see ``AMBIGUOUS_CONTEXT``).
_AMBIGUOUS: dict[str, tuple[str, ...]] = {
    "S1": ("sacrum", "liver_s1"),  # the first sacral vertebra, or Couinaud segment I
    **{f"S{i}": (f"liver_s{i}", "sacrum") for i in range(2, 6)},  # sacral levels S2-S5 read as sacrum
}
AMBIGUOUS_CONTEXT: dict[str, re.Pattern] = {
    "organ": re.compile(r"\b(?:liver|hepat\w*|segments?|couinaud|caudate|lobe of the liver|hypodens\w*|"
                        r"hypoattenuat\w*|abdom\w*|a\s*/\s*p|abd)\b", re.IGNORECASE),
    "bone": re.compile(r"\b(?:sacr\w*|spin\w*|vertebr\w*|osseous|bones?|bony|skelet\w*|lytic|osteo\w*|sclero\w*|"
                       r"blastic|L5|foram\w*|marrow|facet|ala|msk|musculoskeletal)\b", re.IGNORECASE),
}


@dataclass(frozen=True)
class LocationLexicon:
    pattern: re.Pattern
    terms: dict[str, tuple[str, ...]]  # key → location ids (one, several when ambiguous, none: not a place)
    stems: dict[str, dict[Laterality, str]]  # key → the left and right location ids
    unsided: dict[str, str]  # stem key → the node a side-free mention names (the pair's common ancestor)


@cache
def locations() -> LocationLexicon:
    terms: dict[str, tuple[str, ...]] = {}
    stems: dict[str, dict[Laterality, str]] = {}
    phrases: list[str] = []
    for loc in taxonomy.by_id().values():  # the localizer classes first, then the hierarchy's other nodes
        if hierarchy.is_open(loc.id) or loc.id in _NO_TERMS:
            continue
        if loc.laterality in (Laterality.midline, Laterality.unspecified):
            for t in loc.terms:
                terms.setdefault(key(t), (loc.id,))
                phrases.append(t)
            continue
        for t in loc.terms:
            terms.setdefault(key(t), (loc.id,))
            phrases.append(t)
        for s in loc.stems:
            stems.setdefault(key(s), {})[loc.laterality] = loc.id
            phrases.append(s)
    for phrase, ids in _extra_terms().items():
        terms[key(phrase)] = ids
        phrases.append(phrase)
    for phrase, ids in _AMBIGUOUS.items():
        terms[key(phrase)] = ids
        phrases.append(phrase)
    for phrase, prefix in _extra_stem_words().items():
        sides = _STEM_SIDES.get(prefix) or {Laterality.right: f"{prefix}_r", Laterality.left: f"{prefix}_l"}
        stems.setdefault(key(phrase), dict(sides))
        phrases.append(phrase)
    for sides in stems.values():
        for lid in sides.values():
            taxonomy.get(lid)  # every extra maps onto a real id
    for ids in terms.values():
        for lid in ids:
            taxonomy.get(lid)
    # A phrase that is a complete term and also a stem: a stem of a pair ("rib", "kidney", "cervical lymph
    # node") names a side or, side-free, the pair's common ancestor; a one-sided stem ("middle lobe") is the term.
    terms = {k: v for k, v in terms.items() if not (k in stems and len(stems[k]) == 2)}
    stems = {k: v for k, v in stems.items() if k not in terms}
    unsided = {k: hierarchy.common_ancestor(v.values()) for k, v in stems.items() if len(v) == 2}
    return LocationLexicon(compile_phrases(phrases), terms, stems, unsided)


_LEVEL_NUMERAL = r"(?:XII|XI|X|IX|VIII|VII|VI|IV|V|III|II|I|1[0-2]|[1-9])"
# "levels II and III", "level II/III", "levels II-IV": the numerals after the first named level.
_LEVEL_LIST = re.compile(
    r"(?<![A-Za-z])levels?\s+(?P<first>[IV]{1,3}|[1-6])[ab]?(?P<rest>(?:\s*(?:,|and|or|&|/|-|\u2013|to)\s*"
    r"(?:levels?\s+)?(?:[IV]{1,3}|[1-6])[ab]?(?![A-Za-z0-9]))+)", re.IGNORECASE)
# "4th and 5th ribs", "third and fourth ribs": the ordinals before the one the rib stem names.
_RIB_LIST = re.compile(
    r"(?<![A-Za-z0-9])(?P<list>(?:(?:\d{1,2}(?:st|nd|rd|th)|" + "|".join(_ORDINAL_WORDS) + r")"
    r"\s*(?:,|and|&|/|-|\u2013|to)\s*)+)(?=(?:\d{1,2}(?:st|nd|rd|th)|" + "|".join(_ORDINAL_WORDS) + r")"
    r"[\s-]+(?:ribs?|costal))", re.IGNORECASE)


# Two qualifiers sharing one head word: the first names a place of its own.
_SHARED_HEAD = re.compile(
    r"(?<![A-Za-z])(?:(?P<a>supra|infra)[\s-]*(?:and|&|/|or)\s*(?:infra|supra)(?P<head>[a-z]+)"
    r"|(?P<a2>external|internal|common|upper|lower|middle|anterior|posterior)\s+(?:and|&|/|or)\s+"
    r"(?:external|internal|common|upper|lower|middle)\s+(?P<head2>iliac|paratracheal|lobe|jugular))",
    re.IGNORECASE)


def _roman_value(token: str) -> int | None:
    """The number a level or segment token writes ("II", "iv", "IVb", "4a" → 2, 4, 4, 4); None for one that is
    no numeral of ours ("XX", "IIV")."""
    token = token.upper().rstrip("AB")
    if token.isdigit():
        return int(token)
    return _ROMAN.index(token) + 1 if token in _ROMAN else None


_LIVER_WORD = re.compile(r"\b(?:liver|hepatic|hepato\w*)\b", re.IGNORECASE)
_SEGMENT_LIST = re.compile(r"\bsegments\s+(?P<list>(?:[IVX]{1,4}|[1-8])[ab]?(?:\s*(?:,|and|/|&|-|\u2013|to|or)\s*"
                           r"(?:[IVX]{1,4}|[1-8])[ab]?)+)(?![A-Za-z0-9])", re.IGNORECASE)
_JUNCTION = re.compile(r"\b(?:junction|border|interface|boundary)\s+(?:of|between)\s+(?:the\s+)?$|\bbetween\s+$",
                       re.IGNORECASE)


def _list_hits(text: str) -> list[Hit]:
    """Extra stem hits for the later members of level lists and the earlier members of rib lists."""
    lex = locations()
    out = []
    for m in _LEVEL_LIST.finditer(text):
        first = _roman_value(m.group("first"))
        if first is None:
            continue  # "levels IIV and II": no level list of ours
        values = [first]
        tokens = list(re.finditer(r"(?P<sep>-|\u2013|to)?\s*(?:levels?\s+)?(?P<n>[IV]{1,3}|[1-6])[ab]?(?![A-Za-z0-9])",
                                  m.group("rest"), re.IGNORECASE))
        for t in tokens:
            v = _roman_value(t.group("n"))
            if v is None or v > 6:
                continue
            pos = m.start("rest") + t.start("n")
            if t.group("sep") and v > values[-1] + 1:  # a range: II-IV names III too
                for mid in range(values[-1] + 1, v):
                    out.append(Hit(pos, pos + len(t.group("n")), t.group("n"),
                                   ("stem", lex.stems[key(f"level {_ROMAN[mid - 1]}")])))
            values.append(v)
            out.append(Hit(pos, pos + len(t.group("n")), t.group("n"),
                           ("stem", lex.stems[key(f"level {_ROMAN[v - 1]}")])))
    for m in _SHARED_HEAD.finditer(text):  # "supra- and infraclavicular", "external and common iliac"
        a = "a" if m.group("a") else "a2"
        glue = "" if a == "a" else " "
        phrase = m.group(a) + glue + (m.group("head") or m.group("head2"))
        ids = _lookup(lex.terms, phrase)
        sides = None if ids is not None else _lookup(lex.stems, phrase)
        if ids:
            out.append(Hit(m.start(a), m.end(a), m.group(a), ("term", ids)))
        elif sides:
            out.append(Hit(m.start(a), m.end(a), m.group(a), ("stem", sides), {"plural": False, "dual": False}))
    if _LIVER_WORD.search(text):  # "liver segments 5 and 8", "segments IVb/V": one hit per segment
        for m in _SEGMENT_LIST.finditer(text):
            toks = list(re.finditer(r"(?<![A-Za-z0-9])([IVX]{1,4}|[1-8])([ab])?(?![A-Za-z0-9])", m.group("list"),
                                    re.IGNORECASE))
            if _JUNCTION.search(text, max(0, m.start() - 20), m.start()):
                toks = toks[:1]  # "at the junction of segments V and IVB": one lesion, at the first named
            for t in toks:
                n = _roman_value(t.group(1))
                ids = lex.terms.get(key(f"liver segment {_ROMAN[n - 1]}")) if n is not None and 1 <= n <= 8 else None
                if ids:  # a token that names no segment ("XX") is skipped
                    pos = m.start("list") + t.start()
                    out.append(Hit(pos, pos + len(t.group(0)), t.group(0), ("term", ids)))
    for m in _RIB_LIST.finditer(text):
        for t in re.finditer(r"\d{1,2}(?:st|nd|rd|th)|" + "|".join(_ORDINAL_WORDS), m.group("list"), re.IGNORECASE):
            word = t.group(0).lower()
            n = int(word[:-2]) if word[0].isdigit() else _ORDINAL_WORDS.index(word) + 1
            if 1 <= n <= 12:
                pos = m.start("list") + t.start()
                out.append(Hit(pos, pos + len(t.group(0)), t.group(0), ("stem", lex.stems[key(f"rib {n}")])))
    return out


# Words that name one spot inside a coarse node that has no finer node for it ("prevascular", "precarinal"):
# two such spots in one sentence are two places, and a finer place named beside them does not absorb them.
SPOT_WORDS = re.compile(r"(?:prevascular|precarinal|pretracheal|retrotracheal|anterior\s+mediastinal|"
                        r"posterior\s+mediastinal|superior\s+mediastinal|perihilar|subhilar|retrocrural|"
                        r"intrapulmonary\s+(?:lymph\s+)?nodes?)s?", re.IGNORECASE)

# Plurals that name both of a pair ("the hila", "both adrenals"); "hilar nodes" or "ribs" name the group.
DUAL_PLURAL = re.compile(r"^(?:hila|axillae|adrenals|adrenal[\s-]+glands|kidneys|breasts|ilia|femora|humeri|"
                         r"parotids|parotid[\s-]+glands|tonsils|ovaries|testes|pleurae|hemithoraces|clavicles|"
                         r"scapulae|iliac[\s-]+bones|iliac[\s-]+crests|proximal[\s-]+femora|proximal[\s-]+humeri)$",
                         re.IGNORECASE)


def find_locations(text: str) -> list[Hit]:
    """Location phrases: ``value`` is ("term", ids) or ("stem", {side: id})."""
    lex = locations()
    hits = _list_hits(text)
    for m in lex.pattern.finditer(text):
        matched = m.group(0)
        ids = _lookup(lex.terms, matched)
        if ids is not None:
            spot = len(ids) == 1 and not hierarchy.is_leaf(ids[0]) and SPOT_WORDS.fullmatch(matched) is not None
            hits.append(Hit(m.start(), m.end(), matched, ("term", ids), {"spot": spot}))
            continue
        plural: list[bool] = []
        sides = _lookup(lex.stems, matched, plural)
        if sides is not None:
            dual = DUAL_PLURAL.match(matched) is not None
            hits.append(Hit(m.start(), m.end(), matched, ("stem", sides), {"plural": plural[0], "dual": dual}))
    return sorted(hits, key=lambda h: h.start)


# ------------------------------------------------------------------------------------------------- sides
SIDE_WORDS = re.compile(
    r"(?P<word>(?<![A-Za-z])(?:right|left)(?:[\s-]*sided)?(?![A-Za-z]))"
    r"|(?P<abbr>(?<![A-Za-z])(?:rt|lt)\.?(?![A-Za-z]))"
    r"|(?P<letter>(?<![A-Za-z0-9/])(?-i:R|L)\.?(?=\s))"
    r"|(?P<both>(?<![A-Za-z])(?:bilateral(?:ly)?|both|each|b/l|symmetric(?:al)?(?:ly)?)(?![A-Za-z]))"
    r"|(?P<ipsi>(?<![A-Za-z])ipsilateral(?![A-Za-z]))"
    r"|(?P<contra>(?<![A-Za-z])contralateral(?![A-Za-z]))",
    re.IGNORECASE,
)
# After a stem: "level II nodes on the left", "axilla (right)", "hilar nodes bilaterally".
SIDE_AFTER = re.compile(
    r"^(?:[\s-]*(?:lymph|nodes?|nodal|lesions?|masses|mass|nodules?|region|area|group|chain|stations?|"
    r"involvement|thickening|disease|deposits?|metastas[ie]s|uptake|activity|nodularity|implants?))*"
    r"\s*(?:,\s*|\(\s*|\s+(?:on|in|at|of)\s+(?:the\s+)?)?"
    r"(?P<side>right|left|(?-i:R|L)|bilaterally|on both sides|both sides)(?:\s*(?:side|lung|hemithorax))?"
    r"(?=\s*[().,;:]|\s*$|\s+(?:and|with|measuring|showing|demonstrating)\b)",
    re.IGNORECASE,
)


def side_of(token: str) -> str:
    """'left' | 'right' | 'both' | 'ipsi' | 'contra' for a side word."""
    t = token.lower().strip(". ")
    if t.startswith(("right", "rt")) or t == "r":
        return "right"
    if t.startswith(("left", "lt")) or t == "l":
        return "left"
    if t.startswith("ipsi"):
        return "ipsi"
    if t.startswith("contra"):
        return "contra"
    return "both"


def find_sides(text: str) -> list[Hit]:
    """Side words; ``extra['adjacent_only']`` for letters and "both", which never carry to later stems."""
    out = []
    for m in SIDE_WORDS.finditer(text):
        kind = m.lastgroup
        if _IMAGE_POSITION.search(text[max(0, m.start() - 12):m.start()]):
            continue  # "(top left)", "[bottom right]": where a figure panel is, not a side of the body
        word = m.group(0).lower()
        out.append(Hit(m.start(), m.end(), m.group(0), side_of(m.group(0)),
                       {"adjacent_only": kind in ("letter", "abbr") or word in ("both", "each") or word.startswith(
                           ("bilateral", "symmetric"))}))
    return out


_IMAGE_POSITION = re.compile(r"[(\[,]\s*(?:top|bottom|upper|lower|middle|far)\s+$", re.IGNORECASE)


# ------------------------------------------------------------------------------------------- CT findings
_EXTRA_CT: dict[CTFinding, tuple[str, ...]] = {
    CTFinding.solid_nodule: ("pulmonary nodules", "lung nodule", "pleural nodule", "pleural-based nodule",
                             "soft tissue nodule", "soft-tissue nodule", "nodular lesion"),
    CTFinding.ground_glass_opacity: ("ground glass", "part-solid nodule", "part solid", "semi-solid nodule",
                                     "ground-glass lesion"),
    CTFinding.consolidation: ("airspace opacity", "airspace disease", "consolidated"),
    CTFinding.mass: ("neoplasm", "soft tissue lesion", "soft-tissue lesion", "mass-like", "masslike",
                     "space-occupying", "space occupying"),
    CTFinding.enlarged_lymph_node: ("pathologically enlarged", "enlarged lymph nodes", "nodal conglomerate",
                                    "conglomerate", "bulky", "lymphadenopathies", "enlargement",
                                    "enlarged nodes"),
    CTFinding.non_enlarged_lymph_node: ("normal size", "normal-size", "of normal size", "normal in size",
                                        "not pathologically enlarged", "without enlargement", "sub-cm",
                                        "subcentimeter-sized", "subcentimetric", "small-volume", "small volume",
                                        "non enlarged", "nonenlarged", "non-pathologically enlarged",
                                        "not enlarged by size criteria", "small lymph node"),
    CTFinding.osteolytic: ("lytic destruction", "cortical destruction", "osteolytic lesion", "lytic lesions",
                           "lytic component", "bone lysis"),
    CTFinding.osteoblastic: ("sclerotic lesion", "blastic lesion", "osteoblastic lesion", "dense sclerotic",
                             "sclerotic focus", "osteosclerosis"),
    CTFinding.mixed_bone_lesion: ("mixed lytic/sclerotic", "mixed lytic and blastic", "mixed sclerotic and lytic",
                                  "mixed osteolytic and osteoblastic", "mixed osteoblastic and osteolytic",
                                  "mixed lytic/blastic", "mixed density", "mixed lytic-blastic",
                                  "mixed sclerotic-lytic", "lytic and sclerotic", "sclerotic and lytic",
                                  "mixed-density", "mixed lytic and sclerotic", "mixed blastic and lytic"),
    CTFinding.hypodense_lesion: ("low-density lesion", "low density", "hypoattenuating lesion",
                                 "hypodense lesions", "hypodense focus", "hypoenhancing"),
    CTFinding.soft_tissue_thickening: ("thickened", "wall-thickening", "focal thickening"),
}
# "no CT correlate" in its many spellings; matched first so its "no"/"without" is not read as negation.
_NO_CT = re.compile(
    r"(?:\b(?:no|without|lacking|absent)\s+(?:a\s+|an\s+|any\s+)?(?:(?:significant|definite|discrete|clear|"
    r"obvious|corresponding|underlying|associated|visible|identifiable|evident|morphologic(?:al)?|anatomic(?:al)?|"
    r"structural)[\s-]+)*(?:CT|morphologic(?:al)?|anatomic(?:al)?|structural|morphology|density)?[\s-]*"
    r"(?:correlates?|correlation|abnormality|abnormalities|lesions?|changes?|findings?|substrate)"
    r"(?:\s+(?:on|at|in)\s+(?:the\s+)?(?:CT|low[\s-]dose\s+CT|CT\s+images?|CT\s+component))?)"
    r"|\bCT[\s-]*(?:occult|negative)\b|\boccult\s+on\s+CT\b|\bnot\s+(?:seen|visible|identified|evident|apparent)"
    r"\s+on\s+(?:the\s+)?CT\b|\bnormal[\s-]+appearing\b|\bno\s+CT\s+(?:abnormality|correlate|finding)s?\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class CTLexicon:
    pattern: re.Pattern
    table: dict[str, CTFinding]


@cache
def ct_findings() -> CTLexicon:
    table: dict[str, CTFinding] = {}
    phrases = []
    for finding, info in CT_FINDINGS.items():
        for s in (*info.synonyms, info.phrase, *_EXTRA_CT.get(finding, ())):
            table.setdefault(key(s), finding)
            phrases.append(s)
    return CTLexicon(compile_phrases(phrases), table)


# "small left axillary node": "small" a few words before the node it describes (location words masked).
_SMALL_NODE = re.compile(r"\b(?:small|smaller|tiny)\b(?=(?:[\s-]+[\w/.-]+){0,4}?[\s-]+(?:lymph[\s-]+)?(?:nodes?|LNs?)\b"
                         r"|[\s-]+(?:[A-Za-z-]+[\s-]+){0,2}_{3,})", re.IGNORECASE)


def find_ct(text: str) -> list[Hit]:
    """CT descriptions; "no CT correlate" forms first, then the vocabulary on what is left."""
    hits = [Hit(m.start(), m.end(), m.group(0), CTFinding.no_ct_correlate) for m in _NO_CT.finditer(text)]
    # A generic "no lesion"/"no abnormality" is negation, not a CT description: keep only spans that say CT,
    # morphology/anatomy/structure or correlate.
    hits = [h for h in hits if re.search(r"CT|morpholog|anatom|structur|correlat|appearing|density", h.text,
                                         re.IGNORECASE)]
    masked = mask(text, hits)
    lex = ct_findings()
    hits += _finditer(lex.pattern, masked, lex.table)
    small = [Hit(m.start(), m.end(), m.group(0), CTFinding.non_enlarged_lymph_node)
             for m in _SMALL_NODE.finditer(mask(masked, hits))]
    return sorted(hits + small, key=lambda h: h.start)


def compatible(finding: CTFinding, system: System) -> bool:
    return system in CT_FINDINGS[finding].systems


# ---------------------------------------------------------------------------------------------- uptake
_GRADE_EXTRA: dict[UptakeGrade, tuple[str, ...]] = {
    UptakeGrade.mild: ("mildly", "faintly", "minimal", "minimally", "slight", "slightly", "low", "low-level",
                       "weak", "weakly", "subtle", "mildly intense", "low-moderate", "mild to moderate"),
    UptakeGrade.moderate: ("moderately", "moderately intense", "moderate-intensity", "moderate to intense",
                           "hypermetabolism", "focal increased", "raised"),
    UptakeGrade.intense: ("intensely", "markedly", "highly", "strongly", "strong", "very intense", "high",
                          "high-grade", "avid and intense", "vivid", "striking", "extremely"),
}
_GENERIC_GRADES = {"increased", "avid", "hypermetabolic", "elevated", "hypermetabolism", "raised",
                   "focal increased"}
UPTAKE_NOUN = re.compile(
    r"\b(?:uptake|avid\w*|activity|accumulation|expression|hypermetaboli\w*|metabolism|tracer|radiotracer|"
    r"FDG|PSMA|intensity|SUV\w*|glycoly\w*|metabolic)\b", re.IGNORECASE)


@cache
def _grades() -> tuple[re.Pattern, dict[str, UptakeGrade]]:
    table: dict[str, UptakeGrade] = {}
    for grade, words in UPTAKE_SYNONYMS.items():
        for w in words:
            table.setdefault(key(w), grade)
    for grade, words in _GRADE_EXTRA.items():
        for w in words:
            table.setdefault(key(w), grade)
    return compile_phrases([w for ws in (*UPTAKE_SYNONYMS.values(), *_GRADE_EXTRA.values()) for w in ws],
                           plural=False), table


def find_grades(text: str) -> list[Hit]:
    """Uptake grade words that describe uptake: an uptake noun follows within three words, the word is an
    uptake adjective itself ("avid", "hypermetabolic"), or it follows "uptake is/of"."""
    pattern, table = _grades()
    out = []
    for h in _finditer(pattern, text, table):
        generic = key(h.text) in {key(g) for g in _GENERIC_GRADES}
        self_describing = bool(re.search(r"avid|hypermetaboli", h.text, re.IGNORECASE))
        after = text[h.end:h.end + 40]
        before = text[max(0, h.start - 30):h.start]
        near_after = re.match(r"^(?:[\s-]*[A-Za-z0-9()-]+){0,3}?[\s-]*" + UPTAKE_NOUN.pattern, after,
                              re.IGNORECASE)
        near_before = re.search(r"(?:uptake|activity|accumulation|expression)\s+(?:is|was|of|which is|that is|"
                                r"appears|remains)?\s*$", before, re.IGNORECASE)
        if self_describing or near_after or near_before:
            out.append(Hit(h.start, h.end, h.text, h.value, {"generic": generic}))
    return out


# ------------------------------------------------------------------------------------------- SUV, size
_NUM = r"\d{1,3}(?:[.,]\d{1,2})?"
_SUV_LABEL = (r"(?:SUVm[aá]x(?![A-Za-z])|S\s?U\s?V\s?m\s?a\s?x(?![A-Za-z])|"  # "S U V m a x" (text extracted from a PDF)
              r"max(?:imum|\.)?[\s-]+standardi[sz]ed[\s-]+uptake[\s-]+values?(?:\s*\(\s*SUV\s*(?:max)?\s*\))?|"
              r"standardi[sz]ed[\s-]+uptake[\s-]+values?[\s-]*(?:\(\s*SUV\s*\)\s*)?max(?:imum)?|"
              r"standardi[sz]ed[\s-]+uptake[\s-]+values?(?:\s*\(\s*SUV\s*\))?(?![\s-]*(?:mean|peak|ratio))|"
              r"SUV[\s_-]*[(\[]\s*max\s*[)\]]|SUV[\s_-]*max(?:imum)?|max(?:imum|\.)?[\s-]*SUV|"
              r"SUV(?![\s_-]*(?:mean|peak|avg|average|lbm|ratio|r\b|ref))(?![A-Za-z]))")
_SUV = re.compile(
    _B + _SUV_LABEL
    + r"(?P<conn>(?:\s*(?:[:=~\u2248]|,|\(|\bof\b|\bwas\b|\bis\b|\bmeasur\w*|\bup\s+to\b|\bapprox\w*\.?|"
      r"\breach\w*|\bvalue\s+of\b|\bequal\w*|\bcalculated\s+at\b|\bapproaching\b|\bnow\b|\bincreas\w*|"
      r"\bdecreas\w*|\bchanged\b|\bfrom\b|\bto\b|\bby\b|\bat\b|\bhighest\b|\bin\s+the\s+range\s+of\b)\s*)*)"
    + r"\s*(?P<v>" + _NUM + r")(?![\d.]*\s*(?:mm|cm|%|[x\u00d7*]\s*\d|x\b|\u00d7))"
    + r"(?P<more>(?:(?:\s*\(?\s*(?:(?:on|in|at|for)\s+the\s+)?(?:right|left|rt|lt|(?-i:R|L))(?:\s+side)?\)?)?"
      r"\s*(?:,|and|/|&|to|-|\u2013|or|vs\.?)\s*" + _NUM + r"(?![\d.]*\s*(?:mm|cm|%|[x\u00d7*]\s*\d|x\b|\u00d7)))*)",
    re.IGNORECASE,
)
# "was" marks a prior value in a comparison aside ("SUVmax 8.2 (was 5.1)", "..., was SUVmax 5.1"), not as the
# verb of a sentence ("The activity of this lesion was SUVmax 2.2").
_PRIOR = re.compile(r"(?:previously|prior|before|baseline|formerly|earlier|compared\s+(?:to|with)|from|"
                    r"(?:[(,;]\s*|\b(?:it|then)\s+)was|"
                    r"last\s+(?:study|scan|exam)|on\s+the\s+previous)[\s:(]*(?:SUV\w*|measuring|of|at)?[\s:=]*$",
                    re.IGNORECASE)


def _num(s: str) -> float:
    return float(s.replace(",", "."))


_SPACED_DECIMAL = re.compile(r"(?<=[=:])(\s{0,3}\d{1,2}),\s(\d{1,2})(?=\s*\))")


def find_suv(text: str) -> list[Hit]:
    """SUVmax values in every common spelling; ``value`` is the number. Prior values ("previously SUVmax
    5.1", "from 5.1 to 8.2" → 8.2) are dropped; lists ("SUVmax 8.2 and 6.1") give one hit per number.
    A decimal comma spaced apart by a PDF dump ("SUV max = 2, 1)") is one number."""
    out = []
    text = _SPACED_DECIMAL.sub(lambda d: f"{d.group(1)}.{d.group(2)} ", text)  # same length: offsets hold
    for m in _SUV.finditer(text):
        before = text[max(0, m.start() - 30):m.start()]
        conn = m.group("conn") or ""
        nums = [(m.start("v"), m.group("v"))]
        for n in re.finditer(_NUM, m.group("more") or ""):
            nums.append((m.start("more") + n.start(), n.group(0)))
        seps = re.findall(r"(to|-|\u2013)\s*$", text[m.end("v"):m.end("v") + 6])
        if re.search(r"\bfrom\b", conn, re.IGNORECASE) or (_PRIOR.search(before) and len(nums) > 1
                                                                 and seps):
            nums = nums[-1:]  # "from 5.1 to 8.2": the current value is the last
        elif _PRIOR.search(before):
            continue
        for pos, s in nums:
            # Where the words about this value begin: the label for the first value, else the value itself.
            lead = m.start() if pos == m.start("v") else pos
            out.append(Hit(pos, pos + len(s), s, _num(s), {"label_start": lead, "match": (m.start(), m.end())}))
    return out


_UNIT = r"(?P<u>mm|cm|millimet(?:re|er)s?|centimet(?:re|er)s?)"
_SIZE = re.compile(
    r"(?<![\d.,A-Za-z])(?P<a>" + _NUM + r")\s*(?P<ua>mm|cm)?"
    r"(?:\s*(?:x|\u00d7|\*|by)\s*(?P<b>" + _NUM + r")\s*(?P<ub>mm|cm)?)?"
    r"(?:\s*(?:x|\u00d7|\*|by)\s*(?P<c>" + _NUM + r"))?"
    r"(?:\s*(?:-|\u2013|to)\s*(?P<r>" + _NUM + r"))?"
    r"[\s-]*" + _UNIT + r"(?![A-Za-z])",
    re.IGNORECASE,
)
_SHORT_BEFORE = re.compile(r"(?:short[\s-]*axis(?:\s+diameter)?|SAD|short[\s-]*axis\s+dimension)"
                           r"(?:\s+(?:of|measuring|up\s+to))?[\s:=(]*$", re.IGNORECASE)
_SHORT_AFTER = re.compile(r"^\s*\(?\s*(?:in\s+)?(?:short[\s-]*axis|SAD)\b", re.IGNORECASE)
_SIZE_PRIOR = re.compile(r"(?:previously|prior|before|baseline|formerly|compared\s+(?:to|with)|from|was)"
                         r"(?:\s+(?:measuring|measured|of|at|size))?[\s:(]*$", re.IGNORECASE)


def find_sizes(text: str) -> list[Hit]:
    """Measurements: ``value`` is the long axis in mm (largest number), ``extra['short_mm']`` the short axis
    (the smallest of several dimensions, or a lone number labelled short axis), ``extra['dims']``."""
    out = []
    for m in _SIZE.finditer(text):
        if _SIZE_PRIOR.search(text[max(0, m.start() - 25):m.start()]):
            continue
        unit = m.group("u").lower()
        scale = 10.0 if unit.startswith("c") else 1.0
        dims = []
        for g, ug in (("a", "ua"), ("b", "ub"), ("c", None), ("r", None)):
            if m.group(g):
                own = m.group(ug).lower() if ug and m.group(ug) else None
                dims.append(_num(m.group(g)) * (10.0 if own == "cm" else 1.0 if own == "mm" else scale))
        before = text[max(0, m.start() - 30):m.start()]
        labelled_short = bool(_SHORT_BEFORE.search(before) or _SHORT_AFTER.match(text[m.end():m.end() + 20]))
        ranged = m.group("r") is not None
        short = min(dims) if (len(dims) > 1 and not ranged) or labelled_short else None
        out.append(Hit(m.start(), m.end(), m.group(0), round(max(dims), 3),
                       {"short_mm": short, "dims": dims, "short_only": labelled_short and len(dims) == 1}))
    return out


# --------------------------------------------------------------------------------------------- negation
# Forward cues negate what follows in their clause; backward cues negate the finding they are said of.
NEG_FORWARD = re.compile(
    r"\b(?:no|not|without|negative\s+for|free\s+of|absence\s+of|absent|neither|nor|rule\s+out|ruled\s+out|"
    r"resolution\s+of|no\s+longer|no\s+evidence\s+of|no\s+residual|interval\s+resolution\s+of|"
    r"physiologic(?:al)?(?:ally)?|physiol\.?|normal|unremarkable|expected|degenerative|arthritic|arthropathy|"
    r"osteoarthritic|post[\s-]*(?:surgical|operative|radiation|treatment)\s+changes?|"
    r"non[\s-]*(?:FDG[\s-]*|PSMA[\s-]*)?avid|photopenic|resolved|disappearance\s+of|sparing\s+of|"
    r"spared|devoid\s+of|void\s+of|suppressed)\b",
    re.IGNORECASE,
)
NEG_BACKWARD = re.compile(
    r"\b(?:(?:has|have)\s+(?:completely\s+)?resolved|resolved|no\s+longer\s+(?:seen|visible|identified|evident|"
    r"present|avid|demonstrated|apparent|detectable)|not\s+(?:well\s+|clearly\s+|definitely\s+)?(?:seen|visible|"
    r"identified|evident|demonstrated|present|detected|apparent|visuali[sz]ed|appreciated|delineated)(?!\s+on\s+(?:the\s+)?(?:prior|previous|CT|earlier))|"
    r"(?:is|are|was|were|appears?|likely|probably|most\s+likely|consistent\s+with|in\s+keeping\s+with|"
    r"compatible\s+with)\s+(?:\w+\s+)?(?:physiologic(?:al)?|normal|unremarkable|degenerative)|"
    r"within\s+normal\s+limits|physiologic(?:al)?|physiol|degenerative|normali[sz]ed|disappeared|is\s+absent|"
    r"(?:is|are|:)?\s*(?:neg|negative|NAD|nil|clear|free)(?=\s*(?:[.;,]|$)))\b",
    re.IGNORECASE,
)
# Weak cues ("normal", "unremarkable") yield to an SUV value or a CT description in the same finding.
WEAK_NEGATION = re.compile(r"^(?:normal|unremarkable|expected|not)$", re.IGNORECASE)
SCOPE_END = re.compile(r";|\bbut\b|\bhowever\b|\bwhereas\b|\bwhile\b|\balthough\b|\bexcept\b|\bapart\s+from\b|"
                       r"\baside\s+from\b|\bother\s+than\b|\bwith\s+the\s+exception\s+of\b|\bapart\b|\byet\b",
                       re.IGNORECASE)


def find_negations(text: str) -> tuple[list[Hit], list[Hit]]:
    """(forward, backward) negation cues; call on text with CT and location phrases masked."""
    fwd = [Hit(m.start(), m.end(), m.group(0), "forward") for m in NEG_FORWARD.finditer(text)]
    bwd = [Hit(m.start(), m.end(), m.group(0), "backward") for m in NEG_BACKWARD.finditer(text)]
    return fwd, bwd


def mask(text: str, hits) -> str:
    """The text with the hits' characters blanked (same length): later matchers skip them."""
    chars = list(text)
    for h in hits:
        chars[h.start:h.end] = "_" * (h.end - h.start)
    return "".join(chars)


# ---------------------------------------------------------------------------------------------- tracer
_TRACERS = {
    Tracer.psma: re.compile(
        r"PSMA|DCFPyL|piflufolastat|pylarify|gozetotide|illuccix|locametz|flotufolastat|posluma|"
        r"prostate[\s-]+specific\s+membrane\s+antigen", re.IGNORECASE),
    Tracer.fdg: re.compile(r"\bFDG\b|fluoro[\s-]*deoxy[\s-]*glucose|fludeoxyglucose|\bF-?18[\s-]*FDG|18F-?FDG",
                           re.IGNORECASE),
}


def tracer_mentions(text: str) -> dict[Tracer, list[int]]:
    """Offsets where each tracer is named."""
    return {t: [m.start() for m in p.finditer(text)] for t, p in _TRACERS.items()}


# ----------------------------------------------------------------------------------- misc. cues
LARGEST = re.compile(r"\b(?:the\s+)?(?:largest|biggest|dominant|index|most\s+(?:avid|intense|active)|hottest|"
                     r"most\s+prominent|largest\s+one|the\s+most\s+FDG[\s-]avid)\b", re.IGNORECASE)
MULTIPLE = re.compile(r"\b(?:multiple|several|numerous|innumerable|multifocal|various|a\s+few|few|two|three|"
                      r"four|many|diffuse|scattered|some)\b", re.IGNORECASE)
# A location named as a landmark for another finding, not the site of one.
RELATIONAL = re.compile(
    r"(?:extend\w*\s+(?:in)?to(?:\s+the)?|abutt\w*(?:\s+the)?|adjacent\s+to(?:\s+the)?|near(?:\s+the)?|"
    r"close\s+to(?:\s+the)?|next\s+to(?:\s+the)?|at\s+the\s+level\s+of(?:\s+the)?|(?:anterior|posterior|superior|"
    r"inferior|medial|lateral|caudal|cranial|proximal|distal|dorsal|ventral)(?:ly)?\s+(?:to|of)(?:\s+the)?|"
    r"compress\w*(?:\s+the)?|"
    r"displac\w*(?:\s+the)?|encas\w*(?:\s+the)?|invad\w*(?:\s+the)?|infiltrat\w*(?:\s+the)?|"
    r"contact\s+with(?:\s+the)?|towards(?:\s+the)?|into(?:\s+the)?|reach\w*(?:\s+the)?|"
    r"(?:below|above|beneath|behind)(?:\s+the)?|cross\w*(?:\s+the)?|involv\w+\s+the\s+adjacent|"
    # the emphasis inside a finding already placed ("marrow activity, especially involving the spine")
    r"(?:especially|particularly|notably|predominantly|mainly|chiefly|most\s+(?:marked|prominent|pronounced|"
    r"intense|evident))(?:\s+(?:in|at|involving|within|of|along))?(?:\s+the)?)\s*$",
    re.IGNORECASE,
)
# Words that mark a phrase as describing a lesion at all (besides CT words, grades and SUV values).
LESION_NOUN = re.compile(
    r"\b(?:uptake|avid\w*|activity|accumulation|hypermetaboli\w*|lesions?|foci|focus|deposits?|metasta\w*|"
    r"mets|tumou?rs?|disease|involvement|malignan\w*|recurren\w*|nodes?|nodules?|masses|mass|spots?|"
    r"implants?|infiltrat\w*|expression|PSMA[\s-]*(?:positive|expressing)|FDG[\s-]*positive|"
    r"opacit\w*|abnormalit\w*|primary|neoplas\w*|carcinoma|cancer|lymphoma|adenopathy|"
    r"lymphadenopathy|thickening|destruction|sclero\w*|lytic|blastic|suspicious|positive|avidity|"
    r"findings?|revealed|demonstrated|visuali[sz]ed|detected|observed|identified|involved|invasion|abnormal|"
    r"seen|noted|evident|visible|appreciated|depicted|"
    r"hypermetaboli\w*|conglomerat\w*|enlarged|necro\w*|nodular\w*)\b",
    re.IGNORECASE,
)
# Lesion noun phrases ("the lesion", "another nodule", "the submandibular nodal focus"): one list of head nouns and
# one of the determiners that make a phrase definite (a lesion told before), for every rule that asks which
# lesion a phrase refers to (``restatements``, ``mentions``).
LESION_HEAD = (r"(?:lesions?|nodules?|mass(?:es)?|focus|foci|nodes?|nodal|deposits?|opacit\w+|metastas[ie]s|"
               r"tumou?rs?|neoplasms?|carcinomas?|cancers?|primary|abnormality|SPN|(?:lymph)?adenopathy)")
DEFINITE_DETERMINER = r"(?:the|this|that|these|those|its|said|such|both)"


def definite_lesion(modifiers: int = 2) -> str:
    """A definite lesion noun phrase with up to ``modifiers`` words before its head ("the bronchial tumour")."""
    return rf"\b{DEFINITE_DETERMINER}\s+(?:[\w-]+\s+){{0,{modifiers}}}?{LESION_HEAD}\b"


# Words that open a subordinate clause ("Although no uptake was seen on the first scan, ...", "even though the
# lung abscess is no longer avid, ..."): what is said in it ends at the comma that closes it.
SUBORDINATOR = r"\b(?:although|though|whereas|while|if|when|unless|since|because)\b"


NOUN_HEAD = re.compile(r"\b(?:lesions?|foci|focus|deposits?|metasta\w*|uptake|nodes?|nodules?|mass|masses|"
                       r"activity|accumulation|tumou?r)\b", re.IGNORECASE)
