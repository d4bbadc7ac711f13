from datetime import datetime, timezone

import pytest
from pydantic import ValidationError

from data_contracts import tables
from data_contracts.caption import caption_text
from data_contracts.findings import (
    CTFinding,
    Tracer,
    UptakeGrade,
    Vendor,
    grade_for_suv,
)
from data_contracts.records import (
    Acquisition,
    CaptionSample,
    Lesion,
    LesionTruth,
    PetFinding,
    StructuredFinding,
    Study,
    TextSpan,
)

FDG_MOD = PetFinding(tracer=Tracer.fdg, grade=UptakeGrade.moderate)


def _study() -> Study:
    acq = Acquisition(vendor=Vendor.ge, tracer=Tracer.psma, ct_spacing_mm=(0.98, 0.98, 2.5), ct_shape=(700, 512, 512),
                      pet_spacing_mm=(4.0, 4.0, 3.0), pet_shape=(580, 192, 192), injected_dose_mbq=250,
                      uptake_minutes=62, patient_weight_kg=81, source_format="nifti")
    return Study(patient_id="P0123456789ab", study_id="S0123456789ab", acquisition=acq)


@pytest.mark.parametrize(
    "record",
    [
        _study(),
        Lesion(study_id="S0123456789ab", instance=3, bbox=(1, 2, 3, 4, 5, 6), centroid_mm=(1.5, -2, 300),
               volume_ml=2.5, voxels=100, suv_max=9.1, suv_mean=4.2, touches_edge=True, anatomy_label=12),
        StructuredFinding(location_id="rib_7_r", laterality="right", ct_finding="osteoblastic", pet_finding=FDG_MOD,
                          suv_max=8.2, size_mm=21, span=TextSpan(start=10, end=40, text="x" * 30)),
        LesionTruth(study_key="study_0001", instance=1, location_id="lung_rul", ct_finding="ground_glass_opacity",
                    pet_finding=FDG_MOD, suv_max=3.1, size_mm=12, center_mm=(1, 2, 3), caption="c", reported=False),
        CaptionSample(sample_id="S0123456789ab-1", patient_id="P0123456789ab", study_id="S0123456789ab", instance=1,
                      vendor=Vendor.siemens, tracer=Tracer.fdg, location_id="vertebra_t7", ct_finding="osteolytic",
                      caption="T7 vertebral body, osteolytic destruction with increased FDG uptake", finding_index=0,
                      split="train"),
    ],
)
def test_json_round_trip_and_frozen(record):
    back = type(record).from_json(record.to_json())
    assert back == record
    with pytest.raises(ValidationError):
        setattr(record, next(iter(type(record).model_fields)), None)


def test_validation_names_the_problem():
    with pytest.raises(ValidationError, match="laterality left contradicts rib_7_r"):
        StructuredFinding(location_id="rib_7_r", laterality="left", ct_finding="osteolytic", pet_finding=FDG_MOD)
    with pytest.raises(ValidationError, match="cannot occur in bone"):
        StructuredFinding(location_id="vertebra_t7", laterality="midline", ct_finding="ground_glass_opacity",
                          pet_finding=FDG_MOD)
    with pytest.raises(ValidationError, match="unknown taxonomy location id 'rib_13_r'"):
        StructuredFinding(location_id="rib_13_r", laterality="right", ct_finding="osteolytic", pet_finding=FDG_MOD)
    with pytest.raises(ValidationError, match="pattern"):
        Study(patient_id="MRN12345", study_id="S0123456789ab", acquisition=_study().acquisition)
    with pytest.raises(ValidationError, match="empty or inverted bbox"):
        Lesion(study_id="S0123456789ab", instance=1, bbox=(5, 0, 0, 5, 1, 1), centroid_mm=(0, 0, 0), volume_ml=1,
               voxels=1, suv_max=1, suv_mean=1)


def test_canonical_caption():
    assert caption_text("vertebra_t7", CTFinding.osteolytic, FDG_MOD) == \
        "T7 vertebral body, osteolytic destruction with increased FDG uptake"
    psma = PetFinding(tracer=Tracer.psma, grade=grade_for_suv(14.0))
    assert caption_text("rib_7_l", CTFinding.no_ct_correlate, psma) == \
        "left 7th rib, intensely increased PSMA uptake without CT correlate"
    assert grade_for_suv(3.99) is UptakeGrade.mild and grade_for_suv(4.0) is UptakeGrade.moderate
    assert grade_for_suv(10.0) is UptakeGrade.intense


def test_table_round_trip_and_errors(tmp_path):
    rows = [tables.StudyRow(**_study().model_dump(), content_hash="a" * 64, store_path="S0123456789ab",
                            lesion_count=4, ingested_at=datetime(2026, 1, 1, tzinfo=timezone.utc))]
    df = tables.STUDIES.frame(rows)
    assert "acquisition__vendor" in df.columns
    tables.STUDIES.write(df, tmp_path / "studies.parquet")
    assert tables.STUDIES.records(tables.STUDIES.read(tmp_path / "studies.parquet")) == rows
    bad = df.copy()
    bad.loc[0, "acquisition__injected_dose_mbq"] = -1
    with pytest.raises(tables.TableError, match=r"'studies' .*row 0, field acquisition.injected_dose_mbq"):
        tables.STUDIES.write(bad, tmp_path / "bad.parquet")
    assert not (tmp_path / "bad.parquet").exists()
    with pytest.raises(tables.TableError, match="duplicate key"):
        tables.STUDIES.validate(df.iloc[[0, 0]], "twice")
    with pytest.raises(tables.TableError, match="missing columns"):
        tables.STUDIES.validate(df.drop(columns=["content_hash"]), "x")
