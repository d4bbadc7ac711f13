"""``petcap pull``: new PET/CT studies from the PACS (DICOMweb) into the raw drop layout, so ingestion is unchanged.

QIDO-RS finds the studies of a date range (or a list of Study Instance UIDs) that hold a PET and a CT series;
WADO-RS retrieves them into ``studies/<key>/ct/``, ``pet/``; the lesion mask becomes ``lesions.nii.gz`` on the CT
grid, from a DICOM SEG in the same study or from a segmenter's output folder (``pacs.mask_source``); the report
comes from the RIS export, matched by accession number; a manifest row is added last.

- The study key is a hash of the Study Instance UID: no accession number or name ever becomes a folder name.
- Incremental: a study whose key is in the manifest is skipped.
- Resumable: a study is written into a hidden ``.partial`` folder and renamed into place complete; the manifest
  row follows. A pull killed at any point leaves either nothing of a study or the whole study; a rerun retrieves
  every study that has no manifest row yet (replacing a complete folder left without its row), so nothing is lost
  or listed twice.
- A study that cannot be pulled (no PET, no mask, a SEG that does not lie on the CT, a report that is not text,
  the PACS failing on it)
  gets a quarantine row (stage ``pull``) and the others go on.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import SimpleITK as sitk

from data_contracts.atomic import atomic_open
from data_contracts.errors import PetcapError
from data_contracts.geometry import Geometry
from data_contracts.settings import Settings
from data_contracts.tables import MANIFEST, QUARANTINE, ManifestRow, QuarantineRow
from tasks.ingest.report_text import decode_report
from tasks.new_study.header import tracer_from_text, vendor_from_text
from tasks.pacs import dicomweb
from tasks.pacs.dicom_series import SeriesMismatch, slice_indices

log = logging.getLogger(__name__)
STAGE = "pull"
SEG_MODALITY = "SEG"


@dataclass(frozen=True)
class StudyRef:
    """One study the query found: its UID and accession number (both stay inside the hospital's systems)."""

    study_uid: str
    accession: str

    @property
    def key(self) -> str:
        return "PACS_" + hashlib.sha256(self.study_uid.encode()).hexdigest()[:16]


@dataclass
class PullSummary:
    found: int = 0
    pulled: list[str] = field(default_factory=list)  # study keys
    skipped: list[str] = field(default_factory=list)  # already in the drop
    quarantined: dict[str, str] = field(default_factory=dict)  # key -> reason

    def line(self) -> str:
        return (f"pull: {self.found} studies found, {len(self.pulled)} pulled, {len(self.skipped)} already there, "
                f"{len(self.quarantined)} quarantined")


# ------------------------------------------------------------------------------------------ query
def find_studies(settings: Settings, since: date | None = None, until: date | None = None,
                 study_uids: list[str] | None = None) -> list[StudyRef]:
    """QIDO-RS: the studies of [since, until] holding a series of ``pacs.modality``, or the given UIDs (all of
    them: a named study without PET is then quarantined as ``missing_pet``, not passed over).

    The modality is checked on each answer's ModalitiesInStudy rather than sent as a query key: some servers
    (Orthanc 1.10) page before they filter on it, so a paged query with that key silently loses studies.
    """
    cfg = settings.pacs
    c = dicomweb.client(cfg)
    filters: dict[str, str] = {}
    if since or until:
        filters["StudyDate"] = (f"{since:%Y%m%d}" if since else "") + "-" + (f"{until:%Y%m%d}" if until else "")
    found: list[StudyRef] = []
    for uid in study_uids or [None]:
        query = {**filters, **({"StudyInstanceUID": uid} if uid else {})}
        offset = 0
        while True:
            page = dicomweb.call("QIDO-RS studies", lambda: c.search_for_studies(
                search_filters=query, fields=["ModalitiesInStudy"], limit=cfg.batch_size, offset=offset))
            for item in page:
                ds = pydicom.Dataset.from_json(item)
                modalities = ds.get("ModalitiesInStudy")
                listed = [modalities] if isinstance(modalities, str) else list(modalities or [])
                if listed and cfg.modality not in listed and not uid:
                    continue
                found.append(StudyRef(str(ds.StudyInstanceUID), str(ds.get("AccessionNumber", "") or "")))
            if len(page) < cfg.batch_size:
                break
            offset += len(page)
    unique = {ref.study_uid: ref for ref in found}
    return sorted(unique.values(), key=lambda r: r.key)


# ------------------------------------------------------------------------------------------ one study
def _series(c, ref: StudyRef) -> dict[str, list[dict]]:
    """Series of the study by modality: {"CT": [...], "PT": [...], "SEG": [...]} (QIDO JSON of each)."""
    out: dict[str, list[dict]] = {}
    for item in dicomweb.call("QIDO-RS series", lambda: c.search_for_series(ref.study_uid), ref.key):
        ds = pydicom.Dataset.from_json(item)
        out.setdefault(str(ds.get("Modality", "")), []).append(
            {"uid": str(ds.SeriesInstanceUID), "n": int(ds.get("NumberOfSeriesRelatedInstances", 0) or 0),
             "description": str(ds.get("SeriesDescription", "") or "")})
    return out


def _largest(series: list[dict]) -> dict:
    return max(series, key=lambda s: (s["n"], s["uid"]))


def _write_series(datasets: list[pydicom.Dataset], folder: Path) -> None:
    folder.mkdir(parents=True)
    for i, ds in enumerate(sorted(datasets, key=lambda d: int(d.get("InstanceNumber", 0) or 0)), start=1):
        ds.save_as(folder / f"{i:04d}.dcm", enforce_file_format=True)


def seg_labels(seg: pydicom.Dataset, ct_frame_of_reference: str, grid: Geometry, source: str) -> np.ndarray:
    """A SEG's segments as one label volume on the CT grid ((z, y, x), label = segment number).

    Raises ``SeriesMismatch`` when the SEG is not on the CT's frame of reference, rows and columns, or a frame
    lies on no CT slice.
    """
    if str(seg.get("FrameOfReferenceUID", "")) != str(ct_frame_of_reference):
        raise SeriesMismatch("the SEG is on another frame of reference than the CT", source)
    frames = seg.pixel_array.reshape(-1, int(seg.Rows), int(seg.Columns))  # (n_frames, rows, cols)
    labels = np.zeros(grid.shape, dtype=np.uint16)
    ks = slice_indices([_frame_dataset(seg, f) for f in seg.PerFrameFunctionalGroupsSequence], grid, source)
    shared = seg.SharedFunctionalGroupsSequence[0]
    for frame, k, fg in zip(frames, ks, seg.PerFrameFunctionalGroupsSequence):
        ident = fg.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence  # shared: 1 segment
        number = int(ident[0].ReferencedSegmentNumber)
        labels[k][frame > 0] = number
    return labels


def _frame_dataset(seg: pydicom.Dataset, fg: pydicom.Dataset) -> pydicom.Dataset:
    """A frame described like an image instance (position, orientation, size) for ``slice_indices``."""
    ds = pydicom.Dataset()
    ds.SOPInstanceUID = seg.SOPInstanceUID
    ds.Rows, ds.Columns = seg.Rows, seg.Columns
    shared = seg.SharedFunctionalGroupsSequence[0]
    orientation = (fg.get("PlaneOrientationSequence") or shared.PlaneOrientationSequence)[0]
    ds.ImageOrientationPatient = orientation.ImageOrientationPatient
    ds.ImagePositionPatient = fg.PlanePositionSequence[0].ImagePositionPatient
    return ds


def _ct_image(ct_folder: Path) -> sitk.Image:
    """The CT series as one image (its grid is the grid the mask is written on)."""
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(ct_folder)))
    return reader.Execute()


def _write_labels(labels: np.ndarray, ct: sitk.Image, path: Path) -> None:
    image = sitk.GetImageFromArray(labels)
    image.CopyInformation(ct)
    sitk.WriteImage(image, str(path), useCompression=True)


def _report_text(settings: Settings, accession: str, key: str) -> str | None:
    """The RIS export's report for an accession number (``<accession>.txt``, else a row of ``reports.csv``), or
    None when the export has none.

    Both sources pass the gate ingest applies to every report (``decode_report``): a report that is not text
    raises ``IngestError`` (``undecodable_report``, ``empty_report``; named by the study key, never the accession
    number) and the study is quarantined here rather than pulled, because a pulled study is never pulled again:
    only a quarantined one picks up the corrected export on the next pull.
    """
    folder = settings.pacs.reports_dir
    if folder is None or not accession:
        return None
    source = f"{key}/report"
    text_file = Path(folder) / f"{accession}.txt"
    if text_file.is_file():
        return decode_report(text_file.read_bytes(), source)
    table = Path(folder) / "reports.csv"
    if table.is_file():
        df = pd.read_csv(table, dtype=str, keep_default_na=False)  # an empty cell is "", a report "NA" is text
        hit = df[df["accession_number"] == accession]
        if len(hit):
            return decode_report(hit["text"].iloc[0].encode("utf-8"), source)
    return None


def _first_header(folder: Path) -> pydicom.Dataset:
    """The header (no pixel data) of a series folder's first file by name."""
    return pydicom.dcmread(min(folder.iterdir()), stop_before_pixels=True)


def _vendor_and_tracer(pet: pydicom.Dataset, key: str) -> tuple[str, str]:
    """Vendor and tracer from the PET header, by caption-study's rules (one place reads them)."""
    info = pet.get("RadiopharmaceuticalInformationSequence")
    vendor = vendor_from_text(str(pet.get("Manufacturer", "")))
    tracer = tracer_from_text(str(info[0].get("Radiopharmaceutical", "")) if info else None)
    if vendor is None or tracer is None:
        raise PetcapError(f"PET header names vendor {pet.get('Manufacturer')!r}, tracer "
                          f"{info[0].get('Radiopharmaceutical') if info else None!r}", path=key,
                          reason="unknown_vendor" if vendor is None else "unknown_tracer")
    return vendor.value, tracer.value


def pull_study(settings: Settings, c, ref: StudyRef) -> ManifestRow:
    """Retrieve one study into ``studies/<key>/`` (complete or not at all) and return its manifest row.

    Raises ``PetcapError`` naming the reason (``missing_pet``, ``missing_ct``, ``undecodable_report``,
    ``empty_report``, ``missing_mask``, ``seg_geometry_mismatch``, ``pacs_unreachable``, ...).
    """
    raw = settings.raw
    series = _series(c, ref)
    if not series.get("CT"):
        raise PetcapError("the study has no CT series", path=ref.key, reason="missing_ct")
    if not series.get(settings.pacs.modality):
        raise PetcapError(f"the study has no {settings.pacs.modality} series", path=ref.key, reason="missing_pet")
    report = _report_text(settings, ref.accession, ref.key)  # before any retrieval: a bad report costs no transfer
    partial = raw.studies / f".{ref.key}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        for name, modality in (("ct", "CT"), ("pet", settings.pacs.modality)):
            uid = _largest(series[modality])["uid"]
            datasets = dicomweb.call(f"WADO-RS {name} series", lambda: c.retrieve_series(ref.study_uid, uid), ref.key)
            _write_series(datasets, partial / name)
        lesions = partial / "lesions.nii.gz"
        if settings.pacs.mask_source == "seg":
            segs = [s for s in series.get(SEG_MODALITY, []) if not s["description"].startswith("petcap")]
            if not segs:
                raise PetcapError("the study has no lesion SEG", path=ref.key, reason="missing_mask",
                                  hint="run the lesion segmenter first, or set PETCAP_PACS__MASK_SOURCE=folder")
            seg_uid = _largest(segs)["uid"]
            seg = dicomweb.call("WADO-RS SEG", lambda: c.retrieve_series(ref.study_uid, seg_uid), ref.key)[0]
            ct = _ct_image(partial / "ct")  # read once: its grid places the frames, its header goes on the mask
            frame = str(_first_header(partial / "ct").FrameOfReferenceUID)
            labels = seg_labels(seg, frame, Geometry.of(ct), f"{ref.key}/seg")
            _write_labels(labels, ct, lesions)
        else:
            found = [Path(settings.pacs.mask_dir or ".") / f"{name}.nii.gz" for name in (ref.study_uid, ref.accession)
                     if name]
            mask = next((p for p in found if p.is_file()), None)
            if mask is None:
                raise PetcapError("no lesion mask in the mask folder", path=ref.key, reason="missing_mask",
                                  hint="the segmenter writes <StudyInstanceUID>.nii.gz or <AccessionNumber>.nii.gz")
            shutil.copyfile(mask, lesions)
        pet = _first_header(partial / "pet")
        vendor, tracer = _vendor_and_tracer(pet, ref.key)
        if report is not None:
            with atomic_open(raw.report(ref.key)) as f:
                f.write(report.encode("utf-8"))
        else:
            log.warning("%s: no report in the RIS export for this study's accession number", ref.key)
        final = raw.study_dir(ref.key)
        if final.exists():  # a complete folder from a killed earlier pull: keep the newer retrieval
            shutil.rmtree(final)
        partial.rename(final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    rel = raw.relative
    return ManifestRow(study_key=ref.key, patient_id=str(pet.PatientID), vendor=vendor, tracer=tracer,
                       ct_path=rel(raw.ct(ref.key, "dicom")), pet_path=rel(raw.pet(ref.key, "dicom")),
                       lesions_path=rel(raw.lesions(ref.key)), anatomy_path=None,
                       report_path=rel(raw.report(ref.key)))


# ------------------------------------------------------------------------------------------ the batch
def _manifest(settings: Settings) -> pd.DataFrame:
    return MANIFEST.read(settings.raw.manifest)


def _add_rows(settings: Settings, rows: list[ManifestRow]) -> None:
    if not rows:
        return
    old = _manifest(settings)
    new = MANIFEST.frame(rows)
    merged = pd.concat([old[~old["study_key"].isin(new["study_key"])], new], ignore_index=True)
    MANIFEST.write(merged, settings.raw.manifest)


def _record_quarantine(settings: Settings, failed: dict[str, tuple[str, str]], resolved: set[str]) -> None:
    """Replace this stage's rows for the studies tried now: failures get a row, successes lose theirs."""
    path = settings.table_path("quarantine")
    old = QUARANTINE.read(path)
    tried = set(failed) | resolved
    keep = old[~((old["stage"] == STAGE) & old["item"].isin(tried))]
    now = datetime.now(timezone.utc)
    rows = [QuarantineRow(stage=STAGE, item=key, source=f"pacs:{key}", reason=reason, detail=detail[:500], at=now)
            for key, (reason, detail) in sorted(failed.items())]
    QUARANTINE.write(pd.concat([keep, QUARANTINE.frame(rows)], ignore_index=True) if rows else keep, path)


def pull_studies(settings: Settings, since: date | None = None, until: date | None = None,
                 study_uids: list[str] | None = None) -> PullSummary:
    """Pull every new study of the range into ``settings.raw_dir``; see the module docstring."""
    c = dicomweb.client(settings.pacs)
    refs = find_studies(settings, since, until, study_uids)
    summary = PullSummary(found=len(refs))
    settings.raw.studies.mkdir(parents=True, exist_ok=True)
    listed = set(_manifest(settings)["study_key"])
    failed: dict[str, tuple[str, str]] = {}
    for n, ref in enumerate(refs, start=1):
        if ref.key in listed and settings.raw.study_dir(ref.key).is_dir():
            summary.skipped.append(ref.key)
            continue
        try:
            row = pull_study(settings, c, ref)
        except PetcapError as e:
            failed[ref.key] = (e.reason or "pull_failed", e.message)
            summary.quarantined[ref.key] = e.reason or "pull_failed"
            log.warning("pull %d/%d %s: %s", n, len(refs), ref.key, e)
            continue
        _add_rows(settings, [row])  # one study at a time: a kill loses at most the study in flight
        summary.pulled.append(ref.key)
        log.info("pull %d/%d %s: done", n, len(refs), ref.key)
    _record_quarantine(settings, failed, set(summary.pulled) | set(summary.skipped))
    return summary
