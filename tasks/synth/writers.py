"""Write one synthetic study to disk the way a hospital delivers it: DICOM series or NIfTI, masks, report.

``write_raw_study`` turns a ``RawStudy`` (volumes in memory, (z, y, x) arrays with ITK/LPS geometry) into
the files of a raw drop folder (``data_contracts.settings.RawLayout``) and returns the study's manifest row:

* CT and PET as DICOM series (pydicom, one file per slice, real tags: patient, UIDs, geometry, rescale,
  Units BQML, DecayCorrection START, RadiopharmaceuticalInformationSequence) when
  ``study.source_format == "dicom"``; otherwise ``ct.nii.gz`` (HU, int16) and ``pet.nii.gz`` (Bq/mL, float32)
  with a PET-BIDS ``pet.json`` sidecar.
* ``lesions.nii.gz``: a binary uint8 mask on the CT grid, as nnU-Net writes its predictions.
* ``anatomy.nii.gz`` (uint8 labels) + ``anatomy.json`` (label -> class), as a whole-body organ segmenter
  (TotalSegmentator) writes them (``data_contracts.segmentation``: its classes, no lymph-node stations).
* the free-text report.

PET voxels hold activity concentration in Bq/mL, the scanner's unit: SUVbw x decayed dose (Bq) / weight (g),
with the injected dose decayed from injection to the PET series start (the decay-correction reference).
Ingestion inverts exactly this.

Everything is deterministic: UIDs derive from the study key (``generate_uid(entropy_srcs=...)``), no wall
clock enters a header, and gzip streams carry mtime 0 and no file name, so one seed gives byte-identical
files. Each file is written to a temporary name in its folder and renamed into place.
"""

from __future__ import annotations

import gzip
import json
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import nibabel as nib
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    PositronEmissionTomographyImageStorage,
    generate_uid,
)

from data_contracts.atomic import atomic_open
from data_contracts.segmentation import names_json
from data_contracts.findings import Tracer, Vendor
from data_contracts.settings import RawLayout
from data_contracts.tables import ManifestRow
from tasks.synth.raw import RawStudy, Volume

F18_HALF_LIFE_S = 6586.2  # DICOM RadionuclideHalfLife of fluorine-18 (both tracers here are 18F-labelled)
F18_POSITRON_FRACTION = 0.9673
NIFTI_GZIP_LEVEL = 1  # full-scale CT is ~370 MB raw: level 1 is ~3x faster than 6 for ~10 % more bytes
NIFTI_VOX_OFFSET = 352  # 348-byte NIfTI-1 header + 4-byte extension flag; voxels follow
GZIP_BLOCK = 1 << 22  # bytes per gzip member: small enough to spread over cores, large enough to compress well
CT_LEAD_MINUTES = 3.0  # the CT is acquired just before the PET; the study starts with it

# What a scanner of each vendor writes into ManufacturerModelName and how it stores CT pixels:
# (model, CT pixel representation 0 = unsigned / 1 = signed, BitsStored, RescaleIntercept).
_SCANNER = {
    Vendor.siemens: ("Biograph Vision 600", 0, 12, -1024.0),
    Vendor.ge: ("Discovery MI", 1, 16, -1024.0),
    Vendor.united_imaging: ("uMI 780", 1, 16, 0.0),
}
# Radiopharmaceutical (DICOM text, BIDS TracerName) per tracer.
_RADIOPHARMACEUTICAL = {Tracer.fdg: "Fluorodeoxyglucose", Tracer.psma: "PSMA-1007"}
_TRACER_NAME = {Tracer.fdg: "FDG", Tracer.psma: "PSMA-1007"}


# ----------------------------------------------------------------------------------------------- utilities
@contextmanager
def _atomic(path: Path) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; rename it into place only if the block finishes."""
    with atomic_open(path) as f:
        yield f


def _write_bytes(path: Path, data: bytes) -> None:
    with _atomic(path) as f:
        f.write(data)


def _json_bytes(obj: object) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode()


def decayed_dose_bq(study: RawStudy) -> float:
    """The injected dose decayed from injection to the PET series start (the decay-correction reference)."""
    elapsed = (study.acquisition_time - study.injection_time).total_seconds()
    return study.injected_dose_mbq * 1e6 * 2.0 ** (-elapsed / F18_HALF_LIFE_S)


def activity_bq_per_ml(study: RawStudy) -> np.ndarray:
    """The PET volume as the scanner reports it: SUVbw x decayed dose (Bq) / body weight (g), float32."""
    scale = decayed_dose_bq(study) / (study.weight_kg * 1000.0)
    return (np.asarray(study.pet.array, dtype=np.float32) * np.float32(scale)).astype(np.float32, copy=False)


def _ct_int16(volume: Volume) -> np.ndarray:
    a = volume.array
    if a.dtype == np.int16:
        return a
    return np.clip(np.rint(a), -32768, 32767).astype(np.int16)


# ------------------------------------------------------------------------------------------------- NIfTI
def _ras_affine(volume: Volume) -> np.ndarray:
    """The NIfTI (RAS) affine of an ITK/LPS volume: flip x and y of the LPS index-to-physical map."""
    direction = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    lps = np.eye(4)
    lps[:3, :3] = direction @ np.diag(volume.spacing)
    lps[:3, 3] = volume.origin
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def write_nifti(path: Path, array: np.ndarray, volume: Volume) -> None:
    """Write a (z, y, x) array with ``volume``'s geometry as a deterministic ``.nii.gz``.

    nibabel builds the header: qform and sform both carry the RAS affine (code 1, scanner), so SimpleITK
    reads back the same LPS geometry. The voxels need no reordering: NIfTI stores x fastest, then y, then z,
    which is exactly the C order of a (z, y, x) array. They are gzip-compressed in 4 MB blocks on all cores,
    each block a complete gzip member (RFC 1952 allows a file of several members; zlib, SimpleITK and
    nibabel read them as one stream), with mtime 0 and no file name, so the bytes depend on the data alone.
    """
    img = nib.Nifti1Image(array.transpose(2, 1, 0), _ras_affine(volume))
    img.set_qform(img.affine, code=1)
    img.set_sform(img.affine, code=1)
    header = img.header
    header.set_xyzt_units("mm", "sec")
    header.set_data_dtype(array.dtype)
    header.set_data_offset(NIFTI_VOX_OFFSET)
    header.set_slope_inter(1.0, 0.0)  # stored values are the values
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    with _atomic(path) as f:
        f.write(gzip.compress(header.binaryblock + b"\0" * 4, NIFTI_GZIP_LEVEL, mtime=0))  # + empty extension flag
        for member in _gzip_members(memoryview(data).cast("B")):
            f.write(member)


def _gzip_members(data: memoryview) -> Iterator[bytes]:
    """``data`` as consecutive gzip members, compressed in parallel (zlib releases the GIL), in order."""
    workers = os.cpu_count() or 2
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gzip") as pool:
        pending: deque = deque()
        for start in range(0, len(data), GZIP_BLOCK):
            pending.append(pool.submit(gzip.compress, data[start:start + GZIP_BLOCK], NIFTI_GZIP_LEVEL, mtime=0))
            if len(pending) > 2 * workers:  # bounded look-ahead: memory stays a few blocks
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _pet_sidecar(study: RawStudy, model: str) -> dict:
    """PET-BIDS sidecar: times in seconds relative to TimeZero (the PET scan start, time of day)."""
    t0 = study.acquisition_time
    injection_start = (study.injection_time - t0).total_seconds()
    return {
        "Manufacturer": study.vendor.value,
        "ManufacturersModelName": model,
        "Modality": "PT",
        "BodyPart": "WHOLEBODY",
        "TracerName": _TRACER_NAME[study.tracer],
        "TracerRadionuclide": "F18",
        "InjectedRadioactivity": round(study.injected_dose_mbq, 6),
        "InjectedRadioactivityUnits": "MBq",
        "InjectedMass": "n/a",
        "InjectedMassUnits": "n/a",
        "SpecificRadioactivity": "n/a",
        "SpecificRadioactivityUnits": "n/a",
        "ModeOfAdministration": "bolus",
        "BodyWeight": round(study.weight_kg, 3),
        "BodyWeightUnits": "kg",
        "TimeZero": t0.strftime("%H:%M:%S"),
        "ScanDate": t0.strftime("%Y-%m-%d"),
        "ScanStart": 0,
        "InjectionStart": injection_start,
        "FrameTimesStart": [0],
        "FrameDuration": [120],
        "Units": "Bq/mL",
        "ImageDecayCorrected": True,
        "ImageDecayCorrectionTime": 0,
        "DecayCorrectionFactor": [1.0],
        "AttenuationCorrection": "CTAC",
        "ReconMethodName": "OSEM",
    }


# ------------------------------------------------------------------------------------------------- DICOM
def _uid(study: RawStudy, *parts: object) -> str:
    return generate_uid(entropy_srcs=[study.study_key, *map(str, parts)])


def _da(t: datetime) -> str:
    return t.strftime("%Y%m%d")


def _tm(t: datetime) -> str:
    return t.strftime("%H%M%S.%f")


def _geometry(volume: Volume) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(direction columns 3x3, spacing xyz, origin) of a volume, for slice positions and orientation."""
    return (np.asarray(volume.direction, dtype=float).reshape(3, 3), np.asarray(volume.spacing, dtype=float),
            np.asarray(volume.origin, dtype=float))


def _series_base(study: RawStudy, modality: str, volume: Volume, when: datetime, series_number: int) -> Dataset:
    """Tags shared by every slice of one series (patient, study, series, frame of reference, geometry)."""
    model = _SCANNER[study.vendor][0]
    study_start = study.acquisition_time - timedelta(minutes=CT_LEAD_MINUTES)
    direction, spacing, _ = _geometry(volume)
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage if modality == "CT" else PositronEmissionTomographyImageStorage
    ds.StudyDate = _da(study_start)
    ds.SeriesDate = _da(when)
    ds.AcquisitionDate = _da(when)
    ds.ContentDate = _da(when)
    ds.StudyTime = _tm(study_start)
    ds.SeriesTime = _tm(when)
    ds.ContentTime = _tm(when)
    ds.AccessionNumber = ""
    ds.Modality = modality
    ds.Manufacturer = study.vendor.value
    ds.ManufacturerModelName = model
    ds.StudyDescription = "PET^WholeBody"
    ds.SeriesDescription = "CT WB 3.0" if modality == "CT" else "PET WB AC"
    ds.PatientName = study.patient_name
    ds.PatientID = study.patient_id
    ds.PatientBirthDate = study.birth_date
    ds.PatientSex = study.sex
    ds.PatientAge = f"{int(study.age):03d}Y"
    ds.PatientSize = f"{study.height_m:.2f}"
    ds.PatientWeight = f"{study.weight_kg:.1f}"
    ds.BodyPartExamined = "WHOLEBODY"
    ds.SliceThickness = f"{spacing[2]:.6g}"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = _uid(study, "study")
    ds.SeriesInstanceUID = _uid(study, modality, "series")
    ds.StudyID = "1"
    ds.SeriesNumber = series_number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*direction[:, 0], *direction[:, 1])]
    ds.FrameOfReferenceUID = _uid(study, "frame-of-reference")  # CT and PET share it
    ds.PositionReferenceIndicator = ""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
    ds.PixelSpacing = [f"{spacing[1]:.6g}", f"{spacing[0]:.6g}"]  # row spacing (y), column spacing (x)
    ds.BitsAllocated = 16
    return ds


def _write_series(study: RawStudy, folder: Path, base: Dataset, volume: Volume,
                  slice_pixels: Callable[[int, Dataset], np.ndarray], modality: str) -> None:
    """Write one file per slice; ``slice_pixels(k, ds)`` sets slice-specific tags and returns the pixels."""
    direction, spacing, origin = _geometry(volume)
    folder.mkdir(parents=True, exist_ok=True)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = base.SOPClassUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = "PETCAP_SYNTH"
    base.file_meta = meta
    n = volume.shape[0]
    for k in range(n):
        position = origin + direction[:, 2] * spacing[2] * k
        sop = _uid(study, modality, "instance", k)
        base.SOPInstanceUID = sop
        meta.MediaStorageSOPInstanceUID = sop
        base.InstanceNumber = k + 1
        base.ImagePositionPatient = [f"{v:.4f}" for v in position]
        base.SliceLocation = f"{position[2]:.4f}"
        pixels = slice_pixels(k, base)
        base.PixelData = np.ascontiguousarray(pixels).tobytes()
        with _atomic(folder / f"{k + 1:04d}.dcm") as f:
            base.save_as(f, enforce_file_format=True)


def write_ct_dicom(study: RawStudy, folder: Path) -> None:
    """CT series: HU = stored x 1 + RescaleIntercept, stored as the vendor's scanner stores it."""
    _, signed, bits_stored, intercept = _SCANNER[study.vendor]
    ct = _ct_int16(study.ct)
    ds = _series_base(study, "CT", study.ct, study.acquisition_time - timedelta(minutes=CT_LEAD_MINUTES), 2)
    ds.AcquisitionTime = ds.SeriesTime
    ds.KVP = "120"
    ds.ConvolutionKernel = "Br38"
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = signed
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleSlope = "1"
    ds.RescaleType = "HU"
    # Stored values outside what BitsStored can hold are clipped, as the scanner does (12 bits: HU <= 3071).
    lo, hi = (-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed else (0, 2 ** bits_stored - 1)
    dtype = np.int16 if signed else np.uint16

    def pixels(k: int, _: Dataset) -> np.ndarray:
        return np.clip(ct[k].astype(np.int32) - int(intercept), lo, hi).astype(dtype)

    _write_series(study, folder, ds, study.ct, pixels, "CT")


def write_pet_dicom(study: RawStudy, folder: Path) -> None:
    """PET series in Bq/mL: signed int16 pixels with a per-slice RescaleSlope, decay-corrected to START."""
    activity = activity_bq_per_ml(study)
    start = study.acquisition_time
    ds = _series_base(study, "PT", study.pet, start, 3)
    ds.SeriesType = ["WHOLE BODY", "IMAGE"]
    ds.Units = "BQML"
    ds.CountsSource = "EMISSION"
    ds.DecayCorrection = "START"
    ds.CorrectedImage = ["DECY", "ATTN", "SCAT", "DTIM", "RAN", "NORM"]
    ds.RandomsCorrectionMethod = "DLYD"
    ds.AttenuationCorrectionMethod = "CTAC"
    ds.ReconstructionMethod = "OSEM"
    ds.NumberOfSlices = study.pet.shape[0]
    ds.NumberOfTimeSlices = 1
    ds.FrameReferenceTime = "0"
    ds.ActualFrameDuration = 120000  # ms per bed position
    ds.DecayFactor = "1"
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = "0"
    ds.RescaleType = "BQML"
    info = Dataset()
    info.Radiopharmaceutical = _RADIOPHARMACEUTICAL[study.tracer]
    info.RadiopharmaceuticalStartTime = _tm(study.injection_time)
    info.RadiopharmaceuticalStartDateTime = study.injection_time.strftime("%Y%m%d%H%M%S.%f")
    info.RadionuclideTotalDose = f"{study.injected_dose_mbq * 1e6:.1f}"
    info.RadionuclideHalfLife = f"{F18_HALF_LIFE_S}"
    info.RadionuclidePositronFraction = f"{F18_POSITRON_FRACTION}"
    nuclide = Dataset()
    nuclide.CodeValue, nuclide.CodingSchemeDesignator, nuclide.CodeMeaning = "C-111A1", "SRT", "^18^Fluorine"
    info.RadionuclideCodeSequence = [nuclide]
    ds.RadiopharmaceuticalInformationSequence = [info]
    slices_per_bed = max(1, int(round(200.0 / study.pet.spacing[2])))  # ~20 cm axial field of view

    def pixels(k: int, d: Dataset) -> np.ndarray:
        a = activity[k]
        peak = float(np.abs(a).max())
        slope = peak / 32767.0 if peak > 0 else 1.0
        d.RescaleSlope = f"{slope:.10g}"
        slope = float(d.RescaleSlope)  # what a reader will parse
        d.ImageIndex = k + 1
        d.AcquisitionTime = _tm(start + timedelta(seconds=120 * (k // slices_per_bed)))  # per bed position
        return np.clip(np.rint(a / slope), -32768, 32767).astype(np.int16)

    _write_series(study, folder, ds, study.pet, pixels, "PT")


# --------------------------------------------------------------------------------------------------- entry
def write_raw_study(study: RawStudy, raw_root: Path) -> ManifestRow:
    """Write every file of one study into the drop folder ``raw_root``; return its manifest row.

    The four image files are written concurrently (zlib and file IO release the GIL), so a full-scale
    study costs about the time of its largest file.
    """
    layout = RawLayout(raw_root)
    key, fmt = study.study_key, study.source_format
    if fmt not in ("dicom", "nifti"):
        raise ValueError(f"study {key}: unknown source_format {fmt!r} (dicom | nifti)")
    layout.study_dir(key).mkdir(parents=True, exist_ok=True)
    ct_path, pet_path = layout.ct(key, fmt), layout.pet(key, fmt)
    jobs: list[Callable[[], None]] = [
        lambda: write_nifti(layout.lesions(key), (np.asarray(study.lesions.array) > 0).astype(np.uint8),
                            study.lesions),
        lambda: write_nifti(layout.anatomy(key), np.asarray(study.anatomy.array), study.anatomy),
    ]
    if fmt == "dicom":
        jobs += [lambda: write_ct_dicom(study, ct_path), lambda: write_pet_dicom(study, pet_path)]
    else:
        model = _SCANNER[study.vendor][0]
        jobs += [
            lambda: write_nifti(ct_path, _ct_int16(study.ct), study.ct),
            lambda: write_nifti(pet_path, activity_bq_per_ml(study), study.pet),
            lambda: _write_bytes(layout.sidecar(pet_path), _json_bytes(_pet_sidecar(study, model))),
        ]
    jobs.append(lambda: _write_bytes(layout.sidecar(layout.anatomy(key)), _json_bytes(names_json())))
    report_path = None
    if study.report:
        report_path = layout.report(key)
        jobs.append(lambda: _write_bytes(report_path, study.report.encode("utf-8")))
    with ThreadPoolExecutor(max_workers=2) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    return ManifestRow(
        study_key=key,
        patient_id=study.patient_id,
        vendor=study.vendor,
        tracer=study.tracer,
        ct_path=layout.relative(ct_path),
        pet_path=layout.relative(pet_path),
        lesions_path=layout.relative(layout.lesions(key)),
        anatomy_path=layout.relative(layout.anatomy(key)),
        report_path=layout.relative(report_path) if report_path else None,
    )
