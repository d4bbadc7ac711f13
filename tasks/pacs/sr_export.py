"""The captions of a study as a DICOM Comprehensive 3D SR on TID 1500 (Measurement Report), with highdicom.

One measurement group (TID 1411, volumetric ROI) per lesion:
- the finding site, coded (``site_codes``: SNOMED CT where pydicom has the code, else the project's scheme);
- SUVmax (SUVbw, derivation "maximum", UCUM g/ml{SUVbw}) and the volume (ml);
- the localizer's top-5, one numeric item per rank: the confidence, with that location as its finding site;
- the caption as a text item (the project's concept "Lesion caption");
- a reference to its SEG segment (and through it the source CT series), the tracking UID the SEG carries;
- the algorithm's name and version (the registered model version).
Patient and study identity come from the source study (the evidence): this goes back to the hospital's archive.
A corrected report names the report it replaces (Predecessor Documents Sequence).
"""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import pydicom
from highdicom.sr import CodedConcept
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from tasks.pacs.seg_export import Algorithm, segment_numbers
from tasks.pacs.site_codes import SCHEME, SCHEME_VERSION, finding_site

SR_SERIES_NUMBER = 902
SUVBW = CodedConcept("126401", "DCM", "SUVbw")
SUVBW_UNIT = CodedConcept("g/ml{SUVbw}", "UCUM", "Standardized Uptake Value body weight")
MILLILITER = CodedConcept("ml", "UCUM", "milliliter")
UNITY = CodedConcept("1", "UCUM", "no units")
NO_LESIONS = CodedConcept("281900007", "SCT", "No abnormality detected")
CAPTION = CodedConcept("caption", SCHEME, "Lesion caption", scheme_version=SCHEME_VERSION)


def rank_concept(rank: int) -> CodedConcept:
    return CodedConcept(f"localizer-rank-{rank}", SCHEME, f"Localizer confidence, rank {rank}",
                        scheme_version=SCHEME_VERSION)


@dataclass(frozen=True)
class LesionReport:
    """What the SR says of one lesion: where, what, how sure, how big, how hot."""

    instance: int
    tracking_uid: str
    site: str  # location id of the finding site (the localizer's top-1, or a clinician's correction)
    caption: str
    top5: tuple[tuple[str, float], ...]  # (location id, confidence), best first
    suv_max: float
    volume_ml: float


def _group(lesion: LesionReport, segment: int, seg: hd.seg.Segmentation, ct_series_uid: str,
           algorithm: Algorithm) -> hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations:
    algo = hd.sr.AlgorithmIdentification(name=algorithm.name, version=algorithm.version)
    suv = hd.sr.Measurement(
        name=SUVBW, value=float(lesion.suv_max), unit=SUVBW_UNIT, algorithm_id=algo, derivation=codes.SCT.Maximum)
    volume = hd.sr.Measurement(name=codes.SCT.Volume, value=float(lesion.volume_ml), unit=MILLILITER,
                               algorithm_id=algo)
    ranks = [hd.sr.Measurement(name=rank_concept(k), value=float(conf), unit=UNITY, algorithm_id=algo,
                               finding_sites=[finding_site(loc)])
             for k, (loc, conf) in enumerate(lesion.top5, start=1)]
    group = hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=lesion.tracking_uid, identifier=f"lesion {lesion.instance}"),
        referenced_segment=hd.sr.ReferencedSegment(
            sop_class_uid=seg.SOPClassUID, sop_instance_uid=seg.SOPInstanceUID, segment_number=segment,
            source_series=hd.sr.SourceSeriesForSegmentation(ct_series_uid)),
        finding_type=codes.SCT.Lesion, algorithm_id=algo, finding_sites=[finding_site(lesion.site)],
        measurements=[suv, volume, *ranks])
    group[0].ContentSequence.append(hd.sr.TextContentItem(
        name=CAPTION, value=lesion.caption[:1024], relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    return group


def measurement_report(ct: list[pydicom.Dataset], seg: hd.seg.Segmentation | None, lesions: list[LesionReport],
                       algorithm: Algorithm, previous: pydicom.Dataset | None = None,
                       series_number: int = SR_SERIES_NUMBER) -> hd.sr.Comprehensive3DSR:
    """The TID 1500 SR of a study's captions. ``seg``: the lesions' SEG (None only for a lesion-free study,
    whose report has one group saying "no abnormality detected"); ``previous``: the SR this one corrects."""
    if lesions and seg is None:
        raise ValueError("lesions need their SEG")
    numbers = segment_numbers([les.instance for les in lesions])
    groups = [_group(les, numbers[les.instance], seg, ct[0].SeriesInstanceUID, algorithm) for les in lesions]
    if not groups:  # a lesion-free study: one TID 1501 group whose finding is "no abnormality detected"
        groups = [hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="no lesions"),
            qualitative_evaluations=[hd.sr.QualitativeEvaluation(name=codes.DCM.Finding, value=NO_LESIONS)])]
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name=algorithm.name, model_name=algorithm.version,
            manufacturer_name=algorithm.manufacturer))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.LN.PETWholeBody, imaging_measurements=groups,
        title=codes.DCM.ImagingMeasurementReport)
    evidence = [*ct, *([seg] if seg is not None else [])]
    return hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report[0], series_instance_uid=generate_uid(), series_number=series_number,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=algorithm.manufacturer,
        is_complete=True, previous_versions=[previous] if previous is not None else None,
        series_description="petcap lesion captions" + (" (corrected)" if previous is not None else ""))
