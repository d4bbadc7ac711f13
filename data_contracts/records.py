"""Frozen, validated records every stage shares. Each round-trips through JSON unchanged.

Conventions: physical coordinates in millimetres in the LPS patient frame (DICOM/ITK), voxel indices in
array order (z, y, x) of the stored volume; identifiers that leave ingestion are pseudonyms.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from data_contracts import taxonomy
from data_contracts.findings import (
    CT_FINDINGS,
    CTFinding,
    Tracer,
    UptakeGrade,
    Vendor,
)

PSEUDO_PATIENT = r"^P[0-9a-f]{12}$"
PSEUDO_STUDY = r"^S[0-9a-f]{12}$"

PatientPseudonym = Annotated[str, Field(pattern=PSEUDO_PATIENT)]
StudyPseudonym = Annotated[str, Field(pattern=PSEUDO_STUDY)]
Vec3 = tuple[float, float, float]
Shape3 = tuple[int, int, int]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_enum_values=False)

    def to_json(self) -> str:
        return self.model_dump_json()

    @classmethod
    def from_json(cls, text: str | bytes):
        return cls.model_validate_json(text)


def _check_location(location_id: str) -> str:
    try:
        taxonomy.get(location_id)
    except KeyError as e:
        raise ValueError(e.args[0]) from None
    return location_id


class Acquisition(Record):
    """Scanner and protocol facts. No dates: only what the models and per-scanner reports need."""

    vendor: Vendor
    tracer: Tracer
    ct_spacing_mm: Vec3  # (x, y, z)
    ct_shape: Shape3  # (z, y, x)
    pet_spacing_mm: Vec3
    pet_shape: Shape3
    injected_dose_mbq: float = Field(gt=0)
    uptake_minutes: float = Field(gt=0)
    patient_weight_kg: float = Field(gt=0)
    source_format: str = Field(pattern=r"^(dicom|nifti)$")


class Study(Record):
    patient_id: PatientPseudonym
    study_id: StudyPseudonym
    acquisition: Acquisition

    @property
    def vendor(self) -> Vendor:
        return self.acquisition.vendor

    @property
    def tracer(self) -> Tracer:
        return self.acquisition.tracer


class Lesion(Record):
    """One lesion instance: a connected component of the lesion mask, with statistics."""

    study_id: StudyPseudonym
    instance: int = Field(ge=1)
    bbox: tuple[int, int, int, int, int, int]  # (z0, y0, x0, z1, y1, x1), half-open, stored grid
    centroid_mm: Vec3  # LPS
    volume_ml: float = Field(gt=0)
    voxels: int = Field(ge=1)
    suv_max: float = Field(ge=0)
    suv_mean: float = Field(ge=0)
    touches_edge: bool = False
    anatomy_label: int | None = None  # structure under the lesion (most voxels), when a label map exists

    @model_validator(mode="after")
    def _bbox_ordered(self):
        z0, y0, x0, z1, y1, x1 = self.bbox
        if not (z0 < z1 and y0 < y1 and x0 < x1):
            raise ValueError(f"empty or inverted bbox {self.bbox}")
        if self.suv_mean > self.suv_max + 1e-6:
            raise ValueError("suv_mean exceeds suv_max")
        return self


class TextSpan(Record):
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    text: str

    @model_validator(mode="after")
    def _ordered(self):
        if self.end < self.start:
            raise ValueError("span end before start")
        return self


class PetFinding(Record):
    tracer: Tracer | None  # None: the report names no tracer and none was given
    grade: UptakeGrade


class OtherSite(Record):
    """A place no hierarchy node names ("pericardial recess", "left gluteal fold"): the report's own words and
    the body region they lie in (None when the words do not tell). The finding sits on the region's open
    node (``hierarchy.region_node``)."""

    words: str = Field(min_length=1, max_length=200)
    region: taxonomy.Region | None = None


class StructuredFinding(Record):
    """One stated lesion. ``location_id`` is the finest hierarchy node the text supports (a localizer class,
    a further leaf or a coarse node, see ``data_contracts.hierarchy``); an "other site" finding sits on an
    open node (``body`` / ``region_<region>``) and carries the report's words in ``other_site``."""

    location_id: str
    laterality: taxonomy.Laterality
    ct_finding: CTFinding
    pet_finding: PetFinding
    suv_max: float | None = Field(default=None, ge=0)
    size_mm: float | None = Field(default=None, gt=0)  # long axis
    span: TextSpan | None = None
    other_site: OtherSite | None = None

    _loc = field_validator("location_id")(_check_location)

    @model_validator(mode="after")
    def _consistent(self):
        from data_contracts import hierarchy

        loc = taxonomy.get(self.location_id)
        if loc.laterality != self.laterality:
            raise ValueError(f"laterality {self.laterality.value} contradicts {loc.id} ({loc.laterality.value})")
        if hierarchy.is_open(loc.id):
            if self.other_site is None:
                raise ValueError(f"a finding at the open node {loc.id} must keep the report's words (other_site)")
            if hierarchy.region_node(self.other_site.region) != loc.id:
                raise ValueError(f"other_site region {self.other_site.region} does not match {loc.id}")
            return self  # an unnamed place: any CT finding may occur there
        if self.other_site is not None:
            raise ValueError(f"other_site is only for the open nodes, not {loc.id}")
        if loc.system not in CT_FINDINGS[self.ct_finding].systems:
            raise ValueError(f"CT finding {self.ct_finding.value} cannot occur in {loc.system.value} ({loc.id})")
        return self

    @property
    def caption(self) -> str:
        from data_contracts.caption import caption_for

        return caption_for(self)


class NegativeFinding(Record):
    """What a report says is not there ("no abnormal uptake in the liver"): the node it names (None: the
    whole body, "no distant metastases") and where it says so."""

    location_id: str | None = None
    span: TextSpan | None = None

    @field_validator("location_id")
    @classmethod
    def _known(cls, v: str | None) -> str | None:
        return None if v is None else _check_location(v)


class LesionTruth(Record):
    """Synthetic ground truth for one lesion instance; read by evaluation alone."""

    study_key: str  # the raw study folder name
    instance: int = Field(ge=1)
    location_id: str
    ct_finding: CTFinding
    pet_finding: PetFinding
    suv_max: float = Field(ge=0)
    size_mm: float = Field(gt=0)
    center_mm: Vec3  # LPS
    caption: str
    in_mask: bool = True  # False: the segmenter missed it (a reported finding with no mask)
    reported: bool = True  # False: a mask the report does not mention (a distractor for linking)

    _loc = field_validator("location_id")(_check_location)


class CaptionSample(Record):
    """One training/evaluation sample: one lesion mask and its canonical caption."""

    sample_id: str
    patient_id: PatientPseudonym
    study_id: StudyPseudonym
    instance: int = Field(ge=1)
    vendor: Vendor
    tracer: Tracer
    location_id: str
    ct_finding: CTFinding
    caption: str = Field(min_length=3)
    finding_index: int = Field(ge=0)  # the structured record this came from
    span: TextSpan | None = None  # the report text the finding was read from
    split: str | None = Field(default=None, pattern=r"^(train|val|test)$")

    _loc = field_validator("location_id")(_check_location)
