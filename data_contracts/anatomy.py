"""Phantom / organ-segmenter structures and their integer labels in the anatomy label map.

The anatomy label map a whole-body organ segmenter writes (TotalSegmentator-style: one integer per
structure, 0 = outside) uses these labels; the synthetic phantom draws every one of them. Each taxonomy
location names the structure(s) where it lives, so a lesion's location can be read off the label map.
"""

from __future__ import annotations

from functools import cache

from data_contracts import taxonomy

# Structures that carry no taxonomy category but shape the body, its CT contrast and PET physiology.
BACKGROUND_STRUCTURES: tuple[str, ...] = (
    "body_fat",          # subcutaneous and visceral fat (the body outline)
    "muscle",
    "brain",
    "spinal_cord",
    "heart",
    "aorta",
    "trachea",
    "mediastinal_fat",
    "small_bowel",
    "parotid_left",
    "parotid_right",
    "submandibular_left",
    "submandibular_right",
    "uterus",
    "tibia_left",
    "tibia_right",
    "intervertebral_disc",
)


@cache
def structures() -> tuple[str, ...]:
    """Every structure in label order: label = index + 1."""
    named = [s for loc in taxonomy.locations() for s in loc.structures]
    out = tuple(dict.fromkeys([*BACKGROUND_STRUCTURES, *named]))
    return out


@cache
def label_of() -> dict[str, int]:
    return {name: i + 1 for i, name in enumerate(structures())}


@cache
def structure_location() -> dict[str, str]:
    """Structure name -> taxonomy location id, for structures that carry a category."""
    return {s: loc.id for loc in taxonomy.locations() for s in loc.structures}


@cache
def label_location() -> dict[int, str]:
    """Anatomy label -> taxonomy location id (labels of background structures are absent)."""
    lab = label_of()
    return {lab[s]: loc for s, loc in structure_location().items()}


def label_names_json() -> dict[str, str]:
    """The sidecar a segmenter writes beside its label map: ``{"1": "body_fat", ...}``."""
    return {str(v): k for k, v in label_of().items()}
