"""How a synthetic PET/CT report words its findings: the surface forms the house styles draw on.

An extractor measured on generated reports must be measured on wording, not on one template, so the same
facts are written the many ways radiologists write them. This module owns those surface forms:

* locations from the taxonomy's names, synonyms and stems, the side written as right/left, R/L, rt/lt,
  Rt/Lt or "right-sided"; every phrase is classed as a *modifier* ("right axillary" node), a *place*
  ("in the right axilla") or a complete *node phrase* ("right level II node");
* CT findings from ``CT_FINDINGS[...].synonyms`` and uptake grades from ``UPTAKE_SYNONYMS``: every synonym
  has a wording here, and the tests keep the two vocabularies in step;
* SUVmax spellings (``SUVmax 8.2``, ``SUV max: 8.2``, ``SUVmax=8.2``, ``SUVmax of 8.2``, ``maximum SUV 8.2``,
  ``(SUVmax 8.2)`` ...) and sizes (``21 mm``, ``2.1 cm``, ``2.1 x 1.5 cm``, ``21x15mm``, long axis first);
* the sentence of one finding statement in three registers: ``full`` sentences, ``terse`` notes and
  figure ``caption``s, including "multiple … the largest …" groups and "bilateral" pairs, and the shorter
  restatement an impression makes;
* the report's other sentences: indications, negatives, physiological uptake, incidental findings.

Only facts handed in are written. The caller (``tasks.synth.reports``) decides which values a statement
states (``Said``), so the ground truth is fixed before a word is chosen; this module guarantees that each
stated value appears in the sentence exactly as given and that no other location or CT finding does.
All randomness comes from the caller's ``numpy.random.Generator`` (deterministic per seed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from data_contracts.findings import CTFinding, Tracer, UptakeGrade
from data_contracts.taxonomy import Laterality, Location, System

Rng = np.random.Generator
Register = str  # "full" | "terse" | "caption"


def pick(rng: Rng, options: Sequence[str]) -> str:
    if not options:
        raise ValueError("pick() from an empty list of wordings")
    return options[int(rng.integers(len(options)))]


def chance(rng: Rng, p: float) -> bool:
    return bool(rng.random() < p)


def indefinite(phrase: str) -> str:
    """"a" or "an" as spoken before ``phrase``: an 8 mm node, an 11 mm node, an RUL nodule, a T7 lesion."""
    word = phrase.lstrip("(").split(" ", 1)[0]
    if not word:
        return "a"
    if word[0].isdigit():
        whole = re.match(r"\d+", word).group()
        return "an" if whole.startswith("8") or whole in ("11", "18") else "a"
    acronym = len(word) == 1 or word[1].isupper() or word[1].isdigit()
    if acronym and word[0].isupper():
        return "an" if word[0] in "AEFHILMNORSX" else "a"
    w = word.lower()
    if w.startswith(("uni", "use", "one", "eu")):
        return "a"
    return "an" if w[0] in "aeiou" or w.startswith(("hour", "honest")) else "a"


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def decap(text: str) -> str:
    """Lower-case the first letter of an ordinary word ("There" → "there"), never of "RUL" or "T7"."""
    word = text.split(" ", 1)[0]
    if word.isalpha() and (word in ("A", "An") or (len(word) > 1 and word[1:].islower())):
        return text[:1].lower() + text[1:]
    return text


def _squeeze(text: str) -> str:
    return re.sub(r" {2,}", " ", text).strip()


def _repeats_word(text: str) -> bool:
    words = re.findall(r"[\w-]+", text.lower())
    return any(a == b for a, b in zip(words, words[1:]))


# ----------------------------------------------------------------------------------------- locations

SIDE_WORDS: dict[Laterality, tuple[str, ...]] = {
    Laterality.right: ("right", "R", "rt", "Rt", "right-sided"),
    Laterality.left: ("left", "L", "lt", "Lt", "left-sided"),
}

_ADJECTIVE_ENDINGS = ("al", "ar", "ary", "ic", "iac", "eal")
# Nouns that name a place but read badly before a head noun ("axilla node", "T7 vertebra lesion").
_NOT_ADJUNCT = {"axilla", "hilum", "mesentery", "hemithorax", "apex", "base", "surface", "chain", "bed", "wall",
                "vertebra", "arc", "ala", "body", "ramus", "tuberosity", "space", "lingula"}
_HEAD_PLURALS = {
    "nodule": "nodules", "opacity": "opacities", "focus": "foci", "area": "areas", "lesion": "lesions",
    "node": "nodes", "LN": "LNs", "mass": "masses", "tumour": "tumours", "tumor": "tumors", "GGO": "GGOs",
    "GGN": "GGNs", "change": "changes", "hypodensity": "hypodensities", "metastasis": "metastases",
}
_PLACE_PLURALS = {
    "lobe": "lobes", "axilla": "axillae", "hilum": "hila", "kidney": "kidneys", "breast": "breasts",
    "gland": "glands", "rib": "ribs", "femur": "femora", "humerus": "humeri", "clavicle": "clavicles",
    "scapula": "scapulae", "ilium": "ilia", "groin": "groins", "bone": "bones", "wing": "wings",
    "neck": "necks", "hemithorax": "hemithoraces", "surface": "surfaces", "crest": "crests",
}


def _core(term: str) -> str:
    return re.sub(r"\s*\(.*\)$", "", term)


def is_node_phrase(term: str) -> bool:
    return re.search(r"\bnodes?\b", term) is not None


def is_adjective(term: str) -> bool:
    return not is_node_phrase(term) and _core(term).split()[-1].lower().endswith(_ADJECTIVE_ENDINGS)


def _modifier_ok(term: str) -> bool:
    """Can stand before a head noun: "right axillary", "RUL", "T7", "segment VII"."""
    if is_node_phrase(term) or " of " in term or re.search(r"\brib \d+$", term):
        return False
    return is_adjective(term) or not (set(term.lower().split()) & _NOT_ADJUNCT)


def _place_ok(term: str) -> bool:
    return not is_adjective(term) and not is_node_phrase(term)


def as_place(term: str) -> str:
    """The term after a preposition, with "the" where English wants it: "the right upper lobe", "T7"."""
    last = _core(term).split()[-1]
    common = last.isalpha() and last.islower()
    if term.startswith("segment ") or not (common or " of " in term):
        return term
    return f"the {term}"


def _pluralise(phrase: str, table: dict[str, str]) -> str | None:
    words = phrase.split(" ")
    if words[-1] not in table:
        return None
    return " ".join([*words[:-1], table[words[-1]]])


def side_word(side: Laterality, rng: Rng, terse: bool) -> str:
    words = SIDE_WORDS[side]
    if terse:
        return pick(rng, words[:4])
    return words[0] if chance(rng, 0.8) else pick(rng, (words[1], words[2], words[4]))


def location_terms(loc: Location, rng: Rng, terse: bool) -> list[str]:
    """Phrases naming ``loc`` with its side: the taxonomy's own terms plus its stems after one side word."""
    if loc.laterality is Laterality.midline:
        return list(loc.terms)
    own = [t for t in loc.terms if not t.endswith((" right", " left"))]  # "level II right": labels only
    sw = side_word(loc.laterality, rng, terse)
    return list(dict.fromkeys([*own, *(f"{sw} {stem}" for stem in loc.stems)]))


def label_terms(loc: Location) -> list[str]:
    """Every term, postposed sides included ("level II right"): what a terse "label: finding" line starts with."""
    return list(loc.terms)


def choose_term(terms: Sequence[str], rng: Rng, terse: bool) -> str:
    """Terse notes favour the short forms (RUL, T7, Rt level II); full prose favours spelled-out words."""
    terms = list(terms)
    if terse and chance(rng, 0.75):
        terms = sorted(terms, key=len)[: max(1, (len(terms) + 1) // 2)]
    elif not terse and chance(rng, 0.6):
        spelled = [t for t in terms if not re.search(r"\b[A-Z]{2,}\b", t)]
        terms = spelled or terms
    return pick(rng, terms)


# -------------------------------------------------------------------------------------- CT findings


@dataclass(frozen=True)
class CTWording:
    """How one CT-finding synonym enters a noun phrase: "<pre> <location> <head>", or "<pre> <head> in <place>"."""

    synonym: str  # the CT_FINDINGS synonym it writes
    pre: str = ""  # adjectives before the location modifier ("enlarged")
    head: str | None = None  # noun after it; None: one of the finding's generic heads
    mass_noun: bool = False  # uncountable ("lymphadenopathy", "osteolysis")
    unit: str | None = None  # plural of a mass noun: "areas of mucosal thickening"
    post: str = ""  # after the noun phrase: " (not enlarged)"


def _w(synonym: str, pre: str = "", head: str | None = None, **kw) -> CTWording:
    return CTWording(synonym, pre, head, **kw)


_F = CTFinding
CT_WORDINGS: dict[CTFinding, tuple[CTWording, ...]] = {
    _F.solid_nodule: (
        _w("solid nodule", "solid", "nodule"), _w("pulmonary nodule", "", "pulmonary nodule"),
        _w("nodule", "", "nodule"), _w("solid pulmonary nodule", "solid", "pulmonary nodule"),
        _w("solid lesion", "solid", "lesion"), _w("spiculated nodule", "spiculated", "nodule"),
        _w("nodular opacity", "nodular", "opacity")),
    _F.ground_glass_opacity: (
        _w("ground-glass opacity", "ground-glass", "opacity"), _w("ground glass opacity", "ground glass", "opacity"),
        _w("GGO", "", "GGO"), _w("ground-glass nodule", "ground-glass", "nodule"),
        _w("ground glass nodule", "ground glass", "nodule"), _w("GGN", "", "GGN"), _w("ground-glass", "ground-glass"),
        _w("subsolid nodule", "subsolid", "nodule")),
    _F.consolidation: (
        _w("consolidation", "", "consolidation", mass_noun=True, unit="areas"),
        _w("consolidative opacity", "consolidative", "opacity"),
        _w("airspace consolidation", "airspace", "consolidation", mass_noun=True, unit="areas"),
        _w("consolidative", "consolidative")),
    _F.mass: (
        _w("mass", "", "mass"), _w("soft-tissue mass", "soft-tissue", "mass"),
        _w("soft tissue mass", "soft tissue", "mass"),
        _w("tumour", "", "tumour"), _w("tumor", "", "tumor"), _w("mass lesion", "", "mass lesion"),
        _w("space-occupying lesion", "space-occupying", "lesion")),
    _F.enlarged_lymph_node: (
        _w("enlarged lymph node", "enlarged", "lymph node"), _w("enlarged node", "enlarged", "node"),
        _w("lymphadenopathy", "", "lymphadenopathy", mass_noun=True),
        _w("adenopathy", "", "adenopathy", mass_noun=True),
        _w("enlarged", "enlarged"), _w("bulky node", "bulky", "node"), _w("nodal mass", "", "nodal mass"),
        _w("lymph node enlargement", "", "lymph node enlargement", mass_noun=True)),
    _F.non_enlarged_lymph_node: (
        _w("non-enlarged", "non-enlarged"), _w("not enlarged", "", None, post=" (not enlarged)"),
        _w("subcentimetre", "subcentimetre"), _w("subcentimeter", "subcentimeter"), _w("normal-sized", "normal-sized"),
        _w("normal sized", "normal sized"), _w("small node", "small", "node"), _w("sub-centimetre", "sub-centimetre")),
    _F.osteolytic: (
        _w("osteolytic", "osteolytic"), _w("lytic", "lytic"),
        _w("osteolysis", "", "osteolysis", mass_noun=True, unit="foci"),
        _w("osteolytic destruction", "osteolytic", "destruction", mass_noun=True, unit="areas"),
        _w("lytic lesion", "lytic", "lesion"),
        _w("bone destruction", "", "bone destruction", mass_noun=True, unit="areas"), _w("destructive", "destructive")),
    _F.osteoblastic: (
        _w("osteoblastic", "osteoblastic"), _w("sclerotic", "sclerotic"), _w("blastic", "blastic"),
        _w("osteosclerotic", "osteosclerotic"), _w("sclerosis", "", "sclerosis", mass_noun=True, unit="foci"),
        _w("osteoblastic change", "osteoblastic", "change")),
    _F.mixed_bone_lesion: (
        _w("mixed lytic-sclerotic", "mixed lytic-sclerotic"),
        _w("mixed lytic and sclerotic", "mixed lytic and sclerotic"),
        _w("mixed osteolytic-osteoblastic", "mixed osteolytic-osteoblastic"), _w("mixed", "mixed"),
        _w("lytic-sclerotic", "lytic-sclerotic")),
    _F.hypodense_lesion: (
        _w("hypodense lesion", "hypodense", "lesion"), _w("hypodense", "hypodense"),
        _w("hypoattenuating", "hypoattenuating"),
        _w("low-attenuation lesion", "low-attenuation", "lesion"), _w("hypodensity", "", "hypodensity"),
        _w("low attenuation", "low attenuation")),
    _F.soft_tissue_thickening: tuple(
        _w(s, "", s, mass_noun=True, unit="areas")
        for s in ("soft-tissue thickening", "soft tissue thickening", "wall thickening", "thickening",
                  "mucosal thickening")),
}

# no_ct_correlate is not a lesion noun but a clause after a focus of uptake.
NO_CT_CLAUSES: dict[str, tuple[str, ...]] = {
    "no CT correlate": (" with no CT correlate", "; no CT correlate", " (no CT correlate)"),
    "no morphological correlate": (" with no morphological correlate", ", no morphological correlate"),
    "no correlate on CT": (" with no correlate on CT",),
    "without CT correlate": (" without CT correlate",),
    "no corresponding CT abnormality": (" with no corresponding CT abnormality",),
    "CT occult": (", CT occult", " (CT occult)"),
    "no structural abnormality": (" with no structural abnormality on CT",),
}

_GENERIC_HEADS: dict[CTFinding, tuple[str, ...]] = {
    _F.ground_glass_opacity: ("opacity", "focus", "area"),
    _F.consolidation: ("opacity", "area"),
    _F.enlarged_lymph_node: ("lymph node", "node", "lymph node"),
    _F.non_enlarged_lymph_node: ("lymph node", "node"),
    _F.osteolytic: ("lesion", "focus", "lesion"),
    _F.osteoblastic: ("lesion", "focus", "lesion"),
    _F.mixed_bone_lesion: ("lesion", "lesion", "focus"),
    _F.hypodense_lesion: ("lesion", "focus", "area"),
}
_NODE_HEADS = ("lymph node", "node", "LN")
_HOLLOW = ("esophagus", "stomach", "colon", "bladder", "nasopharynx")  # where wall/mucosal thickening is said
_WALL_WORDS = ("wall thickening", "mucosal thickening")
# Wordings that claim a size: only written when the stated long axis is below the limit (mm).
_SIZE_CLAIMS = {"subcentimetre": 10, "subcentimeter": 10, "sub-centimetre": 10, "small node": 15}


def _plural_head(head: str) -> str:
    return _pluralise(head, _HEAD_PLURALS) or head


def _plural_node_phrase(term: str) -> str:
    return re.sub(r"\bnode\b(?!.*\bnode\b)", "nodes", term)


def _wordings(ct: CTFinding, count: int, size_mm: int | None, loc: Location) -> list[CTWording]:
    out = [w for w in CT_WORDINGS[ct] if count == 1 or not w.mass_noun or w.unit]
    if loc.id not in _HOLLOW:
        out = [w for w in out if w.synonym not in _WALL_WORDS]
    def fits(w: CTWording) -> bool:
        return w.synonym not in _SIZE_CLAIMS or (size_mm is not None and size_mm < _SIZE_CLAIMS[w.synonym])

    return [w for w in out if fits(w)]


def _preposition(place: str, system: System, mass: bool, rng: Rng) -> str:
    if re.match(r"(station|level|[A-Z]+\d|\d)", place) or re.search(r"\blevel\b", place):
        return pick(rng, ("at", "in"))
    if system is System.lymph_node or system is System.lung:
        return "in"
    return pick(rng, ("of", "in") if mass else ("in", "in", "of", "involving"))


class NounPhrase(NamedTuple):
    text: str
    mass: bool  # uncountable singular ("osteolysis of the sacrum"): takes no "a"


def noun_phrase(loc: Location, ct: CTFinding, count: int, rng: Rng, terse: bool,
                size_mm: int | None = None) -> NounPhrase:
    """The lesion named with its location, no determiner: "enlarged right level II lymph node",
    "solid nodule in the right upper lobe", plural when ``count`` > 1 ("multiple" is the caller's)."""
    if ct is CTFinding.no_ct_correlate:
        raise ValueError("no_ct_correlate is worded by focus_phrase(), not noun_phrase()")
    plural = count > 1
    for _ in range(12):
        w = pick(rng, _wordings(ct, count, size_mm, loc))
        terms = location_terms(loc, rng, terse)
        mods = [t for t in terms if _modifier_ok(t)]
        places = [as_place(t) for t in terms if _place_ok(t)]
        nodes = [t for t in terms if is_node_phrase(t)] if loc.system is System.lymph_node else []
        heads = _NODE_HEADS if terse and loc.system is System.lymph_node else _GENERIC_HEADS.get(ct, ("lesion",))
        shapes: list[str] = []
        if w.mass_noun:
            core = _squeeze(f"{w.pre} {w.head}")
            if plural:
                core = f"{w.unit} of {core}"
            elif mods:
                shapes.append(f"{choose_term(mods, rng, terse)} {core}")
            if places:
                place = choose_term(places, rng, terse)
                shapes.append(f"{core} {_preposition(place, loc.system, True, rng)} {place}")
        else:
            head = w.head or pick(rng, heads)
            if terse and head in ("node", "lymph node") and chance(rng, 0.6):
                head = "LN"
            h = _plural_head(head) if plural else head
            if mods:
                mod = choose_term(mods, rng, terse)
                mod_first = loc.system is System.lung or (loc.system is not System.lymph_node and chance(rng, 0.4))
                shapes.append(f"{mod} {w.pre} {h}" if mod_first else f"{w.pre} {mod} {h}")
            if places:
                place = choose_term(places, rng, terse)
                shapes.append(f"{w.pre} {h} {_preposition(place, loc.system, False, rng)} {place}")
            if nodes and (w.head is None or w.head in _NODE_HEADS):
                node = choose_term(nodes, rng, terse)
                shapes += [f"{w.pre} {_plural_node_phrase(node) if plural else node}"] * 2
        if not shapes:
            continue
        phrase = _squeeze(pick(rng, shapes)) + w.post
        if not _repeats_word(phrase):
            return NounPhrase(phrase, w.mass_noun and not plural)
    raise ValueError(f"no wording for {ct.value} at {loc.id}")


def bilateral_phrase(loc: Location, ct: CTFinding, count: int, rng: Rng, terse: bool) -> NounPhrase:
    """Both sides at once, from the side-free stems: "enlarged bilateral level II nodes",
    "solid nodules in both upper lobes", "bilateral axillary lymphadenopathy" (uncountable)."""
    stems = list(loc.stems)
    mods = [s for s in stems if _modifier_ok(s)]
    nodes = [s for s in stems if is_node_phrase(s)] if loc.system is System.lymph_node else []
    places = [p for p in (_pluralise(s, _PLACE_PLURALS) for s in stems if _place_ok(s)) if p]
    for _ in range(12):
        w = pick(rng, _wordings(ct, count, None, loc))
        shapes: list[str] = []
        mass = w.mass_noun and not w.unit  # "areas of thickening" counts, "lymphadenopathy" does not
        if w.mass_noun:
            core = _squeeze(f"{w.pre} {w.head}")
            if mods and mass:
                shapes.append(f"bilateral {choose_term(mods, rng, terse)} {core}")
            if places:
                shapes.append(f"{w.unit + ' of ' if w.unit else ''}{core} in both {choose_term(places, rng, terse)}")
        else:
            head = w.head or pick(rng, _NODE_HEADS if terse and nodes else _GENERIC_HEADS.get(ct, ("lesion",)))
            h = _plural_head(head)
            if mods:
                mod = choose_term(mods, rng, terse)
                shapes.append(f"bilateral {mod} {w.pre} {h}" if loc.system is System.lung
                              else pick(rng, (f"{w.pre} bilateral {mod} {h}", f"bilateral {w.pre} {mod} {h}")))
            if places:
                shapes.append(f"{w.pre} {h} in both {choose_term(places, rng, terse)}")
            if nodes and (w.head is None or w.head in _NODE_HEADS):
                shapes.append(f"{w.pre} bilateral {_plural_node_phrase(choose_term(nodes, rng, terse))}")
        if shapes:
            phrase = _squeeze(pick(rng, shapes)) + w.post
            if not _repeats_word(phrase):
                return NounPhrase(phrase, mass)
    raise ValueError(f"no bilateral wording for {ct.value} at {loc.id}")


# ----------------------------------------------------------------------------------------- uptake

_UPTAKE_MOD: dict[UptakeGrade, tuple[str, ...]] = {
    UptakeGrade.mild: ("mildly increased", "mild", "low-grade", "slightly increased", "faint", "low grade"),
    UptakeGrade.moderate: ("increased", "moderate", "moderately increased", "elevated"),
    UptakeGrade.intense: ("intensely increased", "intense", "markedly increased", "strongly increased", "marked",
                          "very high"),
}
_UPTAKE_AVID: dict[UptakeGrade, tuple[str, ...]] = {
    UptakeGrade.mild: ("mildly avid",),
    UptakeGrade.moderate: ("avid", "moderately avid"),
    UptakeGrade.intense: ("highly avid", "intensely avid"),
}
_UPTAKE_METABOLIC: dict[UptakeGrade, tuple[str, ...]] = {UptakeGrade.moderate: ("hypermetabolic",)}  # FDG only


def uptake_vocabulary(grade: UptakeGrade) -> set[str]:
    """Every UPTAKE_SYNONYMS entry the generator can write for ``grade`` (tests compare the two)."""
    return {*_UPTAKE_MOD[grade], *_UPTAKE_AVID[grade], *_UPTAKE_METABOLIC.get(grade, ())}


def tracer_word(tracer: Tracer, rng: Rng) -> str:
    if tracer is Tracer.fdg:
        return pick(rng, ("FDG", "FDG", "FDG", "tracer", "radiotracer"))
    return pick(rng, ("PSMA", "PSMA", "PSMA", "tracer", "PSMA ligand", "radiotracer"))


def uptake_noun(grade: UptakeGrade, tracer: Tracer, rng: Rng, terse: bool) -> str:
    """"intense FDG uptake", "mildly increased tracer uptake", terse "faint uptake"."""
    word = "" if terse and chance(rng, 0.5) else tracer_word(tracer, rng)
    return _squeeze(f"{pick(rng, _UPTAKE_MOD[grade])} {word} uptake")


def uptake_adjective(grade: UptakeGrade, tracer: Tracer, rng: Rng) -> str:
    """Before the lesion: "intensely FDG-avid", "PSMA-avid", "mildly avid", "hypermetabolic" (FDG only)."""
    options = _UPTAKE_AVID[grade] + (_UPTAKE_METABOLIC.get(grade, ()) if tracer is Tracer.fdg else ())
    word = pick(rng, options)
    if word == "hypermetabolic":
        return word
    if word == "avid":
        return f"{tracer.value}-avid" if chance(rng, 0.85) else "avid"
    adverb = word.split()[0]
    return f"{adverb} {tracer.value}-avid" if chance(rng, 0.7) else word


# ------------------------------------------------------------------------------------- SUV and size

SUV_SPELLINGS = ("SUVmax {v}", "SUV max: {v}", "SUVmax={v}", "SUVmax of {v}", "maximum SUV {v}", "SUVmax: {v}",
                 "SUV max {v}", "SUVmax = {v}", "max SUV {v}", "SUVmax {v} g/mL", "maximum SUV of {v}",
                 "SUV(max) {v}")
_TERSE_SUV = ("SUVmax {v}", "SUVmax={v}", "SUV max: {v}", "SUVmax: {v}", "SUVmax {v}", "SUV max {v}")


def suv_inline(v: str, rng: Rng, terse: bool) -> str:
    return pick(rng, _TERSE_SUV if terse else SUV_SPELLINGS).format(v=v)


def suv_part(v: str, rng: Rng, terse: bool) -> str:
    """SUVmax attached to a clause: " (SUVmax 8.2)", ", SUV max: 8.2", " with an SUVmax of 8.2"."""
    inline = suv_inline(v, rng, terse)
    forms = [f" ({inline})", f" ({inline})", f", {inline}"]
    if " of " in inline:
        forms.append(f" with {indefinite(inline)} {inline}")
    return pick(rng, forms)


def size_text(long_mm: int, short_mm: int | None, rng: Rng, terse: bool) -> str:
    """Long axis first, in mm or cm rounded to the mm: "21 mm", "2.1 cm", "2.1 x 1.5 cm", "21x15mm"."""
    cm = chance(rng, 0.45)
    values = [long_mm] + ([short_mm] if short_mm is not None and chance(rng, 0.45) else [])
    nums = [f"{v / 10:.1f}" if cm else str(v) for v in values]
    compact = terse and chance(rng, 0.6)
    times = pick(rng, ("x", "x", "x", "×"))
    unit = "cm" if cm else "mm"
    return (times.join(nums) + unit) if compact else f"{f' {times} '.join(nums)} {unit}"


def size_attributive(long_mm: int, rng: Rng) -> str:
    """Before a noun: "21-mm", "2.1-cm", "21 mm"."""
    value, unit = (f"{long_mm / 10:.1f}", "cm") if chance(rng, 0.4) else (str(long_mm), "mm")
    return f"{value}-{unit}" if chance(rng, 0.5) else f"{value} {unit}"


# ------------------------------------------------------------------------------------ one statement


@dataclass(frozen=True)
class Said:
    """What one finding statement writes, values exactly as written (None: not stated)."""

    location: Location
    ct: CTFinding
    grade: UptakeGrade
    tracer: Tracer
    count: int  # lesions the statement describes ("multiple" when > 1)
    suv: str | None  # "8.2"
    size: tuple[int, int] | None  # (long, short) axis in mm; the long axis is the stated size


_COUNT_WORDS = {2: ("two", "2", "multiple", "two"), 3: ("three", "3", "multiple", "several")}


def _count_word(n: int, rng: Rng, terse: bool) -> str:
    if terse:
        return pick(rng, ("mult.", "multiple", "several", f"{n}"))
    return pick(rng, _COUNT_WORDS.get(n, ("multiple", "several", "numerous", "multiple")))


def focus_phrase(s: Said, rng: Rng, terse: bool) -> str:
    """A focus of uptake at a place, for findings without a CT correlate: "focal intense FDG uptake in T7"."""
    terms = location_terms(s.location, rng, terse)
    places = [as_place(t) for t in terms if _place_ok(t)]
    if places:
        where = f"in {choose_term(places, rng, terse)}"
    else:
        mod = choose_term([t for t in terms if _modifier_ok(t) or is_node_phrase(t)] or terms, rng, terse)
        where = f"in the {mod} region" if not is_node_phrase(mod) else f"at the {mod} station"
    u = uptake_noun(s.grade, s.tracer, rng, terse)
    if s.count > 1:
        return f"{_count_word(s.count, rng, terse)} foci of {u} {where}"
    return pick(rng, (f"focal {u} {where}", f"a focus of {u} {where}"))


def _no_ct_clause(rng: Rng, terse: bool) -> str:
    clause = pick(rng, NO_CT_CLAUSES[pick(rng, list(NO_CT_CLAUSES))])
    return clause if not terse else ", " + clause.lstrip(" ;,(").rstrip(")").replace("with ", "")


def _size_part(s: Said, rng: Rng, terse: bool, first: bool) -> str:
    text = size_text(s.size[0], s.size[1], rng, terse)
    if s.count > 1:
        larger = "the larger" if s.count == 2 and chance(rng, 0.6) else "the largest"
        return pick(rng, (f", {larger} measuring {text}", f", {larger} {text}", f" measuring up to {text}",
                          f", up to {text}"))
    if first:
        return pick(rng, (f" measuring {text}", f" measuring {text}", f" ({text})", f" of {text}"))
    return pick(rng, (f", measuring {text}", f", {text} in size", f"; size {text}"))


def _full_sentence(s: Said, rng: Rng, lead: str = "") -> str:
    if s.ct is CTFinding.no_ct_correlate:
        focus = focus_phrase(s, rng, False)
        body = focus + _no_ct_clause(rng, False)
        if s.suv:
            if s.count > 1 and chance(rng, 0.5):
                body += f", the most intense with {suv_inline(s.suv, rng, False)}"
            else:
                body += suv_part(s.suv, rng, False)
        there = f"There {'are' if s.count > 1 else 'is'} {body}"
        return (lead + there[0].lower() + there[1:] if lead else cap(pick(rng, (body, there)))) + "."
    plural = s.count > 1
    np_, mass = noun_phrase(s.location, s.ct, s.count, rng, False, s.size[0] if s.size else None)
    size_first_attr = not plural and not mass and s.size is not None and chance(rng, 0.15)
    adj = uptake_adjective(s.grade, s.tracer, rng) if not size_first_attr and chance(rng, 0.35) else None
    lead_words = [size_attributive(s.size[0], rng)] if size_first_attr else []
    core = " ".join([*lead_words, *([adj] if adj else []), np_])
    if plural:
        det = _count_word(s.count, rng, False)
    else:
        det = indefinite(core) if not mass and (lead or chance(rng, 0.7)) else ""
    core = _squeeze(f"{det} {core}")
    uptake = "" if adj else pick(rng, (" with {u}", " with {u}", " showing {u}", " demonstrating {u}")).format(
        u=uptake_noun(s.grade, s.tracer, rng, False))
    suv = suv_part(s.suv, rng, False) if s.suv else ""
    if s.size and not size_first_attr:
        if chance(rng, 0.55):
            size = _size_part(s, rng, False, first=True)
            if uptake and size.startswith(", "):
                uptake = "," + uptake
            tail = size + uptake + suv
        else:
            tail = uptake + suv + _size_part(s, rng, False, first=False)
    else:
        tail = uptake + suv
    frame = int(rng.integers(3))  # 0: bare noun phrase, 1: "There is ...", 2: "... is seen"
    if frame == 1 and (det or mass):
        verb = "are" if plural else "is"
        sentence = f"There {verb} {core}{tail}"
    elif frame == 2 and (det or mass):
        verb = "are" if plural else "is"
        seen = pick(rng, ("seen", "noted", "present", "identified"))
        sentence = f"{cap(core)} {verb} {seen}{',' if tail.startswith(' ') and not tail.startswith(' (') else ''}{tail}"
    else:
        sentence = cap(core) + tail
    return (lead + decap(sentence) if lead else sentence) + "."


def _terse_sentence(s: Said, rng: Rng) -> str:
    suv = suv_inline(s.suv, rng, True) if s.suv else None
    if s.ct is CTFinding.no_ct_correlate:
        label = choose_term(label_terms(s.location), rng, True)
        many = f"{_count_word(s.count, rng, True)} foci" if s.count > 1 else "focal"
        parts = [f"{label}: {many} {uptake_noun(s.grade, s.tracer, rng, True)}{_no_ct_clause(rng, True)}"]
        return ", ".join(parts + ([suv] if suv else []))
    uptake = uptake_adjective(s.grade, s.tracer, rng) if chance(rng, 0.6) else uptake_noun(s.grade, s.tracer, rng, True)
    size = None
    if s.size:
        text = size_text(s.size[0], s.size[1], rng, True)
        size = (pick(rng, ("largest ", "up to ", "max ")) + text) if s.count > 1 else text
    np_ = noun_phrase(s.location, s.ct, s.count, rng, True, s.size[0] if s.size else None).text
    if s.count > 1:
        np_ = pick(rng, (f"{_count_word(s.count, rng, True)} {np_}", f"{np_} x{s.count}"))
    values = [v for v in (uptake, suv) if v]
    if chance(rng, 0.5):
        values.reverse()
    head = f"{np_} {size}" if size and not np_[-1].isdigit() and chance(rng, 0.6) else np_  # not "rib 1 18 mm"
    rest = values + ([size] if size and size not in head else [])
    return cap(", ".join([head, *rest]))


def _caption_sentence(s: Said, rng: Rng) -> str:
    prefix = pick(rng, ("", "", "", "Axial fused PET/CT shows ", "Arrow: ", "MIP and axial fused images: "))
    if s.ct is CTFinding.no_ct_correlate:
        body = focus_phrase(s, rng, False) + _no_ct_clause(rng, False)
        return cap(prefix + body) + (f" ({suv_inline(s.suv, rng, False)})" if s.suv else "") + "."
    adj = uptake_adjective(s.grade, s.tracer, rng) if chance(rng, 0.6) else None
    np_, mass = noun_phrase(s.location, s.ct, s.count, rng, False, s.size[0] if s.size else None)
    core = f"{adj} {np_}" if adj else f"{np_} with {uptake_noun(s.grade, s.tracer, rng, False)}"
    if s.count > 1:
        core = f"{_count_word(s.count, rng, False)} {core}"
    elif prefix.endswith("shows ") and not mass:
        core = f"{indefinite(core)} {core}"
    values = []
    if s.size:
        text = size_text(s.size[0], s.size[1], rng, False)
        values.append(f"{'largest ' if s.count > 1 else ''}{text}")
    if s.suv:
        values.append(suv_inline(s.suv, rng, False))
    if chance(rng, 0.5):
        values.reverse()
    tail = f" ({pick(rng, ('; ', ', ')).join(values)})" if values else ""
    return cap(prefix + core) + tail + "."


def finding_sentence(s: Said, rng: Rng, register: Register, lead: str = "") -> str:
    """The statement of one finding (one location, one CT finding, ``s.count`` lesions) in a register;
    ``lead`` ("In the neck, ") opens a full sentence."""
    if register == "full":
        return _full_sentence(s, rng, lead)
    if register == "terse":
        return _terse_sentence(s, rng)
    if register == "caption":
        return _caption_sentence(s, rng)
    raise ValueError(f"unknown register {register!r}")


def _side_label(side: Laterality, rng: Rng, terse: bool) -> str:
    return pick(rng, SIDE_WORDS[side][1:4] if terse else (SIDE_WORDS[side][0],) * 2 + (SIDE_WORDS[side][1],))


def bilateral_sentence(sides: tuple[Said, Said], rng: Rng, register: Register, lead: str = "") -> str:
    """One sentence for matching findings on both sides, in the order given (values stated per side):
    "Enlarged bilateral level II nodes with intense FDG uptake, measuring 21 mm on the right and 15 mm on the
    left (SUVmax 12.3 and 10.1, respectively)."""
    a, b = sides
    if a.ct != b.ct or a.grade != b.grade or {a.location.laterality, b.location.laterality} != {
            Laterality.left, Laterality.right}:
        raise ValueError("a bilateral statement needs one left and one right finding of the same kind")
    terse = register == "terse"
    count = max(a.count, b.count)
    np_, mass = bilateral_phrase(a.location, a.ct, count, rng, terse)
    adj = uptake_adjective(a.grade, a.tracer, rng) if chance(rng, 0.4) else None
    core = f"{adj} {np_}" if adj else np_
    if count > 1 and not mass:  # the count differs per side: never a number
        core = f"{pick(rng, ('multiple', 'several'))} {core}"
    uptake = "" if adj else f" with {uptake_noun(a.grade, a.tracer, rng, terse)}"
    la, lb = (_side_label(x.location.laterality, rng, terse) for x in (a, b))
    largest = "the largest " if count > 1 else ""
    sa = size_text(a.size[0], a.size[1], rng, terse) if a.size else None
    sb = size_text(b.size[0], b.size[1], rng, terse) if b.size else None
    form = int(rng.integers(3))
    if sa and sb and a.suv and b.suv:
        if form == 0:
            on_a, on_b = (f"on the {la}", f"on the {lb}") if la in ("right", "left") else (f"({la})", f"({lb})")
            values = (f", {largest}measuring {sa} {on_a} and {sb} {on_b}"
                      f" ({pick(rng, ('SUVmax', 'SUV max', 'SUVmax of'))} {a.suv} and {b.suv}, respectively)")
        elif form == 1:
            values = (f" ({la}: {largest}{sa}, {suv_inline(a.suv, rng, terse)}; "
                      f"{lb}: {sb}, {suv_inline(b.suv, rng, terse)})")
        else:
            values = (f", {largest}measuring {sa} on the {SIDE_WORDS[a.location.laterality][0]} "
                      f"({suv_inline(a.suv, rng, terse)}) and {sb} on the {SIDE_WORDS[b.location.laterality][0]} "
                      f"({suv_inline(b.suv, rng, terse)})")
    elif a.suv and b.suv:
        values = f" ({suv_inline(a.suv, rng, terse)} {la}, {b.suv} {lb})"
    elif sa and sb:
        values = f", {largest}measuring {sa} ({la}) and {sb} ({lb})"
    else:
        values = ""
    body = _squeeze(core) + uptake + values
    verb = "is" if mass else "are"
    if lead:
        return f"{lead}there {verb} {decap(body)}."
    if register == "full" and chance(rng, 0.35):
        return f"There {verb} {decap(body)}."
    return cap(body) + ("" if terse else ".")


# ----------------------------------------------------------------------------------- impressions

_INTERPRETATION: dict[System, tuple[str, ...]] = {
    System.lymph_node: ("consistent with nodal metastasis", "suspicious for nodal involvement", "likely metastatic"),
    System.lung: ("suspicious for malignancy", "concerning for a primary malignancy", "suspicious for metastasis"),
    System.bone: ("consistent with osseous metastasis", "highly suspicious for bone metastasis"),
    System.organ: ("suspicious for metastasis", "suspicious for malignancy", "likely metastatic"),
}
_MILD_INTERPRETATION = ("indeterminate", "of uncertain significance", "likely reactive", "follow-up recommended")


_LYMPHOMA_INTERPRETATION = ("consistent with lymphomatous involvement", "in keeping with lymphoma involvement")
_PRIMARY = "concerning for a primary malignancy"


def _interpretation(s: Said, rng: Rng, terse: bool, disease: str = "") -> str:
    """How the reader reads a finding, in the terms of the patient's disease: lymphoma is never "metastatic",
    and a lung lesion is a possible primary only when lung cancer is the question."""
    if terse:
        if s.grade is UptakeGrade.mild:
            return pick(rng, ("indeterminate", "?reactive"))
        return pick(rng, ("c/w lymphoma", "?lymphoma")) if disease == "lymphoma" else \
            pick(rng, ("c/w met", "?met", "suspicious", "likely mets"))
    if s.grade is UptakeGrade.mild:
        return pick(rng, _MILD_INTERPRETATION)
    if disease == "lymphoma":
        return pick(rng, _LYMPHOMA_INTERPRETATION)
    options = _INTERPRETATION[s.location.system]
    if disease != "lung_cancer":
        options = tuple(o for o in options if o != _PRIMARY)
    return pick(rng, options)


def comparison_clause(phrase: str, sentence: str) -> str:
    """``sentence`` with a comparison phrase appended inside its final period (if it has one)."""
    body = sentence.rstrip()
    if body.endswith("."):
        return f"{body[:-1]}, {phrase}."
    return f"{body}; {phrase}"


# Follow-up wording per (baseline had disease at the site, response): full, terse.
COMPARISONS: dict[str, tuple[str, str]] = {
    "progression": ("increased in size and uptake compared with the prior study", "incr vs prior"),
    "partial": ("decreased in size and uptake compared with the prior study", "decr vs prior"),
    "stable": ("unchanged compared with the prior study", "stable vs prior"),
    "": ("previously known from the prior study", "known from prior"),
    "new": ("new since the prior study", "new vs prior"),
}


def impression_restatement(sides: tuple[Said, ...], rng: Rng, terse: bool, disease: str = "") -> str:
    """An impression item that repeats a findings statement: same location(s) and CT finding, the same SUVmax
    when it gives one, in other words ("Intensely FDG-avid enlarged right axillary node (SUVmax 12.3),
    consistent with nodal metastasis.")."""
    s = sides[0]
    if len(sides) == 2:
        np_ = bilateral_phrase(s.location, s.ct, max(x.count for x in sides), rng, terse).text
        body = f"{uptake_adjective(s.grade, s.tracer, rng)} {np_}"
    elif s.ct is CTFinding.no_ct_correlate:
        body = focus_phrase(s, rng, terse) + _no_ct_clause(rng, terse)
    else:
        np_ = noun_phrase(s.location, s.ct, s.count, rng, terse, s.size[0] if s.size else None).text
        body = f"{_count_word(s.count, rng, terse)} " if s.count > 1 else ""
        body += f"{uptake_adjective(s.grade, s.tracer, rng)} {np_}" if chance(rng, 0.6) else \
            f"{np_} with {uptake_noun(s.grade, s.tracer, rng, terse)}"
        if s.suv and chance(rng, 0.6):
            body += f" ({suv_inline(s.suv, rng, terse)})"
    sep = " - " if terse else ", "
    return cap(_squeeze(body)) + sep + _interpretation(s, rng, terse, disease) + ("" if terse else ".")


# ------------------------------------------------------------------------------ other sentences


@dataclass(frozen=True)
class Negative:
    """A sentence that denies findings somewhere; written only where the report states none."""

    section: str  # head_neck | chest | abdomen_pelvis | msk
    full: str  # "{T}" is the tracer
    terse: str
    forbids: tuple[str, ...]  # location-id prefixes, or "system:<system>", that must have no finding
    tracer: Tracer | None = None
    sex: str | None = None


NEGATIVES: tuple[Negative, ...] = (
    Negative("head_neck", "No cervical lymphadenopathy.", "No cervical LN.", ("ln_cervical", "ln_supraclavicular")),
    Negative("head_neck", "No abnormal {T} uptake in the neck.", "Neck neg.",
             ("ln_cervical", "ln_supraclavicular", "thyroid", "nasopharynx", "vertebra_c")),
    Negative("head_neck", "The thyroid gland shows no focal uptake.", "Thyroid: no focal uptake.", ("thyroid",)),
    Negative("head_neck", "No suspicious nasopharyngeal uptake.", "NP clear.", ("nasopharynx",)),
    Negative("chest", "No {T}-avid pulmonary nodules.", "No {T}-avid pulm nodules.", ("lung_", "pleura_")),
    Negative("chest", "No mediastinal or hilar lymphadenopathy.", "No mediastinal/hilar LN.",
             ("ln_mediastinal", "ln_hilar")),
    Negative("chest", "No axillary lymphadenopathy.", "Axillae neg.", ("ln_axillary",)),
    Negative("chest", "No pleural effusion.", "No effusion.", ("pleura_",)),
    Negative("chest", "No focal uptake in either breast.", "Breasts neg.", ("breast_",), sex="F"),
    Negative("abdomen_pelvis", "No abnormal uptake in the liver.", "No abnl uptake liver.", ("liver_",)),
    Negative("abdomen_pelvis", "The spleen is normal in size without focal uptake.", "Spleen neg.", ("spleen",)),
    Negative("abdomen_pelvis", "The adrenal glands are unremarkable.", "Adrenals neg.", ("adrenal_",)),
    Negative("abdomen_pelvis", "No focal pancreatic uptake.", "Pancreas neg.", ("pancreas",)),
    Negative("abdomen_pelvis", "No retroperitoneal or mesenteric lymphadenopathy.", "No RP/mesenteric LN.",
             ("ln_retroperitoneal", "ln_mesenteric", "ln_celiac", "ln_porta")),
    Negative("abdomen_pelvis", "No pelvic or inguinal lymphadenopathy.", "No pelvic/inguinal LN.",
             ("ln_common_iliac", "ln_external_iliac", "ln_internal_iliac", "ln_inguinal")),
    Negative("abdomen_pelvis", "No abnormal uptake in the prostate bed.", "Prostate bed neg.", ("prostate",),
             tracer=Tracer.psma, sex="M"),
    Negative("msk", "No suspicious osseous lesions.", "no suspicious osseous lesions.", ("system:bone",)),
    Negative("msk", "No focal skeletal {T} uptake to suggest osseous metastases.", "No bone mets.",
             ("system:bone",)),
    Negative("msk", "No lytic or sclerotic bone lesions.", "No lytic/sclerotic lesions.", ("system:bone",)),
)

OTHER_NEGATIVES = {  # after a section's findings: "no other ..."
    "full": ("No other {T}-avid lesions in this region.", "No other sites of abnormal uptake.",
             "No further suspicious foci."),
    "terse": ("No other avid foci.", "Otherwise neg."),
}

PHYSIOLOGICAL: dict[Tracer, tuple[tuple[str, str], ...]] = {  # (full, terse)
    Tracer.fdg: (
        ("Physiological FDG uptake is seen in the brain, myocardium, kidneys and urinary bladder.",
         "Physiol uptake brain/myocardium/kidneys/bladder."),
        ("Normal physiological tracer distribution in the brain, heart, liver, bowel and urinary tract.",
         "Physiol distribution otherwise."),
        ("Physiologic activity in the brain, myocardium, renal collecting systems and bladder.",
         "Physiol activity brain, heart, renal collecting systems, bladder."),
    ),
    Tracer.psma: (
        ("Physiological PSMA uptake in the salivary and lacrimal glands, liver, spleen, kidneys, small bowel and "
         "urinary bladder.", "Physiol uptake salivary glands/kidneys/bowel/bladder."),
        ("Normal tracer distribution in the salivary glands, kidneys, bowel and bladder.",
         "Physiol distribution salivary glands, kidneys, bowel."),
    ),
}

REFERENCE_REGIONS = (  # numbers that are not findings: the liver / blood-pool references
    "Reference regions: liver SUVmean {liver}, mediastinal blood pool SUVmean {pool}.",
    "Mediastinal blood pool SUVmax {pool_max} (reference).",
    "Background liver SUVmean {liver}.",
)

INCIDENTALS = (  # (full, terse, location-id prefixes it must not overlap)
    ("Degenerative changes of the lower lumbar spine without abnormal uptake.", "Degen changes LS spine.", ()),
    ("Atherosclerotic calcification of the thoracic aorta.", "Aortic calcification.", ()),
    ("Small hiatal hernia.", "Small hiatal hernia.", ("esophagus", "stomach")),
    ("Diverticulosis of the sigmoid colon without inflammatory change.", "Sigmoid diverticulosis.", ("colon",)),
    ("Cholelithiasis without signs of cholecystitis.", "Gallstones.", ()),
)


# The clinical question per disease (the generator's scenario): (full, terse); "{psa}" is a PSA value.
DISEASE_INDICATIONS: dict[str, tuple[tuple[str, str], ...]] = {
    "lymphoma": (("Restaging of diffuse large B-cell lymphoma after four cycles of R-CHOP.",
                  "DLBCL restaging post R-CHOP x4"),
                 ("Hodgkin lymphoma, interim staging after two cycles of ABVD.", "HL interim PET post ABVD x2")),
    "lung_cancer": (("Staging of newly diagnosed non-small cell lung cancer.", "NSCLC staging"),
                    ("Suspected lung cancer; solitary pulmonary nodule on CT.", "?lung ca, SPN on CT")),
    "nasopharyngeal": (("Nasopharyngeal carcinoma, initial staging.", "NPC staging"),
                       ("Squamous cell carcinoma of the head and neck, initial staging.", "HNSCC staging")),
    "liver_cancer": (("Suspected recurrence of colorectal carcinoma; rising CEA.", "?recurrent CRC, rising CEA"),
                     ("Colorectal carcinoma with liver metastases, restaging.", "CRC liver mets restaging")),
    "breast_cancer": (("Restaging of breast cancer after surgery.", "Breast ca restaging"),
                      ("Newly diagnosed breast cancer, staging.", "Breast ca staging")),
    "prostate_cancer": (
        ("Biochemical recurrence of prostate cancer after radical prostatectomy, PSA {psa} ng/mL.",
         "BCR PCa post RP, PSA {psa}"),
        ("Primary staging of high-risk prostate cancer (Gleason 4+4, PSA {psa} ng/mL).",
         "High-risk PCa staging, PSA {psa}"),
        ("Metastatic castration-resistant prostate cancer, evaluation before radioligand therapy.",
         "mCRPC pre-RLT")),
}


def indications(tracer: Tracer, sex: str) -> tuple[tuple[str, str], ...]:
    """(full, terse) clinical questions fitting the tracer and sex; "{psa}" is a PSA value."""
    if tracer is Tracer.fdg:
        out = [
            ("Staging of newly diagnosed non-small cell lung cancer.", "NSCLC staging"),
            ("Restaging of diffuse large B-cell lymphoma after four cycles of R-CHOP.",
             "DLBCL restaging post R-CHOP x4"),
            ("Squamous cell carcinoma of the head and neck, initial staging.", "HNSCC staging"),
            ("Suspected recurrence of colorectal carcinoma; rising CEA.", "?recurrent CRC, rising CEA"),
            ("Carcinoma of unknown primary with cervical lymph node metastasis.", "CUP, neck node met"),
            ("Malignant melanoma, staging.", "Melanoma staging"),
            ("Oesophageal adenocarcinoma, staging before neoadjuvant therapy.", "Oesoph adenoca staging"),
        ]
        if sex == "F":
            out.append(("Restaging of breast cancer after surgery.", "Breast ca restaging"))
        return tuple(out)
    if sex == "M":
        return (
            ("Biochemical recurrence of prostate cancer after radical prostatectomy, PSA {psa} ng/mL.",
             "BCR PCa post RP, PSA {psa}"),
            ("Primary staging of high-risk prostate cancer (Gleason 4+4, PSA {psa} ng/mL).",
             "High-risk PCa staging, PSA {psa}"),
            ("Metastatic castration-resistant prostate cancer, evaluation before radioligand therapy.",
             "mCRPC pre-RLT"),
        )
    return (
        ("Restaging of metastatic renal cell carcinoma.", "mRCC restaging"),
        ("Hepatocellular carcinoma, PSMA imaging before therapy planning.", "HCC, PSMA pre-therapy"),
    )


SCANNERS: dict[str, tuple[str, ...]] = {
    "Siemens": ("Siemens Biograph mCT", "Siemens Biograph Vision"),
    "GE": ("GE Discovery MI", "GE Discovery 710"),
    "United Imaging": ("United Imaging uMI 780", "United Imaging uMI 550"),
}

TRACER_LABELS: dict[Tracer, tuple[str, ...]] = {
    Tracer.fdg: ("[18F]FDG", "18F-FDG", "F-18 FDG", "FDG"),
    Tracer.psma: ("[68Ga]Ga-PSMA-11", "68Ga-PSMA-11", "[18F]PSMA-1007", "18F-DCFPyL"),
}

GENERAL_IMPRESSIONS = (
    "Recommend histopathological correlation of the dominant lesion.",
    "Comparison with prior imaging is recommended.",
    "Follow-up PET/CT after therapy is suggested.",
    "Findings were discussed with the referring team.",
)

READERS = ("Dr. A. Keller", "Dr. M. Okafor", "Dr. S. Lindqvist", "Dr. C. Moreau", "Dr. H. Tanaka", "Dr. R. Silva")
