"""Vocabularies of CT and PET findings, and the one canonical caption a structured finding becomes."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from data_contracts.taxonomy import System


class Tracer(str, Enum):
    fdg = "FDG"
    psma = "PSMA"


class Vendor(str, Enum):
    siemens = "Siemens"
    ge = "GE"
    united_imaging = "United Imaging"

    @property
    def slug(self) -> str:
        """Lower-case key for metric names and file names (``bleu4/siemens``)."""
        return {"Siemens": "siemens", "GE": "ge", "United Imaging": "united_imaging"}[self.value]


class CTFinding(str, Enum):
    solid_nodule = "solid_nodule"
    ground_glass_opacity = "ground_glass_opacity"
    consolidation = "consolidation"
    mass = "mass"
    enlarged_lymph_node = "enlarged_lymph_node"
    non_enlarged_lymph_node = "non_enlarged_lymph_node"
    osteolytic = "osteolytic"
    osteoblastic = "osteoblastic"
    mixed_bone_lesion = "mixed_bone_lesion"
    hypodense_lesion = "hypodense_lesion"
    soft_tissue_thickening = "soft_tissue_thickening"
    no_ct_correlate = "no_ct_correlate"


@dataclass(frozen=True)
class CTFindingInfo:
    phrase: str  # the words a caption uses
    synonyms: tuple[str, ...]  # what reports write
    systems: tuple[System, ...]  # where the finding can occur


CT_FINDINGS: dict[CTFinding, CTFindingInfo] = {
    CTFinding.solid_nodule: CTFindingInfo(
        "solid nodule", ("solid nodule", "pulmonary nodule", "nodule", "solid pulmonary nodule", "solid lesion",
                         "spiculated nodule", "nodular opacity"), (System.lung,)),
    CTFinding.ground_glass_opacity: CTFindingInfo(
        "ground-glass opacity", ("ground-glass opacity", "ground glass opacity", "GGO", "ground-glass nodule",
                                 "ground glass nodule", "GGN", "ground-glass", "subsolid nodule"), (System.lung,)),
    CTFinding.consolidation: CTFindingInfo(
        "consolidation", ("consolidation", "consolidative opacity", "airspace consolidation", "consolidative"),
        (System.lung,)),
    CTFinding.mass: CTFindingInfo(
        "soft-tissue mass", ("mass", "soft-tissue mass", "soft tissue mass", "tumour", "tumor", "mass lesion",
                             "space-occupying lesion"), (System.lung, System.organ)),
    CTFinding.enlarged_lymph_node: CTFindingInfo(
        "enlarged lymph node", ("enlarged lymph node", "enlarged node", "lymphadenopathy", "adenopathy",
                                "enlarged", "bulky node", "nodal mass", "lymph node enlargement"),
        (System.lymph_node,)),
    CTFinding.non_enlarged_lymph_node: CTFindingInfo(
        "non-enlarged lymph node", ("non-enlarged", "not enlarged", "subcentimetre", "subcentimeter",
                                    "normal-sized", "normal sized", "small node", "sub-centimetre"),
        (System.lymph_node,)),
    CTFinding.osteolytic: CTFindingInfo(
        "osteolytic destruction", ("osteolytic", "lytic", "osteolysis", "osteolytic destruction", "lytic lesion",
                                   "bone destruction", "destructive"), (System.bone,)),
    CTFinding.osteoblastic: CTFindingInfo(
        "osteoblastic change", ("osteoblastic", "sclerotic", "blastic", "osteosclerotic", "sclerosis",
                                "osteoblastic change"), (System.bone,)),
    CTFinding.mixed_bone_lesion: CTFindingInfo(
        "mixed osteolytic and osteoblastic change", ("mixed lytic-sclerotic", "mixed lytic and sclerotic",
                                                     "mixed osteolytic-osteoblastic", "mixed", "lytic-sclerotic"),
        (System.bone,)),
    CTFinding.hypodense_lesion: CTFindingInfo(
        "hypodense lesion", ("hypodense lesion", "hypodense", "hypoattenuating", "low-attenuation lesion",
                             "hypodensity", "low attenuation"), (System.organ,)),
    CTFinding.soft_tissue_thickening: CTFindingInfo(
        "soft-tissue thickening", ("soft-tissue thickening", "soft tissue thickening", "wall thickening",
                                   "thickening", "mucosal thickening"), (System.organ,)),
    CTFinding.no_ct_correlate: CTFindingInfo(
        "no CT correlate", ("no CT correlate", "no morphological correlate", "no correlate on CT",
                            "without CT correlate", "no corresponding CT abnormality", "CT occult",
                            "no structural abnormality"),
        (System.lung, System.bone, System.organ, System.lymph_node)),
}


class UptakeGrade(str, Enum):
    mild = "mild"
    moderate = "moderate"
    intense = "intense"


# SUVmax thresholds between grades: mild < 4 <= moderate < 10 <= intense.
UPTAKE_THRESHOLDS = (4.0, 10.0)

UPTAKE_PHRASES: dict[UptakeGrade, str] = {
    UptakeGrade.mild: "mildly increased",
    UptakeGrade.moderate: "increased",
    UptakeGrade.intense: "intensely increased",
}

UPTAKE_SYNONYMS: dict[UptakeGrade, tuple[str, ...]] = {
    UptakeGrade.mild: ("mildly increased", "mild", "low-grade", "slightly increased", "faint", "mildly avid",
                       "low grade"),
    UptakeGrade.moderate: ("increased", "moderate", "moderately increased", "avid", "moderately avid",
                           "hypermetabolic", "elevated"),
    UptakeGrade.intense: ("intensely increased", "intense", "markedly increased", "highly avid", "intensely avid",
                          "strongly increased", "marked", "very high"),
}


def grade_for_suv(suv_max: float) -> UptakeGrade:
    lo, hi = UPTAKE_THRESHOLDS
    if suv_max < lo:
        return UptakeGrade.mild
    return UptakeGrade.moderate if suv_max < hi else UptakeGrade.intense


def ct_findings_for(system: System) -> tuple[CTFinding, ...]:
    return tuple(f for f, info in CT_FINDINGS.items() if system in info.systems)
