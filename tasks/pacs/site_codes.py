"""Finding sites as coded concepts: SNOMED CT (pydicom's ``codes.SCT``) where a code exists, else the project's own.

A location id is looked up in ``SCT_NAMES`` by its most specific key first (``vertebra_t7`` before ``vertebra``),
its side (``_r`` / ``_l``) becoming the FindingSite's laterality. Sites that SNOMED has no pydicom attribute for
(upper lobe of the right lung, mediastinal station 4R, prostate bed, any coarse or open site) become a concept of
the scheme ``99PETCAP`` whose value is the location id and whose meaning is the caption's words for it, so a viewer
shows the words and a program can still read the id.
"""

from __future__ import annotations

import re

from highdicom.sr import CodedConcept, FindingSite
from pydicom.sr.codedict import codes

from data_contracts import taxonomy

SCHEME = "99PETCAP"
SCHEME_VERSION = taxonomy.TAXONOMY_VERSION

# location id (or its side-free stem, or its prefix before "_<n>") -> attribute of pydicom's codes.SCT
SCT_NAMES: dict[str, str] = {
    **{f"vertebra_c{i}": f"C{i}Vertebra" for i in range(1, 8)},
    **{f"vertebra_t{i}": f"T{i}Vertebra" for i in range(1, 13)},
    **{f"vertebra_l{i}": f"L{i}Vertebra" for i in range(1, 6)},
    "sacrum": "Sacrum", "rib": "Rib", "ilium": "Ilium", "ischium": "Ischium", "femur": "Femur",
    "humerus": "Humerus", "scapula": "Scapula", "clavicle": "Clavicle", "sternum": "Sternum", "skull": "Skull",
    "liver": "Liver", **{f"liver_s{i}": f"CouinaudHepaticSegment{r}" for i, r in
                         zip(range(1, 9), ("I", "II", "III", "IV", "V", "VI", "VII", "VIII"))},
    "spleen": "Spleen", "pancreas": "Pancreas", "prostate": "Prostate", "nasopharynx": "Nasopharynx",
    "thyroid": "Thyroid", "esophagus": "Esophagus", "stomach": "Stomach", "bladder": "Bladder",
    "colon": "Colon", "kidney": "Kidney", "adrenal": "AdrenalGland", "breast": "Breast", "pleura": "Pleura",
    "lung": "Lung", "lung_rml": "MiddleLobeOfRightLung", "ln_cervical": "CervicalLymphNode",
    "ln_supraclavicular": "SupraclavicularLymphNode", "ln_axillary": "AxillaryLymphNode",
    "ln_mediastinal": "MediastinalLymphNode", "ln_hilar": "HilarLymphNode", "ln_mesenteric": "LymphNodeOfMesentery",
    "ln_celiac": "CeliacLymphNode", "ln_external_iliac": "ExternalIliacLymphNode",
    "ln_inguinal": "InguinalLymphNode", "ln_retroperitoneal": "AbdominalLymphNode", "ln": "LymphNode",
    "lymph_nodes": "LymphNode", "tonsil_palatine": "PalatineTonsil", "parotid": "ParotidGland",
}
_SIDE = {"r": "Right", "l": "Left"}


def _sct(name: str) -> CodedConcept | None:
    code = getattr(codes.SCT, name, None)
    return None if code is None else CodedConcept(code.value, code.scheme_designator, code.meaning)


def side_of(location_id: str) -> str | None:
    m = re.search(r"_([rl])$", location_id)
    return _SIDE[m.group(1)] if m else None


def site_name(location_id: str) -> str:
    """The caption's words for a location id (the taxonomy's canonical name; the id itself if unknown)."""
    loc = taxonomy.get(location_id) if hasattr(taxonomy, "get") else None
    return loc.name if loc is not None else location_id.replace("_", " ")


def own_concept(location_id: str) -> CodedConcept:
    return CodedConcept(location_id, SCHEME, site_name(location_id)[:64], scheme_version=SCHEME_VERSION)


def finding_site(location_id: str) -> FindingSite:
    """The coded site of a location id, with its laterality when it has a side.

    A SNOMED code is used only where it names the site exactly (an ancestor such as "lymph node" for station 4R
    would lose what the localizer said); everything else is the project's own concept.
    """
    side = side_of(location_id)
    stem = location_id[:-2] if side else location_id
    exact = SCT_NAMES.get(location_id) or SCT_NAMES.get(stem)
    concept = _sct(exact) if exact else None
    if concept is None:
        return FindingSite(own_concept(location_id))
    laterality = _sct(side) if side else None
    return FindingSite(concept, laterality=laterality)
