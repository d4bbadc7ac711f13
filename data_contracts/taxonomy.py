"""Anatomical location taxonomy: the ~130 categories the localizer classifies and reports are mapped to.

Every category has a stable id (never renumbered: checkpoints and tables store it), a canonical name
(the words captions use), the synonyms and abbreviations reports use, body region, laterality, the CT
window group that DWS applies, and the phantom structure(s) where it lives (names in
``data_contracts.anatomy.STRUCTURES``).

``stems`` are the side-free phrases of a lateral category ("upper lobe", "7th rib", "level II"): a report
often names the side once for several sites ("bilateral level II nodes"), so the extractor combines a stem
with a side found nearby.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from functools import cache

# 2.0.0: a location hierarchy (``data_contracts.hierarchy``): coarse nodes, leaves beyond the localizer's
# classes, open "other site" region nodes. Every 1.x id stays valid and keeps its class index.
TAXONOMY_VERSION = "2.0.0"


class Region(str, Enum):
    head_neck = "head_neck"
    chest = "chest"
    abdomen = "abdomen"
    pelvis = "pelvis"
    extremity = "extremity"
    whole_body = "whole_body"  # a coarse node spanning regions (lymph nodes, skeleton)


class System(str, Enum):
    lymph_node = "lymph_node"
    lung = "lung"
    bone = "bone"
    organ = "organ"


class Laterality(str, Enum):
    left = "left"
    right = "right"
    midline = "midline"  # unpaired structure
    unspecified = "unspecified"  # a coarse node covering both sides (lung, mediastinal nodes) or no side


class WindowGroup(str, Enum):
    lung = "lung"
    bone = "bone"
    soft_tissue = "soft_tissue"


@dataclass(frozen=True)
class CTWindow:
    level: float
    width: float

    @property
    def low(self) -> float:
        return self.level - self.width / 2

    @property
    def high(self) -> float:
        return self.level + self.width / 2


# The paper's window presets (section 2.3).
WINDOWS: dict[WindowGroup, CTWindow] = {
    WindowGroup.lung: CTWindow(level=-600.0, width=1500.0),
    WindowGroup.bone: CTWindow(level=800.0, width=2600.0),
    WindowGroup.soft_tissue: CTWindow(level=40.0, width=350.0),
}


@dataclass(frozen=True)
class Location:
    id: str
    name: str  # canonical, as captions write it
    region: Region
    system: System
    laterality: Laterality
    window: WindowGroup
    structures: tuple[str, ...]
    synonyms: tuple[str, ...] = ()
    stems: tuple[str, ...] = ()  # side-free phrases, for lateral categories

    @property
    def terms(self) -> tuple[str, ...]:
        """Every phrase that names this location on its own, canonical name first."""
        return (self.name, *self.synonyms)

    @property
    def ct_window(self) -> CTWindow:
        return WINDOWS[self.window]


# Phrases reports use for two categories; an extractor must decide them by context
# ("S1" is the first sacral segment, or liver segment I next to "liver"/"segment"/"hepatic").
AMBIGUOUS_TERMS: frozenset[str] = frozenset({"s1"})

_SIDES = {"right": ("right", "R", "rt"), "left": ("left", "L", "lt")}
_ROMAN = ["I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X", "XI", "XII"]


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def _lateral(
    key: str,
    stem_name: str,
    region: Region,
    system: System,
    window: WindowGroup,
    structure: str,
    stems: tuple[str, ...],
    extra: tuple[str, ...] = (),
    name_fmt: str = "{side} {stem}",
) -> list[Location]:
    """A left and a right category for one paired structure; ``structure`` has a ``{side}`` slot."""
    out = []
    for side, (word, letter, abbr) in _SIDES.items():
        syn = [f"{s} {stem}" for s in (word, abbr) for stem in stems]
        syn += [f"{stem} {s}" for s in (word,) for stem in stems]
        syn += [e.format(side=word, S=letter) for e in extra]
        name = name_fmt.format(side=word, stem=stem_name)
        out.append(
            Location(
                id=f"{key}_{side[0]}",
                name=name,
                region=region,
                system=system,
                laterality=Laterality(side),
                window=window,
                structures=(structure.format(side=side),),
                synonyms=tuple(dict.fromkeys(s for s in syn if s != name)),
                stems=tuple(dict.fromkeys((stem_name, *stems))),
            )
        )
    return out


def _midline(
    key: str,
    name: str,
    region: Region,
    system: System,
    window: WindowGroup,
    structures: tuple[str, ...],
    synonyms: tuple[str, ...] = (),
) -> Location:
    return Location(key, name, region, system, Laterality.midline, window, structures, synonyms, (name, *synonyms))


def _lymph_nodes() -> list[Location]:
    R, LN, ST = Region, System.lymph_node, WindowGroup.soft_tissue
    out: list[Location] = []
    for i, lv in enumerate(_ROMAN[:6], start=1):
        out += _lateral(
            f"ln_cervical_{lv.lower()}",
            f"cervical level {lv} lymph node",
            R.head_neck,
            LN,
            ST,
            f"ln_cervical_{lv.lower()}_{{side}}",
            stems=(f"level {lv}", f"level {i}", f"cervical level {lv}", f"neck level {lv}", f"level {lv} node",
                   f"level {lv}a", f"level {lv}b", f"level {lv} lymph node"),
            extra=(f"{{side}} neck level {lv}", f"{{side}}-sided level {lv}"),
        )
    out += _lateral("ln_supraclavicular", "supraclavicular lymph node", R.head_neck, LN, ST,
                    "ln_supraclavicular_{side}", stems=("supraclavicular", "supraclavicular node", "SCV", "SCF"))
    out += _lateral("ln_axillary", "axillary lymph node", R.chest, LN, ST, "ln_axillary_{side}",
                    stems=("axillary", "axilla", "axillary node"))
    stations = [
        ("2r", "right upper paratracheal lymph node (station 2R)", ("station 2R", "2R", "right upper paratracheal")),
        ("2l", "left upper paratracheal lymph node (station 2L)", ("station 2L", "2L", "left upper paratracheal")),
        ("4r", "right lower paratracheal lymph node (station 4R)", ("station 4R", "4R", "right lower paratracheal")),
        ("4l", "left lower paratracheal lymph node (station 4L)", ("station 4L", "4L", "left lower paratracheal")),
        ("5", "aortopulmonary window lymph node (station 5)", ("station 5", "AP window", "aortopulmonary window",
                                                                 "subaortic", "APW")),
        ("6", "para-aortic mediastinal lymph node (station 6)", ("station 6", "para-aortic mediastinal",
                                                                   "prevascular para-aortic")),
        ("7", "subcarinal lymph node (station 7)", ("station 7", "subcarinal", "infracarinal")),
        ("8", "paraesophageal lymph node (station 8)", ("station 8", "paraesophageal", "para-oesophageal")),
    ]
    for key, name, syn in stations:
        side = Laterality.right if key.endswith("r") else Laterality.left if key.endswith("l") else Laterality.midline
        out.append(Location(f"ln_mediastinal_{key}", name, R.chest, LN, side, ST, (f"ln_mediastinal_{key}",),
                            syn, syn))
    out += _lateral("ln_hilar", "hilar lymph node", R.chest, LN, ST, "ln_hilar_{side}",
                    stems=("hilar", "hilum", "hilar node", "station 10", "hilar (station 10)"),
                    extra=("station 10{S}", "10{S}"))
    abdominal = [
        ("ln_retroperitoneal_paraaortic", "para-aortic lymph node", ("para-aortic", "paraaortic", "left para-aortic",
                                                                      "periaortic")),
        ("ln_retroperitoneal_aortocaval", "aortocaval lymph node", ("aortocaval", "interaortocaval")),
        ("ln_mesenteric", "mesenteric lymph node", ("mesenteric", "mesentery", "root of the mesentery")),
        ("ln_porta_hepatis", "porta hepatis lymph node", ("porta hepatis", "portocaval", "hepatic hilum",
                                                          "periportal")),
        ("ln_celiac", "celiac lymph node", ("celiac", "coeliac", "celiac axis", "coeliac axis")),
    ]
    for key, name, syn in abdominal:
        out.append(_midline(key, name, R.abdomen, LN, ST, (key,), syn))
    for key, stem, abbr in [("common_iliac", "common iliac", "CIA"), ("external_iliac", "external iliac", "EIA"),
                            ("internal_iliac", "internal iliac", "IIA")]:
        out += _lateral(f"ln_{key}", f"{stem} lymph node", R.pelvis, LN, ST, f"ln_{key}_{{side}}",
                        stems=(stem, f"{stem} node", f"{stem} chain"), extra=(f"{{S}} {abbr}",))
    out += _lateral("ln_inguinal", "inguinal lymph node", R.pelvis, LN, ST, "ln_inguinal_{side}",
                    stems=("inguinal", "groin", "inguinal node", "inguinofemoral"))
    return out


def _lungs() -> list[Location]:
    R, LG, W = Region.chest, System.lung, WindowGroup.lung
    lobes = [
        ("lung_rul", "right upper lobe", Laterality.right, "lung_upper_lobe_right", ("RUL", "right upper lung lobe",
                                                                                     "right apex", "right apical")),
        ("lung_rml", "right middle lobe", Laterality.right, "lung_middle_lobe_right", ("RML", "middle lobe",
                                                                                        "right middle lung lobe")),
        ("lung_rll", "right lower lobe", Laterality.right, "lung_lower_lobe_right", ("RLL", "right lower lung lobe",
                                                                                     "right base", "right basal")),
        ("lung_lul", "left upper lobe", Laterality.left, "lung_upper_lobe_left", ("LUL", "left upper lung lobe",
                                                                                  "lingula", "left apex", "left apical")),
        ("lung_lll", "left lower lobe", Laterality.left, "lung_lower_lobe_left", ("LLL", "left lower lung lobe",
                                                                                  "left base", "left basal")),
    ]
    out = [Location(k, n, R, LG, s, W, (st,), syn, (n.split(" ", 1)[1], "lung " + n.split(" ", 1)[1]))
           for k, n, s, st, syn in lobes]
    out += _lateral("pleura", "pleura", R, LG, W, "pleura_{side}",
                    stems=("pleura", "pleural", "pleural surface", "hemithorax"),
                    name_fmt="{side} {stem}")
    return out


def _bones() -> list[Location]:
    B, W = System.bone, WindowGroup.bone
    out: list[Location] = []
    spine = [("C", 7, Region.head_neck, "cervical"), ("T", 12, Region.chest, "thoracic"),
             ("L", 5, Region.abdomen, "lumbar")]
    for letter, n, region, word in spine:
        for i in range(1, n + 1):
            lv = f"{letter}{i}"
            syn = [lv, f"{lv} vertebra", f"{ordinal(i)} {word} vertebra", f"{word} vertebra {i}", f"{lv} body"]
            if letter == "T":
                syn += [f"Th{i}", f"D{i}", f"Th{i} vertebral body"]
            out.append(_midline(f"vertebra_{lv.lower()}", f"{lv} vertebral body", region, B, W,
                                (f"vertebra_{lv}",), tuple(syn)))
    out.append(_midline("sacrum", "sacrum", Region.pelvis, B, W, ("sacrum",), ("sacral", "S1", "sacral ala")))
    for i in range(1, 13):
        out += _lateral(f"rib_{i}", f"{ordinal(i)} rib", Region.chest, B, W, f"rib_{{side}}_{i}",
                        stems=(f"rib {i}", f"{ordinal(i)} rib", f"{i}th rib" if i > 3 else f"{ordinal(i)} rib"),
                        extra=(f"{ordinal(i)} {{side}} rib", f"{{side}} rib {i}", f"{{S}}{i} rib",
                               f"{{side}} {ordinal(i)} costal arc"))
    paired = [
        ("ilium", "ilium", Region.pelvis, ("iliac bone", "iliac wing", "ilium", "iliac crest")),
        ("pubis", "pubic bone", Region.pelvis, ("pubis", "pubic ramus", "pubic bone", "superior pubic ramus")),
        ("ischium", "ischium", Region.pelvis, ("ischium", "ischial tuberosity", "ischial bone")),
        ("femur", "femur", Region.extremity, ("femur", "femoral", "proximal femur", "femoral neck", "femoral shaft")),
        ("humerus", "humerus", Region.extremity, ("humerus", "humeral", "proximal humerus", "humeral head")),
        ("scapula", "scapula", Region.chest, ("scapula", "scapular", "glenoid")),
        ("clavicle", "clavicle", Region.chest, ("clavicle", "clavicular")),
    ]
    for key, stem, region, stems in paired:
        out += _lateral(key, stem, region, B, W, f"{key}_{{side}}", stems=stems)
    out.append(_midline("sternum", "sternum", Region.chest, B, W, ("sternum",), ("sternal", "manubrium",
                                                                                  "sternal body")))
    out.append(_midline("skull", "skull", Region.head_neck, B, W, ("skull",), ("calvarium", "skull vault",
                                                                               "calvaria", "cranial vault")))
    return out


def _liver() -> list[Location]:
    out = []
    for i, rn in enumerate(_ROMAN[:8], start=1):
        syn = (f"segment {rn}", f"S{i}", f"segment {i}", f"liver segment {i}", f"hepatic segment {rn}",
               f"Couinaud segment {rn}", f"liver S{i}", f"segment {rn} of the liver")
        out.append(_midline(f"liver_s{i}", f"liver segment {rn}", Region.abdomen, System.organ,
                            WindowGroup.soft_tissue, (f"liver_segment_{i}",), syn))
    return out


def _organs() -> list[Location]:
    O, ST = System.organ, WindowGroup.soft_tissue
    R = Region
    out = [
        _midline("spleen", "spleen", R.abdomen, O, ST, ("spleen",), ("splenic",)),
        _midline("pancreas", "pancreas", R.abdomen, O, ST, ("pancreas",), ("pancreatic", "pancreatic head",
                                                                             "pancreatic tail", "pancreatic body")),
        _midline("prostate", "prostate", R.pelvis, O, ST, ("prostate",), ("prostatic", "prostate gland")),
        _midline("nasopharynx", "nasopharynx", R.head_neck, O, ST, ("nasopharynx",), ("nasopharyngeal",
                                                                                       "postnasal space")),
        _midline("thyroid", "thyroid", R.head_neck, O, ST, ("thyroid",), ("thyroid gland", "thyroid lobe",
                                                                          "thyroidal")),
        _midline("esophagus", "esophagus", R.chest, O, ST, ("esophagus",), ("oesophagus", "esophageal",
                                                                              "oesophageal", "distal esophagus")),
        _midline("stomach", "stomach", R.abdomen, O, ST, ("stomach",), ("gastric", "gastric wall",
                                                                         "gastric antrum", "gastric fundus")),
        _midline("bladder", "urinary bladder", R.pelvis, O, ST, ("bladder",), ("bladder", "bladder wall",
                                                                               "vesical")),
        _midline("colon", "colon", R.abdomen, O, ST, ("colon",), ("colonic", "sigmoid colon", "bowel",
                                                                   "large bowel")),
    ]
    out += _lateral("kidney", "kidney", R.abdomen, O, ST, "kidney_{side}", stems=("kidney", "renal"))
    out += _lateral("adrenal", "adrenal gland", R.abdomen, O, ST, "adrenal_{side}",
                    stems=("adrenal", "adrenal gland", "suprarenal"))
    out += _lateral("breast", "breast", R.chest, O, ST, "breast_{side}", stems=("breast", "mammary", "axillary tail"))
    return out


@cache
def locations() -> tuple[Location, ...]:
    """The localizer's classes (the 1.x leaves) in a fixed order; ``index`` into this tuple is the class index.
    Coarse nodes and the further leaves of ``data_contracts.hierarchy`` are not classes (``get`` knows them)."""
    locs = (*_lymph_nodes(), *_lungs(), *_bones(), *_liver(), *_organs())
    ids = [loc.id for loc in locs]
    if len(set(ids)) != len(ids):
        raise AssertionError("duplicate taxonomy ids")
    return locs


# The hierarchy's other nodes (coarse, open, further leaves), registered by ``data_contracts.hierarchy`` when it is
# imported (``data_contracts/__init__`` imports it): the hierarchy builds on this module, never the other way round.
_NODES: dict[str, Location] = {}


def register_nodes(nodes) -> None:
    """Make further location nodes known to ``get`` / ``by_id``; a node may not shadow a localizer class."""
    for loc in nodes:
        if loc.id in _index():
            raise AssertionError(f"hierarchy node {loc.id} shadows a localizer class")
        _NODES[loc.id] = loc
    by_id.cache_clear()


@cache
def by_id() -> dict[str, Location]:
    """Every location id a finding may carry: the classes above plus the hierarchy's other nodes."""
    return {**{loc.id: loc for loc in locations()}, **_NODES}


def is_class(location_id: str) -> bool:
    """Whether the id is one of the localizer's classes (``locations()``)."""
    return location_id in _index()


def get(location_id: str) -> Location:
    try:
        return by_id()[location_id]
    except KeyError:
        raise KeyError(f"unknown taxonomy location id {location_id!r}") from None


_LOBE_MIRRORS = {"lung_rul": "lung_lul", "lung_lul": "lung_rul", "lung_rll": "lung_lll", "lung_lll": "lung_rll"}


def mirror(loc: Location) -> str | None:
    """The same structure on the other side (``rib_7_r`` ↔ ``rib_7_l``, right ↔ left upper lobe), when there is one."""
    if loc.id in _LOBE_MIRRORS:
        return _LOBE_MIRRORS[loc.id]
    for a, b in (("_r", "_l"), ("_l", "_r")):
        if loc.id.endswith(a) and (loc.id[: -len(a)] + b) in by_id():
            return loc.id[: -len(a)] + b
    return None


def index_of(location_id: str) -> int:
    return _index()[location_id]


@cache
def _index() -> dict[str, int]:
    return {loc.id: i for i, loc in enumerate(locations())}


def window_for(location_id: str) -> CTWindow:
    return get(location_id).ct_window
