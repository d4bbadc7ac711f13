"""Read one raw study's files: CT in HU, PET converted to SUVbw, masks; every failure an ``IngestError``.

* DICOM series (a folder of slices): headers with pydicom (``stop_before_pixels``: fast, and every file is
  checked, so a corrupt slice is named), pixels with SimpleITK's ``ImageSeriesReader`` (sorted by position,
  per-slice RescaleSlope/Intercept applied).
* NIfTI: the voxels inflated once (zlib-ng) and checked whole in the same pass, the grid from SimpleITK's
  reading of the header (other NIfTI kinds: SimpleITK); a PET image's units and dose come from its PET-BIDS
  JSON sidecar.

SUVbw = activity concentration (Bq/mL) x body weight (g) / injected dose (Bq) decayed to the time the image
is decay-corrected to (DICOM DecayCorrection START: series start; ADMIN: injection; BIDS:
ImageDecayCorrectionTime). Images already in SUV (DICOM Units GML, BIDS "g/mL" / "SUV") pass unchanged.

Error messages name the file and the problem but never a patient's name or ID.
"""

from __future__ import annotations

import ctypes
import gzip
import json
import re
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.errors import InvalidDicomError
from pydicom.valuerep import DA, DT, TM
from zlib_ng import zlib_ng

from data_contracts.settings import RawLayout
from tasks.ingest.errors import IngestError
from tasks.ingest.integrity import (
    check_in_plane_consistency,
    check_label_values,
    check_nifti_size,
    check_pixel_data,
    check_rescale,
    nifti_layout,
)
from data_contracts.geometry import Geometry

# Half-lives (s) by radionuclide as BIDS TracerRadionuclide spells them (also accepted: "18F", "F-18").
HALF_LIFE_S = {"F18": 6586.2, "GA68": 4062.6, "C11": 1223.4, "N13": 597.9, "O15": 122.2, "CU64": 45720.0,
               "ZR89": 282276.0}


@dataclass(frozen=True)
class PetQuant:
    """How PET voxel values become SUVbw, and the acquisition facts that came with them."""

    units: str  # as declared: "BQML", "Bq/mL", "g/mL", ...
    suv_per_unit: float  # SUVbw = value x suv_per_unit
    injected_dose_mbq: float
    weight_kg: float
    uptake_minutes: float  # injection to scan start


@dataclass
class Series:
    """One read image plus the header facts ingestion cross-checks."""

    image: sitk.Image
    source: str  # path relative to the drop folder
    fmt: str  # "dicom" | "nifti"
    patient_id: str | None = None  # DICOM PatientID (PHI: compared, never stored)
    frame_of_reference: str | None = None
    header: pydicom.Dataset | None = None  # first slice's header (DICOM only)
    nonfinite: int | None = None  # NaN / inf voxels counted while reading (None: not counted, see read_pet)


def _short(err: BaseException) -> str:
    """The useful last line of an ITK/pydicom exception message (ITK's carry C++ file names first)."""
    lines = [ln.strip() for ln in str(err).strip().splitlines() if ln.strip()]
    text = lines[-1] if lines else type(err).__name__
    text = re.sub(r"^(Description|itk::ERROR):\s*", "", text)
    return text[:300]


# --------------------------------------------------------------------------------------------- NIfTI
_ITK_PIXEL = {np.uint8: sitk.sitkUInt8, np.int8: sitk.sitkInt8, np.uint16: sitk.sitkUInt16, np.int16: sitk.sitkInt16,
              np.uint32: sitk.sitkUInt32, np.int32: sitk.sitkInt32, np.uint64: sitk.sitkUInt64,
              np.int64: sitk.sitkInt64, np.float32: sitk.sitkFloat32, np.float64: sitk.sitkFloat64}


SlabSink = Callable[[int, int, np.ndarray], None]  # (z0, z1, (z1 - z0, y, x) voxels as stored in the file)


def read_nifti(path: Path, source: str, missing_reason: str, pixel_type: int | None = None,
               on_slab: SlabSink | None = None, slab_rows: int = 64) -> Series:
    """A NIfTI image as SimpleITK reads it (its geometry, its voxel type, or ``pixel_type``), never shorter than
    its header says (``truncated_file``).

    An unscaled scalar 3-D image is inflated once, straight into the image's buffer, in one pass that also
    proves it whole (``_inflated``: zlib-ng, as fast as ITK's own inflate), and its grid taken from ITK's
    reading of the header, so ITK's and our view of where each voxel lies cannot differ; anything else (scaled
    voxels, 4-D, vectors) goes through ``sitk.ReadImage`` after ``check_nifti_size`` has inflated the stream to
    count it. The voxels are identical either way (``tests/tasks/ingest/test_readers.py``), except that NaN
    stays NaN here where ITK reads it as 0 (see ``nifti_nonfinite``; ``Series.nonfinite`` counts them).
    ``on_slab`` sees the file's voxels slab by slab while they are read (one-pass reads only: it is never called
    on SimpleITK's path, nor for a short file's missing tail).
    """
    if not path.is_file():
        raise IngestError(missing_reason, source, "file not found")
    image = _inflated(path, source, on_slab, slab_rows)
    if image is None:
        check_nifti_size(path, source)  # ITK would read the missing tail as zeros
        try:
            image = sitk.ReadImage(str(path)) if pixel_type is None else sitk.ReadImage(str(path), pixel_type)
        except RuntimeError as e:
            raise IngestError("unreadable_file", source, _short(e)) from None
        if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
            raise IngestError("unreadable_file", source,
                              f"expected a 3-D scalar image, got {image.GetDimension()}-D with "
                              f"{image.GetNumberOfComponentsPerPixel()} components")
        return Series(image, source, "nifti")
    values = sitk.GetArrayViewFromImage(image)
    nonfinite = int(np.count_nonzero(~np.isfinite(values))) if values.dtype.kind == "f" else 0
    del values
    if pixel_type is not None and image.GetPixelID() != pixel_type:
        image = sitk.Cast(image, pixel_type)
    return Series(image, source, "nifti", nonfinite=nonfinite)


def _inflated(path: Path, source: str, on_slab: SlabSink | None = None, slab_rows: int = 64) -> sitk.Image | None:
    """An unscaled scalar 3-D NIfTI inflated straight into a new SimpleITK image's buffer, in one pass that fails
    on a short file, its grid as ITK reads the header; None for any other NIfTI (or a header nibabel cannot
    parse: ``check_nifti_size`` then names the problem). ``on_slab(z0, z1, voxels)`` is handed every
    ``slab_rows`` slices as soon as they are inflated (a view of the image's buffer, which it keeps alive)."""
    try:
        nifti = nib.load(str(path))
        offset, nbytes = nifti_layout(path)
        # A loaded header's scl_* read NaN: nibabel moves the file's scaling onto the array proxy.
        scaling = (float(nifti.dataobj.slope), float(nifti.dataobj.inter))
    except Exception:  # noqa: BLE001 - nibabel raises many kinds; the ITK path reports it properly
        return None
    header = nifti.header
    shape = tuple(int(v) for v in header.get_data_shape())
    dtype = header.get_data_dtype()
    if len(shape) != 3 or dtype.type not in _ITK_PIXEL or scaling != (1.0, 0.0) or int(header["dim"][0]) != 3:
        return None
    grid = read_grid(path)
    if grid is None or grid.shape != shape[::-1]:
        raise IngestError("unreadable_file", source, "ITK cannot read the NIfTI header nibabel reads")
    image = sitk.Image(list(shape), _ITK_PIXEL[dtype.type])  # NIfTI stores x fastest: ITK's buffer order
    image.SetSpacing(grid.spacing)
    image.SetOrigin(grid.origin)
    image.SetDirection(grid.direction)
    out = _writable_view(image)
    got = 0
    try:
        with _open_inflating(path) as f:
            skip = offset
            while skip > 0 and (block := f.read(min(skip, 1 << 16))):
                skip -= len(block)
            swap = dtype.byteorder not in ("=", "|", "<" if np.little_endian else ">")  # the other byte order
            step = slab_rows if on_slab is not None else out.shape[0]
            for z0 in range(0, out.shape[0], step):
                part = out[z0:z0 + step]
                n = _fill(f, memoryview(part).cast("B"))
                got += n
                if n < part.nbytes:
                    break
                if swap:
                    part.byteswap(inplace=True)
                if on_slab is not None:
                    on_slab(z0, z0 + part.shape[0], part)
            # Read on to the end: each gzip member's CRC-32 and length are checked as its end is reached, so a
            # damaged stream that still inflates to enough bytes is caught too (a plain file has nothing more).
            while got == nbytes and f.read(1 << 16):
                pass
    except (EOFError, zlib.error, zlib_ng.error, gzip.BadGzipFile) as e:
        raise IngestError("truncated_file" if isinstance(e, EOFError) else "unreadable_file", source,
                          f"the gzip stream ends early or is damaged ({type(e).__name__})") from None
    if got < nbytes:
        raise IngestError("truncated_file", source, f"{offset + got} bytes once uncompressed, the header needs "
                                                    f"{offset + nbytes}")
    return image


GZIP_READ_BUFFER = 16 << 20  # compressed bytes the gzip reader fetches at a time (zlib-ng's default: 512 KiB)


@contextmanager
def _open_inflating(path: Path) -> Iterator:
    """The file's bytes as a ``readinto`` stream: inflated (every gzip member in turn) for ``.gz``, else raw.

    zlib-ng's gzip reader runs without the GIL except while it refills its input buffer; with its default 512 KiB
    buffer a 70 MB CT takes ~140 refills, and each waits for the GIL while ingest's other threads (zarr's event
    loop) hold it: the inflate ran ~4x slower beside one busy Python thread. A 16 MiB buffer refills ~5 times."""
    with open(path, "rb", buffering=0) as raw:
        yield zlib_ng._GzipReader(raw, GZIP_READ_BUFFER) if path.name.endswith(".gz") else raw


def _fill(f, view: memoryview) -> int:
    """Read into ``view`` until it is full or the stream ends; the bytes read."""
    got = 0
    while got < len(view) and (n := f.readinto(view[got:])):
        got += n
    return got


def _writable_view(image: sitk.Image) -> np.ndarray:
    """A writable numpy view of a fresh image's pixel buffer (SimpleITK offers read-only views only). Valid while
    the image is not copied-on-write; used only on an image a reader has just made and holds alone (to fill it
    after allocating it, or to scale it)."""
    view = sitk.GetArrayViewFromImage(image)
    buffer = (ctypes.c_char * view.nbytes).from_address(view.__array_interface__["data"][0])
    buffer.image = image  # the view (and every slice of it) keeps the image, and so its buffer, alive
    return np.frombuffer(buffer, dtype=view.dtype).reshape(view.shape)


def nifti_nonfinite(path: Path) -> int:
    """Count NaN/inf voxels of a NIfTI file as stored on disk.

    Needed because ITK before 6.0 (SimpleITK 2.x) silently reads every non-finite NIfTI voxel as 0 —
    indistinguishable from real zero activity. nibabel reads the bytes as they are; integer files cannot
    hold NaN and are not decoded at all.
    """
    image = nib.load(str(path))
    if not np.issubdtype(image.get_data_dtype(), np.floating):
        return 0
    proxy = image.dataobj
    step = max(1, 2**24 // max(1, int(np.prod(proxy.shape[:-1]))))  # ~16 M voxels per slab along the last axis
    return sum(int(np.count_nonzero(~np.isfinite(np.asarray(proxy[..., k:k + step]))))
               for k in range(0, proxy.shape[-1], step))


def read_grid(path: Path) -> Geometry | None:
    """The grid of a NIfTI image from its header alone (milliseconds); None for DICOM or an unreadable file,
    whose full read then raises the proper error."""
    if is_dicom(path) or not path.is_file():
        return None
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        return None
    if reader.GetDimension() != 3:
        return None
    x, y, z = reader.GetSize()
    return Geometry((z, y, x), reader.GetSpacing(), reader.GetOrigin(), reader.GetDirection())


# --------------------------------------------------------------------------------------------- DICOM
def _slice_files(folder: Path) -> list[Path]:
    # Hidden files are a writer's temporaries (or OS litter), not slices.
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def read_dicom_series(folder: Path, source: str, modality: str, missing_reason: str,
                      pixel_type: int) -> Series:
    """Validate every slice's header, then read the series' pixels in position order."""
    files = _slice_files(folder) if folder.is_dir() else []
    if not files:
        raise IngestError(missing_reason, source, "no DICOM files found")
    headers: list[pydicom.Dataset] = []
    for f in files:
        rel = f"{source}/{f.name}"
        try:  # pixel data deferred: its length and offset are read, its bytes are not
            ds = pydicom.dcmread(f, defer_size=1024)
            ds.SeriesInstanceUID, ds.ImagePositionPatient  # noqa: B018 - raise if absent
        except (InvalidDicomError, AttributeError, EOFError, OSError, ValueError, KeyError) as e:
            raise IngestError("corrupt_dicom", rel, f"not a readable DICOM image: {_short(e)}") from None
        if ds.get("Modality") != modality:
            raise IngestError("wrong_modality", rel, f"Modality {ds.get('Modality')!r}, expected {modality!r}")
        check_pixel_data(ds, f, rel)
        check_rescale(ds, rel)
        headers.append(ds)
    if len({ds.SeriesInstanceUID for ds in headers}) > 1:
        raise IngestError("multiple_series", source, "the folder holds more than one DICOM series")
    if len({ds.get("PatientID") for ds in headers}) > 1:
        raise IngestError("patient_mismatch", source, "slices of one series carry different PatientIDs")
    check_in_plane_consistency(headers, source)
    _check_slice_spacing(headers, source)

    names = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), headers[0].SeriesInstanceUID)
    if len(names) != len(files):  # GDCM skips slices it cannot parse (e.g. truncated pixel data)
        left_out = sorted({f.name for f in files} - {Path(n).name for n in names})
        where = f"{source}/{left_out[0]}" if left_out else source
        raise IngestError("corrupt_dicom", where, f"{len(files) - len(names)} of {len(files)} slices unreadable "
                                                  "by the series reader (truncated or damaged pixel data)")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(names)
    reader.SetOutputPixelType(pixel_type)
    try:
        image = reader.Execute()
    except RuntimeError as e:
        raise IngestError("corrupt_dicom", source, f"pixel data unreadable: {_short(e)}") from None
    first = next(ds for ds in headers if Path(names[0]).name == Path(ds.filename).name)
    return Series(image, source, "dicom", patient_id=str(first.get("PatientID", "")) or None,
                  frame_of_reference=first.get("FrameOfReferenceUID"), header=first)


def _check_slice_spacing(headers: list[pydicom.Dataset], source: str) -> None:
    """Slices must be evenly spaced along the normal: a gap means a lost file, a zero step a duplicate."""
    if len(headers) < 2:
        return
    iop = np.asarray(headers[0].ImageOrientationPatient, dtype=float)
    normal = np.cross(iop[:3], iop[3:])
    pos = np.sort([float(np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=float))) for ds in headers])
    steps = np.diff(pos)
    step = float(np.median(steps))
    if step <= 1e-6 or np.max(np.abs(steps - step)) > 0.01 * step + 1e-3:
        raise IngestError("missing_slices", source,
                          f"uneven slice positions (steps {steps.min():.3f}..{steps.max():.3f} mm): "
                          "slices missing or duplicated")


# ------------------------------------------------------------------------------------------------- SUV
def _dicom_datetime(date: str | None, time: str | None) -> datetime | None:
    if not date or not time:
        return None
    d, t = DA(date), TM(time)
    return datetime.combine(d, t)


def pet_quant_from_dicom(ds: pydicom.Dataset, source: str) -> PetQuant:
    """SUVbw factor from PET DICOM tags (PatientWeight, RadiopharmaceuticalInformationSequence, times)."""
    units = str(ds.get("Units", "")).upper()
    weight = float(ds.get("PatientWeight") or 0)
    seq = ds.get("RadiopharmaceuticalInformationSequence")
    info = seq[0] if seq else None
    missing = [name for name, ok in (("PatientWeight", weight > 0), ("RadiopharmaceuticalInformationSequence", info),
                                     ("Units", units)) if not ok]
    if info is not None:
        missing += [t for t in ("RadionuclideTotalDose", "RadionuclideHalfLife") if not info.get(t)]
        if not (info.get("RadiopharmaceuticalStartDateTime") or info.get("RadiopharmaceuticalStartTime")):
            missing.append("RadiopharmaceuticalStartDateTime")
    if missing:
        raise IngestError("missing_suv_tags", source, f"PET header lacks {', '.join(missing)}")
    dose = float(info.RadionuclideTotalDose)
    half_life = float(info.RadionuclideHalfLife)
    series_start = _dicom_datetime(ds.get("SeriesDate"), ds.get("SeriesTime"))
    if info.get("RadiopharmaceuticalStartDateTime"):
        injection = DT(info.RadiopharmaceuticalStartDateTime).replace(tzinfo=None)
    else:
        injection = _dicom_datetime(ds.get("SeriesDate"), info.RadiopharmaceuticalStartTime)
        if injection and series_start and injection > series_start:
            # A clock time after the scan with no date is an error, not "the evening before" (that reading
            # made a 23.9 h uptake and SUV x5000 out of a typo).
            raise IngestError("implausible_uptake", source,
                              f"RadiopharmaceuticalStartTime {info.RadiopharmaceuticalStartTime} is after SeriesTime "
                              f"{ds.get('SeriesTime')} and no RadiopharmaceuticalStartDateTime gives its date")
    if series_start is None or injection is None:
        raise IngestError("missing_suv_tags", source, "PET header lacks SeriesDate/SeriesTime")
    if dose <= 0 or half_life <= 0:
        raise IngestError("missing_suv_tags", source, "RadionuclideTotalDose and RadionuclideHalfLife must be > 0")
    uptake_s = (series_start - injection).total_seconds()
    if uptake_s <= 0:
        raise IngestError("implausible_uptake", source, f"injection to scan start is {uptake_s / 60:.1f} min")
    decay = str(ds.get("DecayCorrection", "")).upper()
    if units == "GML":
        factor = 1.0
    elif units == "BQML":
        # The image is decay-corrected to `reference`; the dose must be decayed to the same instant.
        # NONE (not decay-corrected) is treated like START: activity measured from the series start.
        if decay not in ("START", "ADMIN", "NONE"):
            raise IngestError("missing_suv_tags", source, f"DecayCorrection {decay!r} not START/ADMIN/NONE")
        elapsed = 0.0 if decay == "ADMIN" else uptake_s
        factor = weight * 1000.0 / (dose * 2.0 ** (-elapsed / half_life))
    else:
        raise IngestError("unsupported_pet_units", source, f"Units {units!r}: expected BQML or GML")
    return PetQuant(units, factor, dose / 1e6, weight, uptake_s / 60.0)


_DOSE_TO_MBQ = {"MBQ": 1.0, "KBQ": 1e-3, "BQ": 1e-6, "GBQ": 1e3, "MCI": 37.0}
_CONC_TO_BQML = {"BQ/ML": 1.0, "BQML": 1.0, "KBQ/ML": 1e3, "MBQ/ML": 1e6}
_SUV_UNITS = {"G/ML", "GML", "SUV", "SUVBW"}


def pet_quant_from_sidecar(meta: dict, source: str) -> PetQuant:
    """SUVbw factor from a PET-BIDS sidecar (Units, InjectedRadioactivity(+Units), BodyWeight, times)."""
    units = str(meta.get("Units", "")).strip()
    key = units.upper().replace(" ", "")
    need = ["Units", "InjectedRadioactivity", "InjectedRadioactivityUnits", "BodyWeight", "InjectionStart"]
    missing = [k for k in need if meta.get(k) in (None, "", "n/a")]
    if missing:
        raise IngestError("missing_suv_tags", source, f"sidecar lacks {', '.join(missing)}")
    try:
        dose_mbq = float(meta["InjectedRadioactivity"]) * _DOSE_TO_MBQ[str(meta["InjectedRadioactivityUnits"]).upper()]
        weight = float(meta["BodyWeight"])
        scan_start = float(meta.get("ScanStart", 0.0))
        injection_start = float(meta["InjectionStart"])
    except (KeyError, TypeError, ValueError) as e:
        raise IngestError("invalid_suv_tags", source, f"unusable dose/weight/time field: {_short(e)}") from None
    uptake_s = scan_start - injection_start
    if dose_mbq <= 0 or weight <= 0:
        raise IngestError("invalid_suv_tags", source, f"dose {dose_mbq:g} MBq, weight {weight:g} kg")
    if uptake_s <= 0:
        raise IngestError("implausible_uptake", source, f"InjectionStart {injection_start:g} s is not before "
                                                        f"ScanStart {scan_start:g} s")
    if key in _SUV_UNITS:
        factor = 1.0
    elif key in _CONC_TO_BQML:
        nuclide = re.sub(r"[^A-Z0-9]", "", str(meta.get("TracerRadionuclide", "F18")).upper())
        nuclide = re.sub(r"^(\d+)([A-Z]+)$", r"\2\1", nuclide)  # "18F" -> "F18"
        if nuclide not in HALF_LIFE_S:
            raise IngestError("missing_suv_tags", source, f"unknown TracerRadionuclide {nuclide!r}")
        corrected = meta.get("ImageDecayCorrected", True)
        reference = float(meta.get("ImageDecayCorrectionTime", scan_start)) if corrected else scan_start
        elapsed = reference - injection_start
        dose_bq = dose_mbq * 1e6 * 2.0 ** (-elapsed / HALF_LIFE_S[nuclide])
        factor = _CONC_TO_BQML[key] * weight * 1000.0 / dose_bq
    else:
        raise IngestError("unsupported_pet_units", source, f"Units {units!r}: expected Bq/mL, kBq/mL or g/mL")
    return PetQuant(units, factor, dose_mbq, weight, uptake_s / 60.0)


def read_sidecar(path: Path, source: str) -> dict:
    if not path.is_file():
        raise IngestError("missing_suv_tags", source, "no JSON sidecar with units and dose beside the PET image")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise IngestError("unreadable_file", source, f"sidecar is not JSON: {_short(e)}") from None
    if not isinstance(meta, dict):
        raise IngestError("unreadable_file", source, "sidecar is not a JSON object")
    return meta


# ------------------------------------------------------------------------------------- study-level reads
def is_dicom(path: Path) -> bool:
    """A series folder is DICOM; a single ``.nii``/``.nii.gz`` file is NIfTI."""
    return not path.name.endswith((".nii", ".nii.gz"))


def read_ct(path: Path, source: str, on_slab: SlabSink | None = None, slab_rows: int = 64) -> Series:
    """CT in HU as int16 (the DICOM rescale is applied by the reader). A NIfTI CT is handed to ``on_slab`` slab by
    slab as it is inflated (its voxels as stored: int16 HU, or another type converted only after the read)."""
    if is_dicom(path):
        return read_dicom_series(path, source, "CT", "missing_ct", sitk.sitkInt16)
    series = read_nifti(path, source, "missing_ct", on_slab=on_slab, slab_rows=slab_rows)
    if series.image.GetPixelID() != sitk.sitkInt16:
        if (series.nonfinite if series.nonfinite is not None else nifti_nonfinite(path)):
            raise IngestError("nan_in_ct", source, "CT contains NaN or infinite values")
        a = sitk.GetArrayViewFromImage(series.image)
        if a.min() < -32768 or a.max() > 32767:
            raise IngestError("unreadable_file", source, "CT values exceed the int16 HU range")
        out = sitk.GetImageFromArray(np.rint(a).astype(np.int16))
        out.CopyInformation(series.image)
        series.image = out
    return series


def read_pet(path: Path, source: str) -> tuple[Series, PetQuant]:
    """PET on its own grid converted to SUVbw (float32), and the quantification facts."""
    if is_dicom(path):
        series = read_dicom_series(path, source, "PT", "missing_pet", sitk.sitkFloat32)
        quant = pet_quant_from_dicom(series.header, source)
    else:
        series = read_nifti(path, source, "missing_pet", sitk.sitkFloat32)
        sidecar_source = RawLayout.sidecar(source).as_posix()
        quant = pet_quant_from_sidecar(read_sidecar(RawLayout.sidecar(path), sidecar_source), sidecar_source)
    values = sitk.GetArrayViewFromImage(series.image)
    bad = (int(np.count_nonzero(~np.isfinite(values))) if series.fmt == "dicom" else
           series.nonfinite if series.nonfinite is not None else nifti_nonfinite(path))
    if bad:
        raise IngestError("nan_in_pet", source, f"PET has {bad} NaN or infinite voxels")
    if quant.suv_per_unit != 1.0:  # the image is the reader's own: scaled in place, as ShiftScale would (in double)
        values = _writable_view(series.image)
        np.multiply(values, np.float64(quant.suv_per_unit), out=values, casting="unsafe")
    return series, quant


def read_mask(path: Path, source: str, missing_reason: str, pixel_type: int, binary: bool = False) -> Series:
    """A label image (lesion mask, anatomy) as ``pixel_type``, its values checked in the file's own dtype first
    (never wrapped: a label the type cannot hold is ``label_out_of_range``); a file of a narrower unsigned
    integer type is kept as read (no copy: a uint8 segmenter map stays uint8). ``binary``: every nonzero label
    becomes 1 (a lesion mask, binary or instance-labelled)."""
    series = read_nifti(path, source, missing_reason)
    image = series.image
    values = sitk.GetArrayViewFromImage(image)
    # A binary mask takes any non-negative integer label; a label map must fit ``pixel_type``.
    hi = check_label_values(values, source, np.iinfo(np.uint64).max if binary else np.iinfo(_INT_TYPES[pixel_type]).max)
    if binary and not (image.GetPixelID() == pixel_type and hi <= 1):  # a 0/1 mask of that type is kept as read
        series.image = sitk.Cast(sitk.NotEqual(image, 0), pixel_type)
    elif image.GetPixelID() != pixel_type and not _narrower_unsigned(image.GetPixelID(), pixel_type):
        series.image = sitk.Cast(image, pixel_type)
    return series


def _narrower_unsigned(pixel: int, target: int) -> bool:
    """Whether every value of the unsigned integer type ``pixel`` fits ``target`` as it is."""
    kind = _INT_TYPES.get(pixel)
    return kind is not None and np.dtype(kind).kind == "u" and np.can_cast(kind, _INT_TYPES[target])


_INT_TYPES = {pixel: kind for kind, pixel in _ITK_PIXEL.items() if np.issubdtype(kind, np.integer)}
