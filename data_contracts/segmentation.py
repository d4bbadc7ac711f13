"""The organ-segmenter label map: the classes a real whole-body CT segmenter writes, and the sites they hold.

Modelled on TotalSegmentator v2's ``total`` task (117 classes: organs, lung lobes, vertebrae C1-L5 + S1,
sacrum, ribs by number and side, the other bones, major vessels, a few muscles), in its label order. What a
real segmenter never outputs is absent: no lymph-node stations, no liver segments, no pleura, and a lesion
is never painted with a class of its own. ``anatomy.nii.gz`` (uint8 as TotalSegmentator writes it, 0 = no class;
any unsigned integer type is read) carries these labels and
its sidecar ``anatomy.json`` maps ``{"1": "spleen", ...}`` (``names_json``).

``CLASS_SITES`` says which taxonomy locations a class can hold: one (``kidney_right`` -> ``kidney_r``), several
(``liver`` -> the eight Couinaud segments; ``hip_left`` -> left ilium, pubis, ischium) or none (vessels,
muscles, heart: a lesion there has no taxonomy site of its own; nodes near them get their station from
position, ``tasks.sites``).
"""

from __future__ import annotations

from functools import cache

SEGMENTATION_VERSION = "totalseg-v2-total/1"

_VERTEBRAE = tuple(f"vertebrae_{v}" for v in (
    "S1", "L5", "L4", "L3", "L2", "L1", "T12", "T11", "T10", "T9", "T8", "T7", "T6", "T5", "T4", "T3", "T2", "T1",
    "C7", "C6", "C5", "C4", "C3", "C2", "C1"))

CLASSES: tuple[str, ...] = (
    "spleen", "kidney_right", "kidney_left", "gallbladder", "liver", "stomach", "pancreas",
    "adrenal_gland_right", "adrenal_gland_left", "lung_upper_lobe_left", "lung_lower_lobe_left",
    "lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "esophagus", "trachea",
    "thyroid_gland", "small_bowel", "duodenum", "colon", "urinary_bladder", "prostate", "kidney_cyst_left",
    "kidney_cyst_right", "sacrum", *_VERTEBRAE, "heart", "aorta", "pulmonary_vein", "brachiocephalic_trunk",
    "subclavian_artery_right", "subclavian_artery_left", "common_carotid_artery_right",
    "common_carotid_artery_left", "brachiocephalic_vein_left", "brachiocephalic_vein_right",
    "atrial_appendage_left", "superior_vena_cava", "inferior_vena_cava", "portal_vein_and_splenic_vein",
    "iliac_artery_left", "iliac_artery_right", "iliac_vena_left", "iliac_vena_right", "humerus_left",
    "humerus_right", "scapula_left", "scapula_right", "clavicula_left", "clavicula_right", "femur_left",
    "femur_right", "hip_left", "hip_right", "spinal_cord", "gluteus_maximus_left", "gluteus_maximus_right",
    "gluteus_medius_left", "gluteus_medius_right", "gluteus_minimus_left", "gluteus_minimus_right",
    "autochthon_left", "autochthon_right", "iliopsoas_left", "iliopsoas_right", "brain", "skull",
    *(f"rib_left_{i}" for i in range(1, 13)), *(f"rib_right_{i}" for i in range(1, 13)), "sternum",
    "costal_cartilages",
)

_SIDE = {"left": "l", "right": "r"}


def _sites(name: str) -> tuple[str, ...]:
    if name == "liver":
        return tuple(f"liver_s{i}" for i in range(1, 9))
    if name.startswith("vertebrae_"):
        level = name.removeprefix("vertebrae_").lower()
        return ("sacrum",) if level == "s1" else (f"vertebra_{level}",)
    if name.startswith("rib_"):
        _, side, n = name.split("_")
        return (f"rib_{n}_{_SIDE[side]}",)
    if name.startswith("hip_"):
        s = _SIDE[name.removeprefix("hip_")]
        return (f"ilium_{s}", f"pubis_{s}", f"ischium_{s}")
    lobes = {"lung_upper_lobe_right": "lung_rul", "lung_middle_lobe_right": "lung_rml",
             "lung_lower_lobe_right": "lung_rll", "lung_upper_lobe_left": "lung_lul",
             "lung_lower_lobe_left": "lung_lll"}
    if name in lobes:
        return (lobes[name],)
    for prefix, site in (("kidney_cyst_", "kidney"), ("kidney_", "kidney"), ("adrenal_gland_", "adrenal"),
                         ("femur_", "femur"), ("humerus_", "humerus"), ("scapula_", "scapula"),
                         ("clavicula_", "clavicle")):
        if name.startswith(prefix):
            return (f"{site}_{_SIDE[name.removeprefix(prefix)]}",)
    single = {"spleen": "spleen", "pancreas": "pancreas", "prostate": "prostate", "thyroid_gland": "thyroid",
              "esophagus": "esophagus", "stomach": "stomach", "urinary_bladder": "bladder", "colon": "colon",
              "sacrum": "sacrum", "sternum": "sternum", "skull": "skull"}
    return (single[name],) if name in single else ()


@cache
def label_of() -> dict[str, int]:
    """Class name -> label (TotalSegmentator order, 1-based; 0 = no class)."""
    return {name: i + 1 for i, name in enumerate(CLASSES)}


@cache
def class_sites() -> dict[str, tuple[str, ...]]:
    """Class name -> taxonomy location ids a lesion inside it can have (empty: none of its own)."""
    return {name: _sites(name) for name in CLASSES}


def label_sites(label: int | None) -> tuple[str, ...]:
    """Taxonomy sites of an anatomy label (empty for 0, None, unknown labels and site-less classes)."""
    if not label or label > len(CLASSES):
        return ()
    return class_sites()[CLASSES[label - 1]]


@cache
def segmented_sites() -> frozenset[str]:
    """Taxonomy sites some class holds; every other site (nodal stations, pleura, breast, nasopharynx) can
    only be derived from position, so it is uncertain."""
    return frozenset(x for sites in class_sites().values() for x in sites)


def names_json() -> dict[str, str]:
    """The sidecar a segmenter writes beside its label map: ``{"1": "spleen", ...}``."""
    return {str(v): k for k, v in label_of().items()}
