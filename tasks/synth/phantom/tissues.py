"""Tissues and labels: the CT and PET properties of every label the phantom paints.

Every public structure of ``data_contracts.anatomy`` keeps its label; extra tissues the segmenter does not
name (airway, marrow, heart chambers, bowel gas, the table, ...) get labels from ``EXTRA_BASE`` on.
``anatomy_lut()`` maps internal to public labels (extras to their parent structure or 0) and
``TISSUES``/``tissue_of_label()`` give each label its CT and PET tissue class.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np

from data_contracts import anatomy

EXTRA_BASE = 200  # first internal label of a tissue the segmenter does not name

@dataclass(frozen=True)
class Tissue:
    hu: float  # mean CT number
    hu_sd: float  # tissue texture (HU), on top of scanner noise
    fdg: float  # physiological SUV, FDG
    psma: float  # physiological SUV, PSMA
    bone: bool = False  # gets a cortical rim in CT
    suv_sd: float = 0.15  # between-patient log-SD of the SUV


TISSUES: dict[str, Tissue] = {
    "air": Tissue(-1000, 0, 0.0, 0.0, suv_sd=0),
    "gas": Tissue(-950, 20, 0.0, 0.0, suv_sd=0),
    "lung": Tissue(-850, 30, 0.45, 0.3),
    "fat": Tissue(-100, 10, 0.35, 0.2),
    "muscle": Tissue(45, 8, 0.75, 0.6),
    "soft": Tissue(40, 8, 1.0, 0.8),
    "brain": Tissue(33, 5, 7.5, 0.15, suv_sd=0.2),
    "cord": Tissue(35, 5, 1.2, 0.3),
    "csf": Tissue(8, 4, 0.2, 0.1),
    "blood": Tissue(42, 5, 1.8, 1.2),
    "myocardium": Tissue(45, 5, 4.0, 1.6, suv_sd=0.6),
    "liver": Tissue(55, 6, 2.0, 6.0),
    "spleen": Tissue(48, 5, 1.9, 7.0),
    "kidney": Tissue(33, 6, 2.8, 42.0, suv_sd=0.2),
    "urine": Tissue(8, 4, 20.0, 30.0, suv_sd=0.6),
    "adrenal": Tissue(30, 6, 1.6, 2.0),
    "pancreas": Tissue(40, 6, 1.6, 1.8),
    "stomach": Tissue(45, 6, 2.2, 2.5, suv_sd=0.3),
    "bowel": Tissue(32, 10, 2.0, 6.0, suv_sd=0.3),
    "content": Tissue(15, 15, 0.6, 1.0),
    "colon": Tissue(25, 20, 2.0, 1.8, suv_sd=0.35),
    "thyroid": Tissue(95, 8, 1.3, 1.6),
    "salivary": Tissue(15, 8, 1.9, 14.0, suv_sd=0.25),
    "mucosa": Tissue(45, 6, 3.5, 2.5, suv_sd=0.25),
    "node": Tissue(35, 6, 1.1, 0.9),
    "prostate": Tissue(40, 6, 1.9, 2.2),
    "uterus": Tissue(45, 6, 2.6, 1.5),
    "breast": Tissue(-30, 25, 0.9, 0.5),
    "thymus_fat": Tissue(-90, 10, 0.5, 0.3),
    "disc": Tissue(85, 8, 0.6, 0.4),
    "cartilage": Tissue(120, 10, 0.5, 0.4),
    "eye": Tissue(12, 4, 0.4, 0.3),
    "bile": Tissue(10, 4, 0.4, 0.5),
    "marrow_fat": Tissue(-40, 25, 0.8, 0.5),
    "bone_spine": Tissue(200, 35, 1.6, 0.9, bone=True),  # cancellous, age 60
    "bone_pelvis": Tissue(190, 35, 1.4, 0.8, bone=True),
    "bone_flat": Tissue(420, 50, 1.1, 0.7, bone=True),
    "bone_long": Tissue(380, 50, 0.9, 0.6, bone=True),
    "bone_dense": Tissue(1250, 80, 0.8, 0.5, bone=True),
    "skull": Tissue(950, 120, 0.9, 0.6, bone=True),
    "table": Tissue(-250, 40, 0.0, 0.0, suv_sd=0),
    "lacrimal": Tissue(30, 6, 1.3, 12.0, suv_sd=0.3),
    "duodenum": Tissue(35, 8, 2.4, 14.0, suv_sd=0.35),
    "brown_fat": Tissue(-75, 15, 0.35, 0.2),  # FDG uptake drawn per patient when activated
}

# Public structures -> tissue. Node stations are fat with normal nodes painted inside them.
_PUBLIC_TISSUE: dict[str, str] = {
    "body_fat": "fat", "muscle": "muscle", "brain": "brain", "spinal_cord": "cord", "heart": "myocardium",
    "aorta": "blood", "trachea": "air", "mediastinal_fat": "fat", "small_bowel": "bowel",
    "uterus": "uterus", "intervertebral_disc": "disc", "sacrum": "bone_pelvis", "sternum": "bone_flat",
    "skull": "skull", "spleen": "spleen", "pancreas": "pancreas", "prostate": "prostate",
    "nasopharynx": "mucosa", "thyroid": "thyroid", "esophagus": "soft", "stomach": "stomach",
    "bladder": "urine", "colon": "colon",
}


def _public_tissue(name: str) -> str:
    if name in _PUBLIC_TISSUE:
        return _PUBLIC_TISSUE[name]
    prefix_rules = [
        ("ln_", "fat"), ("lung_", "lung"), ("pleura_", "lung"), ("vertebra_", "bone_spine"),
        ("rib_", "bone_flat"), ("ilium_", "bone_pelvis"), ("pubis_", "bone_pelvis"), ("ischium_", "bone_pelvis"),
        ("femur_", "bone_long"), ("humerus_", "bone_long"), ("tibia_", "bone_long"), ("scapula_", "bone_flat"),
        ("clavicle_", "bone_flat"), ("liver_segment_", "liver"), ("kidney_", "kidney"), ("adrenal_", "adrenal"),
        ("breast_", "breast"), ("parotid_", "salivary"), ("submandibular_", "salivary"),
    ]
    for prefix, tissue in prefix_rules:
        if name.startswith(prefix):
            return tissue
    raise KeyError(f"no tissue for structure {name!r}")


LOBES = ("lung_upper_lobe_right", "lung_middle_lobe_right", "lung_lower_lobe_right", "lung_upper_lobe_left",
         "lung_lower_lobe_left")


def _node_station_names() -> list[str]:
    return [s for s in anatomy.structures() if s.startswith("ln_")]


def _extras() -> list[tuple[str, str | None, str]]:
    """Internal tissues beyond the public structures: (name, public parent or None, tissue)."""
    ex: list[tuple[str, str | None, str]] = [
        ("table", None, "table"), ("airway", None, "air"), ("airway_wall", None, "soft"),
        ("sinus_air", None, "air"), ("eye", None, "eye"), ("mandible", None, "bone_dense"),
        ("vessel", None, "blood"), ("heart_blood", "heart", "blood"), ("gallbladder", None, "bile"),
        ("stomach_content", "stomach", "content"), ("stomach_gas", "stomach", "gas"),
        ("bowel_gas", "small_bowel", "gas"), ("colon_gas", "colon", "gas"), ("canal", None, "csf"),
        ("cartilage", None, "cartilage"), ("limb_bone", None, "bone_long"), ("limb_marrow", None, "marrow_fat"),
        ("nasopharynx_air", "nasopharynx", "air"), ("soft", None, "soft"), ("tonsil", None, "mucosa"),
    ]
    for lobe in LOBES:  # pulmonary vessels inside a lobe belong to it
        ex.append((f"vessel_{lobe}", lobe, "blood"))
    for side in ("left", "right"):
        ex.append((f"kidney_pelvis_{side}", f"kidney_{side}", "urine"))
        for bone in ("femur", "humerus", "tibia"):
            ex.append((f"{bone}_cortex_{side}", f"{bone}_{side}", "bone_dense"))
            ex.append((f"{bone}_marrow_{side}", f"{bone}_{side}", "marrow_fat"))
    for st in _node_station_names():
        ex.append((f"node_{st}", st, "node"))
    ex += [("lacrimal", None, "lacrimal"), ("duodenum", "small_bowel", "duodenum"),
           ("brown_fat", "body_fat", "brown_fat")]
    return ex


@cache
def internal_labels() -> dict[str, int]:
    """Every internal label: public structures keep theirs, extras count up from ``EXTRA_BASE``."""
    out = dict(anatomy.label_of())
    if max(out.values()) >= EXTRA_BASE:
        raise AssertionError("public labels reach EXTRA_BASE; raise it")
    for i, (name, _, _) in enumerate(_extras()):
        out[name] = EXTRA_BASE + i
    return out


@cache
def n_labels() -> int:
    return max(internal_labels().values()) + 1


@cache
def tissue_of_label() -> tuple[str, ...]:
    """Tissue name per internal label (label 0 = air outside the body)."""
    out = ["air"] * n_labels()
    for name in anatomy.structures():
        out[anatomy.label_of()[name]] = _public_tissue(name)
    lab = internal_labels()
    for name, _, tissue in _extras():
        out[lab[name]] = tissue
    return tuple(out)


@cache
def anatomy_lut() -> np.ndarray:
    """uint16 LUT: internal label -> public anatomy label (what a segmenter's label map shows)."""
    lut = np.zeros(n_labels(), np.uint16)
    pub = anatomy.label_of()
    for name, lbl in pub.items():
        lut[lbl] = lbl
    lab = internal_labels()
    for name, parent, _ in _extras():
        lut[lab[name]] = pub[parent] if parent else 0
    return lut


def tissue_lut(values: dict[str, float], dtype=np.float32) -> np.ndarray:
    """A per-label LUT from a per-tissue table (``values[tissue]``)."""
    return np.array([values[t] for t in tissue_of_label()], dtype=dtype)

