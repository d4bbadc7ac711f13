"""A study folder's description from its headers: which files, which vendor and tracer (DICOM tags of the PET's first
slice, or its PET-BIDS sidecar), as the manifest row ingestion reads. Nothing here decodes pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from data_contracts.findings import Tracer, Vendor
from data_contracts.settings import RawLayout
from data_contracts.tables import ManifestRow
from tasks.ingest import IngestError


def vendor_from_text(text: str | None) -> Vendor | None:
    t = (text or "").lower()
    if "siemens" in t:
        return Vendor.siemens
    if "united" in t or t.startswith("uih") or "uimaging" in t:
        return Vendor.united_imaging
    if t.split()[:1] == ["ge"] or "general electric" in t or t.startswith("ge "):
        return Vendor.ge
    return None


def tracer_from_text(text: str | None) -> Tracer | None:
    t = (text or "").lower()
    if "psma" in t:
        return Tracer.psma
    if "fdg" in t or "fluorodeoxyglucose" in t:
        return Tracer.fdg
    return None


def _pet_header(study_dir: Path, pet: str) -> tuple[str | None, str | None, str | None]:
    """(manufacturer, tracer name, DICOM PatientID) from the PET's first DICOM slice or its BIDS sidecar."""
    path = study_dir / pet
    if path.is_dir():
        slices = sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
        if not slices:
            raise IngestError("missing_pet", pet, "the PET folder is empty")
        try:
            ds = pydicom.dcmread(slices[0], stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError) as e:
            raise IngestError("corrupt_dicom", f"{pet}/{slices[0].name}", str(e)[:200]) from None
        info = ds.get("RadiopharmaceuticalInformationSequence")
        tracer = str(info[0].get("Radiopharmaceutical", "")) if info else None
        return str(ds.get("Manufacturer", "")) or None, tracer, str(ds.get("PatientID", "")) or None
    sidecar = RawLayout.sidecar(path)
    if not sidecar.is_file():
        return None, None, None
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
    except ValueError:
        raise IngestError("unreadable_file", sidecar.name, "PET sidecar is not JSON") from None
    return meta.get("Manufacturer"), meta.get("TracerName"), None


def describe_study(study_dir: Path | str, vendor: str | None = None, tracer: str | None = None) -> ManifestRow:
    """A manifest row for one study folder (paths relative to it); vendor and tracer from the PET header
    unless given. Raises ``IngestError`` naming the missing file or the header that could not be read."""
    study_dir = Path(study_dir)
    if not study_dir.is_dir():
        raise FileNotFoundError(f"study folder {study_dir} does not exist")

    def pick(name: str, reason: str) -> str:
        for rel in (name, f"{name}.nii.gz", f"{name}.nii"):
            if (study_dir / rel).exists():
                return rel
        raise IngestError(reason, f"{study_dir.name}/{name}", f"no {name}/ DICOM folder or {name}.nii.gz")

    ct, pet, lesions = pick("ct", "missing_ct"), pick("pet", "missing_pet"), pick("lesions", "missing_mask")
    anatomy = next((r for r in ("anatomy.nii.gz", "anatomy.nii") if (study_dir / r).exists()), None)
    manufacturer, tracer_name, patient_id = _pet_header(study_dir, pet)
    v = Vendor(vendor) if vendor else vendor_from_text(manufacturer)
    t = Tracer(tracer) if tracer else tracer_from_text(tracer_name)
    if v is None:
        raise IngestError("unknown_vendor", pet, f"PET Manufacturer {manufacturer!r} is not one of "
                                                 f"{[x.value for x in Vendor]}; pass the vendor explicitly")
    if t is None:
        raise IngestError("unknown_tracer", pet, f"PET tracer {tracer_name!r} is neither FDG nor PSMA; "
                                                 f"pass the tracer explicitly")
    # A DICOM study's PatientID lets ingestion check that CT and PET belong together; it only feeds the
    # pseudonym of this private store and is written nowhere. NIfTI has none: the folder name stands in.
    return ManifestRow(study_key=study_dir.name, patient_id=patient_id or study_dir.name, vendor=v, tracer=t, ct_path=ct,
                       pet_path=pet, lesions_path=lesions, anatomy_path=anatomy)
