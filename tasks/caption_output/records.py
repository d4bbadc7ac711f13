"""What captioning one study answers: per lesion the localizer's top-5, the CT window and prompt the captioner saw,
and the caption; per study its pseudonym, vendor, tracer, status ("captioned" | "no lesions"), the models used and
the seconds per step. JSON round trip: ``StudyCaptions.to_json`` / ``StudyCaptions.from_json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

NO_LESIONS = "no lesions"
CAPTIONED = "captioned"


@dataclass(frozen=True)
class LesionCaption:
    """One lesion's answer: what the localizer said, what the captioner was shown, and the caption."""

    instance: int
    centroid_mm: tuple[float, float, float]
    volume_ml: float
    suv_max: float
    top5: list[dict]  # [{"location_id", "location", "confidence"}], best first
    window: str  # CT window the captioner saw (DWS): lung | bone | soft_tissue
    prompt: str  # CGLP prompt words ("" when the model uses none)
    caption: str


@dataclass
class StudyCaptions:
    study_id: str  # pseudonym in the private store (the folder name never leaves ingestion)
    vendor: str
    tracer: str
    lesions: list[LesionCaption] = field(default_factory=list)
    status: str = CAPTIONED  # "no lesions" for a study whose lesion mask is empty
    models: dict = field(default_factory=dict)  # model version or checkpoint names, method parameters
    seconds: dict = field(default_factory=dict)  # ingest / patches / models / outputs / total
    # clinicians' corrections, by lesion instance: {location_id, previous_location_id, corrected_by, at,
    # model_version} (``serving.hospital_loop.correct_lesion``)
    corrections: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, d: dict) -> StudyCaptions:
        lesions = [LesionCaption(**{**x, "centroid_mm": tuple(x["centroid_mm"])}) for x in d.get("lesions", [])]
        return cls(**{**d, "lesions": lesions})
