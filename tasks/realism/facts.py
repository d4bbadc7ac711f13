"""The realism check's inputs: per-study facts read from a raw drop folder and the store ingest wrote.

``read_drop(settings)`` reads the manifest, each study's anatomy sidecar and report from ``settings.raw``, each
file once; ``collect(settings, drop)`` reads the volumes and tables from the store (and DICOM headers or report
headers for the patient's age) and returns one ``StudyFacts`` per ingested study (image figures, landmarks,
lesion masks with their scan position and derived sites). ``report_rows`` gives every manifest study's report
(quarantined ones too). ``truth_table`` reads the optional synthetic truth (``truth/*.parquet``), absent on a
real drop; ``match_truth`` joins it to the ingested lesions. Patient IDs group studies and never leave the realism package.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import SimpleITK as sitk
from scipy import ndimage

from data_contracts import segmentation
from data_contracts import volume_store as store
from data_contracts.geometry import Geometry
from data_contracts.records import Acquisition
from data_contracts.settings import Settings
from data_contracts.tables import MANIFEST, STUDIES, ManifestRow
from tasks.ingest.pseudonym import study_pseudonym
from tasks.landmarks import Landmarks, canonical_class, canonical_lut
from tasks.realism import images, reports
from tasks.sites import study_lesion_sites


def label_names(raw_root: Path, row: ManifestRow) -> dict[str, str]:
    """The label map's sidecar names, or the segmentation class set when the drop has none."""
    if row.anatomy_path:
        side = raw_root / Path(row.anatomy_path).with_name(
            Path(row.anatomy_path).name.removesuffix(".gz").removesuffix(".nii") + ".json")
        if side.is_file():
            return json.loads(side.read_text(encoding="utf-8"))
    return segmentation.names_json()


@dataclass(frozen=True)
class DropStudy:
    """One manifest study as the raw drop holds it, each file read once."""

    row: ManifestRow
    names: dict[str, str]  # label map sidecar names (the segmentation class set when absent)
    report: str | None  # the report text, None when the drop has none


def read_drop(settings: Settings) -> list[DropStudy]:
    """Every manifest study with its label names and report, in manifest order."""
    raw_root = settings.raw.root
    out = []
    for row in MANIFEST.records(MANIFEST.read(settings.raw.manifest), source=str(settings.raw.manifest)):
        path = raw_root / row.report_path if row.report_path else None
        report = path.read_text(encoding="utf-8", errors="replace") if path is not None and path.is_file() else None
        out.append(DropStudy(row, label_names(raw_root, row), report))
    return out


def _dicom_age(raw_root: Path, row: ManifestRow) -> float | None:
    folder = raw_root / row.ct_path
    if not folder.is_dir():
        return None
    import pydicom

    first = next(iter(sorted(folder.glob("*.dcm"))), None)
    if first is None:
        return None
    age = str(pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["PatientAge"]).get("PatientAge", ""))
    return float(age[:3]) if age[:3].isdigit() else None



def _site_of_name(name: str) -> str | None:
    """The one taxonomy site a label-map structure names, if it names exactly one."""
    from data_contracts import anatomy

    if name in anatomy.structure_location():
        return anatomy.structure_location()[name]
    cls = canonical_class(name)
    sites = segmentation.class_sites().get(cls, ()) if cls else ()
    return sites[0] if len(sites) == 1 else None


def label_sites(names: dict[str, str]) -> dict[int, str]:
    return {int(k): site for k, v in names.items() if (site := _site_of_name(v)) is not None}



def _native_pet(raw_root: Path, row: ManifestRow, st: store.StoredStudy, acquisition: Acquisition
                ) -> tuple[np.ndarray, Geometry] | None:
    """The PET (SUV, (z, y, x)) on its own reconstruction grid and that grid.

    The store's PET when ingest kept it on its own grid (the default: no configured PET spacing; its grid is
    the acquisition's ``pet_shape`` / ``pet_spacing_mm``); otherwise (a configured PET spacing, or a store
    that resampled the PET onto the CT grid) the raw PET read as ingest reads it, since resampling smooths
    the noise this figure measures. None when that raw PET cannot be read.
    """
    grid = st.pet_geometry
    if grid.shape == tuple(acquisition.pet_shape) and np.allclose(grid.spacing, acquisition.pet_spacing_mm,
                                                                   rtol=1e-4, atol=0):
        return np.asarray(st.pet[...]), grid
    from tasks.ingest.readers import read_pet

    try:
        series, _ = read_pet(raw_root / row.pet_path, row.pet_path)
    except Exception:  # noqa: BLE001 - a figure, not ingestion: unreadable means not measured
        return None
    return sitk.GetArrayFromImage(series.image), Geometry.of(series.image)


def native_pet_cv(pet: np.ndarray, pet_grid: Geometry, anat: np.ndarray, inst: np.ndarray, grid: Geometry) -> float:
    """Liver PET CV (SD / mean of SUV in the liver ROI) on the PET's own grid ``pet_grid`` (resampling it
    onto the CT grid smooths the noise): the label map ``anat`` and lesion instances ``inst`` (both on the CT
    ``grid``) are moved onto the PET grid (nearest neighbour, 0 outside)."""

    def onto_pet(array: np.ndarray) -> np.ndarray:
        image = grid.image(np.ascontiguousarray(array))
        return sitk.GetArrayFromImage(pet_grid.resample(image, sitk.sitkNearestNeighbor, image.GetPixelID(), 0))

    roi = images.organ_roi(onto_pet(anat), onto_pet(inst), ("liver",), pet_grid, erode_mm=8.0)
    if roi is None:
        return float("nan")
    suv = pet[roi[0]][roi[1]].astype(np.float64)
    return float(suv.std() / suv.mean()) if suv.mean() > 0 else float("nan")



def truth_table(settings: Settings, name: str) -> pd.DataFrame | None:
    path = settings.raw.truth / name
    return pd.read_parquet(path) if path.is_file() else None



@dataclass
class StudyFacts:
    key: str
    study_id: str
    patient: str  # raw patient ID: grouping only
    tracer: str
    weight: float
    age: float | None
    marks: Landmarks
    img: dict[str, float]
    lesion_rows: list[dict]  # per ingested lesion: size_mm, suv_max, position (3,), label, island, truth idx
    atlas: object = None  # (zarr label array, raw label -> site or None, geometry shape) for atlas look-ups


def _lesion_facts(st: store.StoredStudy, anat: np.ndarray, inst: np.ndarray) -> list[dict]:
    out = []
    for les in st.lesion_records:
        z0, y0, x0, z1, y1, x1 = les.bbox
        pad = 2
        box = (slice(max(0, z0 - pad), z1 + pad), slice(max(0, y0 - pad), y1 + pad), slice(max(0, x0 - pad), x1 + pad))
        mask = inst[box] == les.instance
        under = anat[box][mask]
        nz = under[under > 0]
        label = int(np.bincount(nz).argmax()) if nz.size else 0
        shell = ndimage.binary_dilation(mask, iterations=2) & ~mask
        island = bool(label) and label not in set(np.unique(anat[box][shell]).tolist())
        out.append({"instance": les.instance, "size_mm": (6.0 * les.volume_ml * 1000.0 / math.pi) ** (1 / 3),
                    "suv_max": les.suv_max, "position": st.geometry.scan_position(les.centroid_mm),
                    "centroid": les.centroid_mm, "label": label, "island": island})
    return out


def collect(settings: Settings, drop: list[DropStudy]) -> list[StudyFacts]:
    """One ``StudyFacts`` per study of ``drop`` (``read_drop``) that is in the store with a label map."""
    raw_root = settings.raw.root
    studies = {s.study_id: s for s in STUDIES.records(STUDIES.read(settings.table_path("studies")))}
    ages = {}
    truth_studies = truth_table(settings, "studies.parquet")
    if truth_studies is not None and "age" in truth_studies:
        ages = dict(zip(truth_studies["study_key"], truth_studies["age"].astype(float)))
    facts = []
    for d in drop:
        row = d.row
        sid = study_pseudonym(row.study_key, settings.pseudonym_key)
        if sid not in studies:
            continue
        st = store.open_study(settings.store_url, sid)
        if st.anatomy is None:
            continue
        lut = canonical_lut(d.names)
        raw_anat = np.asarray(st.anatomy[...])
        anat = lut[np.minimum(raw_anat, len(lut) - 1)]
        inst = np.asarray(st.lesions[...])
        marks = Landmarks.from_labels(anat, st.geometry)
        img = images.study_image_figures(np.asarray(st.ct[...]), st.pet_on(st.geometry), anat, inst, st.geometry,
                                         marks)
        age = (ages.get(row.study_key) or _dicom_age(raw_root, row)
               or (reports.age_at_exam(d.report) if d.report else None))
        native = _native_pet(raw_root, row, st, studies[sid].acquisition)
        img["liver_pet_cv_native"] = (native_pet_cv(*native, anat, inst, st.geometry) if native is not None
                                      else float("nan"))
        rows = _lesion_facts(st, anat, inst)
        derived = study_lesion_sites(anat, inst, st.geometry, st.lesion_records, marks)
        for r in rows:
            r["sites"] = derived.get(r["instance"], ())
        facts.append(StudyFacts(row.study_key, sid, row.patient_id, row.tracer.value,
                                studies[sid].acquisition.patient_weight_kg, age, marks, img, rows,
                                (st.anatomy, label_sites(d.names), st.geometry.shape)))
    return facts


def match_truth(facts: list[StudyFacts], truth: pd.DataFrame) -> None:
    """Each ingested lesion gets the index of the truth lesion nearest its centroid (within half its size)."""
    by_key = {k: g for k, g in truth.groupby("study_key")}
    for f in facts:
        g = by_key.get(f.key)
        for les in f.lesion_rows:
            les["truth"] = None
            if g is None:
                continue
            d = [math.dist(c, les["centroid"]) for c in g["center_mm"]]
            j = int(np.argmin(d)) if d else -1
            if j >= 0 and d[j] <= max(5.0, float(g["size_mm"].iloc[j]) / 2):
                les["truth"] = g.index[j]



@dataclass(frozen=True)
class ReportFacts:
    """One manifest study's report, with its image landmarks when the study is in the store."""

    key: str
    patient: str  # raw patient ID: grouping only
    tracer: str
    text: str
    marks: Landmarks | None


def report_rows(drop: list[DropStudy], facts: list[StudyFacts]) -> list[ReportFacts]:
    """Every manifest study with a report (quarantined ones too: a lesion-free study has no mask to ingest)."""
    marks = {f.key: f.marks for f in facts}
    return [ReportFacts(d.row.study_key, d.row.patient_id, d.row.tracer.value, d.report, marks.get(d.row.study_key))
            for d in drop if d.report is not None]
