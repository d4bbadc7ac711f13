"""Raw writers: files a hospital would deliver, geometry that survives the trip, byte-identical reruns."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import CTImageStorage, PositronEmissionTomographyImageStorage

from data_contracts.segmentation import names_json
from data_contracts.findings import Tracer, Vendor
from data_contracts.tables import MANIFEST
from tasks.synth.raw import RawStudy, Volume
from tasks.synth.writers import F18_HALF_LIFE_S, activity_bq_per_ml, write_raw_study

ROTATED = (0.9950041652780258, -0.09983341664682815, 0.0, 0.09983341664682815, 0.9950041652780258, 0.0,
           0.0, 0.0, 1.0)  # 0.1 rad about z: a patient lying slightly rotated on the table


def _study(fmt: str, vendor: Vendor = Vendor.siemens, direction=ROTATED) -> RawStudy:
    rng = np.random.default_rng(7)
    shape, spacing, origin = (10, 16, 20), (1.5, 1.2, 3.0), (-15.0, 20.0, -400.0)
    ct = rng.integers(-1100, 3500, shape).astype(np.int16)  # beyond 12-bit range on purpose
    mask = np.zeros(shape, np.uint8)
    mask[3:6, 4:8, 5:9] = 1
    anatomy = rng.integers(0, 151, shape).astype(np.uint8)  # a segmenter label map is uint8 as written
    pet = rng.gamma(2.0, 1.0, (5, 8, 10)).astype(np.float32)
    pet_spacing = (3.0, 2.4, 6.0)
    return RawStudy(
        study_key="HOSP-EXPORT-17", patient_id="MRN555", patient_name="ROE^RICHARD", birth_date="19490101",
        sex="M", age=75, height_m=1.81, weight_kg=92.4, vendor=vendor, tracer=Tracer.psma,
        injected_dose_mbq=250.0, injection_time=datetime(2023, 11, 2, 9, 15, 30),
        acquisition_time=datetime(2023, 11, 2, 10, 27, 0),
        ct=Volume(ct, spacing, origin, direction), pet=Volume(pet, pet_spacing, origin, direction),
        lesions=Volume(mask, spacing, origin, direction), anatomy=Volume(anatomy, spacing, origin, direction),
        source_format=fmt, report="1. Lesion in the liver.",
    )


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("fmt", ["dicom", "nifti"])
def test_same_input_gives_byte_identical_files(tmp_path, fmt):
    a = write_raw_study(_study(fmt), tmp_path / "a")
    b = write_raw_study(_study(fmt), tmp_path / "b")
    assert a == b
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert files_a.keys() == files_b.keys() and len(files_a) >= 6
    assert all(files_a[k] == files_b[k] for k in files_a)
    assert not [k for k in files_a if ".tmp" in k]  # atomic writes leave no temporaries


def _read(path: Path) -> sitk.Image:
    return sitk.ReadImage(str(path))


def test_nifti_geometry_and_values_survive(tmp_path):
    study = _study("nifti", Vendor.united_imaging)
    row = write_raw_study(study, tmp_path)
    MANIFEST.frame([row])  # a valid manifest row
    assert (row.ct_path, row.pet_path) == ("studies/HOSP-EXPORT-17/ct.nii.gz", "studies/HOSP-EXPORT-17/pet.nii.gz")
    for rel, volume, expected in [(row.ct_path, study.ct, study.ct.array),
                                  (row.lesions_path, study.lesions, study.lesions.array),
                                  (row.anatomy_path, study.anatomy, study.anatomy.array),
                                  (row.pet_path, study.pet, activity_bq_per_ml(study))]:
        image = _read(tmp_path / rel)
        assert image.GetSpacing() == pytest.approx(volume.spacing)
        assert image.GetOrigin() == pytest.approx(volume.origin, abs=1e-4)
        assert image.GetDirection() == pytest.approx(volume.direction, abs=1e-6)
        np.testing.assert_array_equal(sitk.GetArrayFromImage(image), expected)
    assert _read(tmp_path / row.ct_path).GetPixelID() == sitk.sitkInt16
    assert _read(tmp_path / row.lesions_path).GetPixelID() == sitk.sitkUInt8
    assert _read(tmp_path / row.anatomy_path).GetPixelID() == sitk.sitkUInt8  # as TotalSegmentator writes it
    # NIfTI itself is RAS: the affine flips x and y of LPS.
    affine = nib.load(str(tmp_path / row.ct_path)).affine
    np.testing.assert_allclose(affine[:3, 3], [15.0, -20.0, -400.0])
    assert nib.aff2axcodes(affine)[2] == "S"


def test_pet_sidecar_and_activity(tmp_path):
    study = _study("nifti", Vendor.ge)
    row = write_raw_study(study, tmp_path)
    meta = json.loads((tmp_path / "studies/HOSP-EXPORT-17/pet.json").read_text())
    assert meta["Units"] == "Bq/mL" and meta["InjectedRadioactivityUnits"] == "MBq"
    assert meta["InjectedRadioactivity"] == pytest.approx(250.0) and meta["BodyWeight"] == pytest.approx(92.4)
    assert meta["TracerRadionuclide"] == "F18" and meta["ImageDecayCorrected"] is True
    uptake = (study.acquisition_time - study.injection_time).total_seconds()
    assert meta["ScanStart"] - meta["InjectionStart"] == pytest.approx(uptake)
    assert meta["ImageDecayCorrectionTime"] == meta["ScanStart"]
    decayed = 250e6 * 2 ** (-uptake / F18_HALF_LIFE_S)
    pet = sitk.GetArrayFromImage(_read(tmp_path / row.pet_path))
    np.testing.assert_allclose(pet, study.pet.array * decayed / 92400.0, rtol=1e-6)
    assert json.loads((tmp_path / row.anatomy_path.replace(".nii.gz", ".json")).read_text()) == names_json()
    assert (tmp_path / row.report_path).read_text() == study.report


def _series(folder: Path) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(f) for f in sorted(folder.iterdir())]


def test_dicom_tags_read_in_pydicom_and_simpleitk(tmp_path):
    study = _study("dicom")
    row = write_raw_study(study, tmp_path)
    assert (row.ct_path, row.pet_path) == ("studies/HOSP-EXPORT-17/ct", "studies/HOSP-EXPORT-17/pet")
    ct, pet = _series(tmp_path / row.ct_path), _series(tmp_path / row.pet_path)
    assert (len(ct), len(pet)) == (10, 5)
    c, p = ct[0], pet[0]
    assert (c.Modality, p.Modality) == ("CT", "PT")
    assert (c.SOPClassUID, p.SOPClassUID) == (CTImageStorage, PositronEmissionTomographyImageStorage)
    assert c.file_meta.MediaStorageSOPInstanceUID == c.SOPInstanceUID
    assert c.Manufacturer == "Siemens" and c.ManufacturerModelName
    assert c.StudyInstanceUID == p.StudyInstanceUID and c.FrameOfReferenceUID == p.FrameOfReferenceUID
    assert c.SeriesInstanceUID != p.SeriesInstanceUID and len({d.SOPInstanceUID for d in ct + pet}) == 15
    assert str(c.PatientName) == "ROE^RICHARD" and c.PatientID == "MRN555" and c.PatientBirthDate == "19490101"
    assert float(p.PatientWeight) == pytest.approx(92.4) and float(p.PatientSize) == pytest.approx(1.81)
    assert [float(v) for v in c.PixelSpacing] == [1.2, 1.5]  # row spacing (y) first
    assert (float(c.RescaleIntercept), c.BitsStored, c.PixelRepresentation) == (-1024.0, 12, 0)
    assert (p.Units, p.DecayCorrection) == ("BQML", "START") and "DECY" in p.CorrectedImage
    info = p.RadiopharmaceuticalInformationSequence[0]
    assert float(info.RadionuclideTotalDose) == pytest.approx(250e6)
    assert float(info.RadionuclideHalfLife) == pytest.approx(6586.2)
    assert info.RadiopharmaceuticalStartDateTime.startswith("20231102091530")
    assert (p.SeriesDate, p.SeriesTime[:6]) == ("20231102", "102700")
    assert len({d.RescaleSlope for d in pet}) == 5  # one slope per slice

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / row.ct_path)))
    image = reader.Execute()
    np.testing.assert_array_equal(sitk.GetArrayFromImage(image), np.clip(study.ct.array, -1024, 3071))
    assert image.GetSpacing() == pytest.approx(study.ct.spacing)
    assert image.GetOrigin() == pytest.approx(study.ct.origin, abs=1e-3)
    assert image.GetDirection() == pytest.approx(study.ct.direction, abs=1e-5)

    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / row.pet_path)))
    reader.SetOutputPixelType(sitk.sitkFloat32)
    activity = sitk.GetArrayFromImage(reader.Execute())
    expected = activity_bq_per_ml(study)
    slope = expected.max(axis=(1, 2), keepdims=True) / 32767
    assert np.all(np.abs(activity - expected) <= slope)  # within one quantisation step per slice


@pytest.mark.parametrize("vendor, intercept, signed", [(Vendor.ge, -1024.0, 1), (Vendor.united_imaging, 0.0, 1)])
def test_dicom_ct_storage_per_vendor(tmp_path, vendor, intercept, signed):
    study = _study("dicom", vendor, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    row = write_raw_study(study, tmp_path)
    first = pydicom.dcmread(sorted((tmp_path / row.ct_path).iterdir())[0])
    assert (float(first.RescaleIntercept), first.PixelRepresentation) == (intercept, signed)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(tmp_path / row.ct_path)))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(reader.Execute()), study.ct.array)
