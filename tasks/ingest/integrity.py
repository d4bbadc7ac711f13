"""Is a raw file whole? Checks that run before its pixels are trusted; each failure an ``IngestError``.

ITK reads a truncated ``.nii.gz`` without complaint (the missing voxels come out 0), GDCM pads a short DICOM
PixelData element, a slice without RescaleSlope/Intercept reads as raw stored values, and a slice with its own
PixelSpacing is silently given the first slice's. Each of these turns a damaged delivery into plausible-looking
wrong data, so they are checked here, from headers and file sizes (no pixel decoding):

* ``truncated_file``        a NIfTI image holds fewer bytes than its header's dimensions and datatype need.
                            An unscaled 3-D NIfTI is counted while ingest inflates it (``readers._inflated``);
                            ``check_nifti_size`` serves the files SimpleITK reads instead (scaled voxels, 4-D):
                            for ``.nii.gz`` the gzip trailer's ISIZE (uncompressed size mod 2**32) is compared
                            with the header's size (one member: dcm2niix/pigz, ITK, nibabel) or the voxel data's
                            (a header member + one data member); otherwise (a truncated stream, a file of many
                            members) the stream is inflated once more to count its bytes exactly.
* ``truncated_pixel_data``  a DICOM PixelData element shorter than Rows x Columns x samples x BitsAllocated/8,
                            or reaching past the end of its file.
* ``missing_rescale``       a CT or PET slice without RescaleSlope or RescaleIntercept (type 1 in both IODs).
* ``inconsistent_spacing``  slices of one series with different PixelSpacing, Rows/Columns or orientation.
* ``anatomy_label_mismatch`` / ``unknown_anatomy_label``: the segmenter's sidecar names other structures than
  the label table, or the map holds a value the table does not know (never linked as a site).
* label images: ``invalid_labels`` (negative, fractional or non-finite values) and ``label_out_of_range``
  (a value the stored uint16 label map cannot hold): values are checked in the file's own dtype, never cast
  (a uint16 label 256 must not wrap to 0).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import json

import nibabel as nib
import numpy as np
import pydicom
import SimpleITK as sitk

from data_contracts.segmentation import names_json as label_names_json
from data_contracts.settings import RawLayout
from data_contracts.tables import ManifestRow
from tasks.ingest.errors import IngestError

_CHUNK = 1 << 16  # bytes inflated per read when counting (a short stream is known to this precision)


def nifti_expected_bytes(path: Path) -> int:
    """Bytes the header says the file holds once uncompressed: the voxel offset plus the voxel data."""
    offset, nbytes = nifti_layout(path)
    return offset + nbytes


def nifti_layout(path: Path) -> tuple[int, int]:
    """(offset of the voxel data, bytes of voxel data) from the header. A single-file NIfTI's data starts at
    vox_offset, and never before the header and its 4 extension bytes (some writers leave vox_offset 0)."""
    header = nib.load(str(path)).header
    nbytes = int(np.prod(header.get_data_shape(), dtype=np.int64)) * header.get_data_dtype().itemsize
    return max(int(header.get_data_offset()), int(header.sizeof_hdr) + 4), nbytes


def check_nifti_size(path: Path, source: str) -> None:
    """``truncated_file`` unless the (decompressed) file is at least as long as its header promises."""
    try:
        offset, nbytes = nifti_layout(path)
        expected = offset + nbytes
    except Exception as e:  # nibabel raises many kinds for a bad header  # noqa: BLE001
        if _header_cut_short(path):
            raise IngestError("truncated_file", source, "the file ends inside its NIfTI header") from None
        raise IngestError("unreadable_file", source, f"not a NIfTI image ({type(e).__name__})") from None
    if not path.name.endswith(".gz"):
        size = path.stat().st_size
        if size < expected:
            raise IngestError("truncated_file", source, f"{size} bytes on disk, the header needs {expected}")
        return
    with open(path, "rb") as f:
        f.seek(-4, 2)
        isize = int.from_bytes(f.read(4), "little")
    # One gzip member (ISIZE = everything), or a header member then a data member (ISIZE = the voxel data):
    # a truncated stream's last 4 bytes match either only by a 2**-31 chance.
    if isize in (expected % 2**32, nbytes % 2**32):
        return
    got = 0
    try:
        with gzip.open(path, "rb") as f:
            while block := f.read(_CHUNK):
                got += len(block)
    except (EOFError, OSError, zlib.error):
        raise IngestError("truncated_file", source, f"the gzip stream ends early after {got} of {expected} "
                                                    "bytes the header needs") from None
    if got < expected:
        raise IngestError("truncated_file", source, f"decompresses to {got} bytes, the header needs {expected}")


def _header_cut_short(path: Path) -> bool:
    """Whether a file whose header nibabel cannot parse was cut short: a gzip stream that ends early, or
    fewer bytes than a NIfTI-1 header's 348."""
    try:
        if path.name.endswith(".gz"):
            with gzip.open(path, "rb") as f:
                head = f.read(348)
                while f.read(_CHUNK):
                    pass
            return len(head) < 348
        return path.stat().st_size < 348
    except (EOFError, zlib.error):
        return True
    except OSError:  # not gzip at all
        return False


# --------------------------------------------------------------------------------------------- DICOM
def check_pixel_data(ds: pydicom.Dataset, file: Path, source: str) -> None:
    """The PixelData element of a header read with ``defer_size`` (value not loaded) is whole."""
    elem = ds.get_item(0x7FE00010, keep_deferred=True)  # the raw element: length and offset, no value read
    if elem is None:
        raise IngestError("truncated_pixel_data", source, "the slice has no PixelData element")
    length = getattr(elem, "length", None)
    if length is None:  # a small element pydicom read in full
        length = len(elem.value or b"")
    if length == 0xFFFFFFFF:  # encapsulated (compressed) pixel data: fragments, checked by the decoder
        return
    rows, cols = int(ds.get("Rows", 0)), int(ds.get("Columns", 0))
    bits = int(ds.get("BitsAllocated", 0))
    samples, frames = int(ds.get("SamplesPerPixel", 1)), int(ds.get("NumberOfFrames", 1) or 1)
    need = rows * cols * samples * frames * bits // 8
    if length < need:
        raise IngestError("truncated_pixel_data", source,
                          f"PixelData holds {length} bytes, {rows}x{cols} pixels of {bits} bits need {need}")
    end = getattr(elem, "value_tell", None)
    size = file.stat().st_size
    if end is not None and end + length > size:
        raise IngestError("truncated_pixel_data", source,
                          f"PixelData of {length} bytes at offset {end} runs past the end of the {size}-byte file")


def check_rescale(ds: pydicom.Dataset, source: str) -> None:
    missing = [t for t in ("RescaleSlope", "RescaleIntercept") if ds.get(t) in (None, "")]
    if missing:
        raise IngestError("missing_rescale", source, f"the slice lacks {' and '.join(missing)}: its stored values "
                                                     "cannot be turned into HU / activity")


def check_in_plane_consistency(headers: list[pydicom.Dataset], source: str) -> None:
    """Every slice shares the first one's PixelSpacing, matrix and orientation."""
    first = headers[0]
    ref_spacing = np.asarray(first.get("PixelSpacing", [0, 0]), dtype=float)
    ref_iop = np.asarray(first.get("ImageOrientationPatient", [0] * 6), dtype=float)
    for ds in headers[1:]:
        name = f"{source}/{Path(ds.filename).name}"
        spacing = np.asarray(ds.get("PixelSpacing", [0, 0]), dtype=float)
        if spacing.shape != ref_spacing.shape or not np.allclose(spacing, ref_spacing, rtol=1e-4, atol=1e-5):
            raise IngestError("inconsistent_spacing", name, f"PixelSpacing {spacing.tolist()} mm, the series' first "
                                                            f"slice has {ref_spacing.tolist()} mm")
        if (ds.get("Rows"), ds.get("Columns")) != (first.get("Rows"), first.get("Columns")):
            raise IngestError("inconsistent_spacing", name, f"matrix {ds.get('Rows')}x{ds.get('Columns')}, the first "
                                                            f"slice has {first.get('Rows')}x{first.get('Columns')}")
        iop = np.asarray(ds.get("ImageOrientationPatient", [0] * 6), dtype=float)
        if iop.shape != ref_iop.shape or not np.allclose(iop, ref_iop, atol=1e-4):
            raise IngestError("inconsistent_spacing", name, "ImageOrientationPatient differs from the first slice's")


# --------------------------------------------------------------------------------------------- labels
def check_label_values(values: np.ndarray, source: str, max_label: int) -> float:
    """Label voxels are finite non-negative integers no larger than ``max_label``, judged in their own dtype.
    Returns the largest label."""
    if np.issubdtype(values.dtype, np.floating):
        finite = np.isfinite(values)
        if not finite.all():
            raise IngestError("invalid_labels", source, f"{int((~finite).sum())} NaN or infinite label voxels")
        fractional = values != np.rint(values)
        if fractional.any():
            raise IngestError("invalid_labels", source, f"{int(fractional.sum())} voxels hold fractional labels "
                                                        f"(e.g. {float(values[fractional][0]):g})")
    hi = values.max() if values.size else 0
    lo = values.min() if values.size and values.dtype.kind != "u" else 0  # unsigned: never negative
    if lo < 0:
        raise IngestError("invalid_labels", source, f"negative label {lo:g}")
    if hi > max_label:
        raise IngestError("label_out_of_range", source, f"label {hi:g} exceeds {max_label}, the largest the stored "
                                                        "label map holds (never wrapped)")
    return hi


def unknown_labels(labels: np.ndarray, known: set[int]) -> dict[int, int]:
    """Label values present in a uint label map that the label table does not know -> their voxel counts.

    When the table knows every value from 1 to the map's maximum, nothing can be unknown (one pass). Otherwise
    presence by scatter (~15 ms per 8 M voxels; ``np.bincount`` on uint16 is ~10x slower); voxels are counted
    only when an unknown value is present."""
    flat = labels.reshape(-1)
    top = int(flat.max()) if flat.size else 0
    if all(v in known for v in range(1, top + 1)):
        return {}
    present = np.zeros(top + 1, dtype=bool)
    present[flat] = True
    unknown = [int(v) for v in np.flatnonzero(present) if v != 0 and int(v) not in known]
    return {v: int(np.count_nonzero(flat == v)) for v in unknown[:20]} if unknown else {}


def check_anatomy_sidecar(raw_root: Path, row: ManifestRow, source: str) -> None:
    """The segmenter's label sidecar, when present, must name the structures our labels mean."""
    sidecar = RawLayout.sidecar(raw_root / row.anatomy_path)
    if not sidecar.is_file():
        return
    shown = RawLayout.sidecar(source).as_posix()
    try:
        names = json.loads(sidecar.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise IngestError("unreadable_file", shown, "not JSON") from None
    if not isinstance(names, dict):
        raise IngestError("unreadable_file", shown, "not a JSON object of label -> structure name")
    ours = label_names_json()
    wrong = [k for k, v in names.items() if ours.get(str(k)) != v]
    if wrong:
        raise IngestError("anatomy_label_mismatch", shown,
                          f"{len(wrong)} labels name other classes than data_contracts.segmentation, e.g. {wrong[0]}")


def check_known_labels(anatomy: sitk.Image, source: str) -> None:
    """Every label in the map is one the label table names: an unknown value must never become a site."""
    unknown = unknown_labels(sitk.GetArrayViewFromImage(anatomy), {int(k) for k in label_names_json()})
    if unknown:
        shown = ", ".join(f"{v} ({n} voxels)" for v, n in sorted(unknown.items())[:5])
        raise IngestError("unknown_anatomy_label", source,
                          f"{len(unknown)} label values the label table does not know: {shown}")
