"""The bad-input corpus: one delivery holding the good tiny studies and dozens of damaged copies of them.

Each case copies a good study under a new key and damages it the way a hospital delivery goes wrong (issue 18's
findings included); manifest-level cases add bad rows. The whole delivery is ingested once, so the corpus also
proves that no bad item stops the others. Each case must end as its named quarantine reason (or, for inputs
that are unusual but fine, as a correctly ingested study), every good study must go through, every study in
the store must pass the plausibility checks, and no raw folder name may reach the quarantine table or a log.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.uid import generate_uid

from data_contracts.settings import Settings
from data_contracts.tables import MANIFEST, QUARANTINE, STUDIES
from tasks.ingest import ingest_all, list_studies, open_study, study_pseudonym
from tasks.ingest.plausibility import verify_stored


# ------------------------------------------------------------------------------------------ file edits
def _rewrite(path: Path, change=None, dtype=None, spacing=None, origin_shift=None) -> None:
    """Rewrite a NIfTI image: values through ``change``, optionally another dtype, spacing or origin."""
    image = sitk.ReadImage(str(path))
    a = sitk.GetArrayFromImage(image)
    if change is not None:
        a = change(a)
    if dtype is not None:
        a = a.astype(dtype)
    out = sitk.GetImageFromArray(a)
    out.SetSpacing(spacing(image.GetSpacing()) if spacing else image.GetSpacing())
    o = np.asarray(image.GetOrigin()) + (0 if origin_shift is None else origin_shift)
    out.SetOrigin(tuple(float(v) for v in o))
    out.SetDirection(image.GetDirection())
    sitk.WriteImage(out, str(path), True)


def _truncate(path: Path, keep: float | int = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep] if isinstance(keep, int) else data[:int(len(data) * keep)])


def _sidecar(d: Path, **changes) -> None:
    path = d / "pet.json"
    meta = json.loads(path.read_text())
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        elif callable(v):
            meta[k] = v(meta[k])
        else:
            meta[k] = v
    path.write_text(json.dumps(meta))


def _slices(d: Path, series: str) -> list[Path]:
    return sorted((d / series).iterdir())


def _dicom(d: Path, series: str, edit: Callable[[pydicom.Dataset], None], which: slice = slice(None)) -> None:
    for f in _slices(d, series)[which]:
        ds = pydicom.dcmread(f)
        edit(ds)
        ds.save_as(f)


def _largest_lesion_to(label: int):
    def change(a):
        from scipy import ndimage
        comps, n = ndimage.label(a > 0, structure=np.ones((3, 3, 3)))
        out = (a > 0).astype(np.uint16)
        biggest = np.argmax(np.bincount(comps.ravel())[1:]) + 1
        out[comps == biggest] = label
        return out
    return change


def _half_pixel_data(ds):
    ds.PixelData = ds.PixelData[: len(ds.PixelData) // 2]


def _late_injection(ds):
    info = ds.RadiopharmaceuticalInformationSequence[0]
    del info.RadiopharmaceuticalStartDateTime
    info.RadiopharmaceuticalStartTime = "235900"


def _other_patients_pet(d: Path, other: Path) -> None:
    for name in ("pet.nii.gz", "pet.json"):
        shutil.copy(other / name, d / name)


def _cut_to_two_slices(d: Path) -> None:
    for name in ("ct.nii.gz", "pet.nii.gz", "lesions.nii.gz", "anatomy.nii.gz"):
        _rewrite(d / name, lambda a: a[:2].copy())


def _four_d(d: Path) -> None:
    image = sitk.ReadImage(str(d / "ct.nii.gz"))
    sitk.WriteImage(sitk.JoinSeries([image, image]), str(d / "ct.nii.gz"), True)


# ------------------------------------------------------------------------------------------ the corpus
@dataclass(frozen=True)
class Case:
    name: str
    fmt: str  # which good study is copied: "nifti" | "dicom"
    damage: Callable[[Path], None]  # edits the copied study folder
    reason: str | None  # the quarantine reason; None: the study must be ingested
    row: Callable[[dict], None] | None = None  # edits the manifest row
    other: bool = False  # damage(d, other_study_folder)


CASES = [
    # ---- damaged NIfTI files: never read as zeros
    Case("truncated_ct", "nifti", lambda d: _truncate(d / "ct.nii.gz"), "truncated_file"),
    Case("truncated_pet", "nifti", lambda d: _truncate(d / "pet.nii.gz"), "truncated_file"),
    Case("truncated_mask", "nifti", lambda d: _truncate(d / "lesions.nii.gz", 0.6), "truncated_file"),
    Case("truncated_anatomy", "nifti", lambda d: _truncate(d / "anatomy.nii.gz"), "truncated_file"),
    Case("ct_cut_inside_header", "nifti", lambda d: _truncate(d / "ct.nii.gz", 40), "truncated_file"),
    Case("ct_not_nifti", "nifti", lambda d: (d / "ct.nii.gz").write_bytes(b"%PDF-1.4 not an image" * 50),
         "unreadable_file"),
    Case("ct_four_d", "nifti", _four_d, "unreadable_file"),
    Case("nan_in_pet", "nifti", lambda d: _rewrite(d / "pet.nii.gz", lambda a: np.where(
        np.arange(a.size).reshape(a.shape) == a.size // 2, np.nan, a).astype(np.float32)), "nan_in_pet"),
    Case("nan_in_ct", "nifti", lambda d: _rewrite(d / "ct.nii.gz", lambda a: np.where(
        np.arange(a.size).reshape(a.shape) == 7, np.nan, a.astype(np.float32))), "nan_in_ct"),
    Case("missing_ct", "nifti", lambda d: (d / "ct.nii.gz").unlink(), "missing_ct"),
    Case("missing_pet", "nifti", lambda d: (d / "pet.nii.gz").unlink(), "missing_pet"),
    Case("missing_mask", "nifti", lambda d: (d / "lesions.nii.gz").unlink(), "missing_mask"),
    Case("missing_anatomy", "nifti", lambda d: (d / "anatomy.nii.gz").unlink(), "missing_anatomy"),
    # ---- the PET-BIDS sidecar
    Case("missing_sidecar", "nifti", lambda d: (d / "pet.json").unlink(), "missing_suv_tags"),
    Case("sidecar_not_json", "nifti", lambda d: (d / "pet.json").write_text("{units: Bq/mL"), "unreadable_file"),
    Case("sidecar_without_weight", "nifti", lambda d: _sidecar(d, BodyWeight=None), "missing_suv_tags"),
    Case("sidecar_unknown_units", "nifti", lambda d: _sidecar(d, Units="counts"), "unsupported_pet_units"),
    Case("weight_in_grams", "nifti", lambda d: _sidecar(d, BodyWeight=59200), "implausible_weight"),
    Case("weight_of_a_toddler_typo", "nifti", lambda d: _sidecar(d, BodyWeight=7.5), "implausible_weight"),
    Case("dose_bq_labelled_mbq", "nifti", lambda d: _sidecar(d, InjectedRadioactivity=lambda v: v * 1e6),
         "implausible_dose"),
    Case("dose_gbq_labelled_mbq", "nifti", lambda d: _sidecar(d, InjectedRadioactivity=lambda v: v / 1e3),
         "implausible_dose"),
    Case("uptake_two_minutes", "nifti", lambda d: _sidecar(d, InjectionStart=-120.0), "implausible_uptake"),
    Case("uptake_ten_hours", "nifti", lambda d: _sidecar(d, InjectionStart=-36000.0), "implausible_uptake"),
    Case("injection_after_scan", "nifti", lambda d: _sidecar(d, InjectionStart=600.0), "implausible_uptake"),
    # ---- PET values and reference region
    Case("all_negative_pet", "nifti", lambda d: _rewrite(d / "pet.nii.gz", lambda a: -np.abs(a) - 1),
         "negative_pet"),
    Case("all_zero_pet", "nifti", lambda d: _rewrite(d / "pet.nii.gz", np.zeros_like), "negative_pet"),
    Case("pet_kbq_labelled_bq", "nifti", lambda d: _sidecar(d, Units="kBq/mL"), "implausible_reference_uptake"),
    Case("pet_bq_labelled_suv", "nifti", lambda d: _sidecar(d, Units="g/mL"), "implausible_reference_uptake"),
    Case("pet_counts_scaled", "nifti", lambda d: _rewrite(d / "pet.nii.gz", lambda a: a * 0.05),
         "implausible_reference_uptake"),
    Case("pet_of_another_patient", "nifti", _other_patients_pet, "pet_ct_mismatch", other=True),
    # ---- geometry
    Case("spacing_x1000", "nifti", lambda d: _rewrite(d / "ct.nii.gz", spacing=lambda s: tuple(v * 1000 for v in s)),
         "implausible_spacing"),
    Case("two_slices", "nifti", _cut_to_two_slices, "too_few_slices"),
    Case("anatomy_off_grid", "nifti", lambda d: _rewrite(d / "anatomy.nii.gz", lambda a: a[:, :, :-4].copy()),
         "geometry_mismatch"),
    Case("mask_off_grid", "nifti", lambda d: _rewrite(d / "lesions.nii.gz", lambda a: a[:, 2:].copy()),
         "geometry_mismatch"),
    Case("pet_far_away", "nifti", lambda d: _rewrite(d / "pet.nii.gz", origin_shift=np.array([0, 0, 9000.0])),
         "geometry_mismatch"),
    # ---- label maps: own dtype, never wrapped, never an unknown site
    Case("anatomy_label_9999", "nifti", lambda d: _rewrite(d / "anatomy.nii.gz", lambda a: np.where(
        a == a.max(), 9999, a.astype(np.uint16))), "unknown_anatomy_label"),
    Case("anatomy_label_70000", "nifti", lambda d: _rewrite(d / "anatomy.nii.gz", lambda a: np.where(
        a == a.max(), 70000, a.astype(np.uint32))), "label_out_of_range"),
    Case("mask_fractional", "nifti", lambda d: _rewrite(d / "lesions.nii.gz", lambda a: a * 0.5, np.float32),
         "invalid_labels"),
    Case("mask_negative", "nifti", lambda d: _rewrite(d / "lesions.nii.gz", lambda a: -a.astype(np.int16)),
         "invalid_labels"),
    Case("anatomy_sidecar_other_names", "nifti", lambda d: (d / "anatomy.json").write_text(json.dumps(
        {"1": "spleen", "2": "liver"})), "anatomy_label_mismatch"),
    Case("anatomy_sidecar_not_json", "nifti", lambda d: (d / "anatomy.json").write_bytes(b"\xff\xfe{"),
         "unreadable_file"),
    # ---- inputs that are unusual but fine: ingested, correctly
    Case("mask_label_256_uint16", "nifti", lambda d: _rewrite(d / "lesions.nii.gz", _largest_lesion_to(256)), None),
    Case("lesion_free_study", "nifti", lambda d: _rewrite(d / "lesions.nii.gz", np.zeros_like), None),
    Case("mask_of_one_voxel", "nifti", lambda d: _rewrite(d / "lesions.nii.gz", lambda a: np.where(
        np.arange(a.size).reshape(a.shape) == a.size // 2, 1, 0).astype(np.uint8)), None),
    Case("no_anatomy_delivered", "nifti", lambda d: None, None, row=lambda r: r.update(anatomy_path="")),
    # ---- DICOM
    Case("dicom_half_pixel_data", "dicom", lambda d: _dicom(d, "ct", _half_pixel_data, slice(4, 5)),
         "truncated_pixel_data"),
    Case("dicom_truncated_slice", "dicom", lambda d: _truncate(_slices(d, "pet")[3], 0.6), "truncated_pixel_data"),
    Case("dicom_garbage_slice", "dicom", lambda d: _slices(d, "ct")[5].write_bytes(b"\x00garbage" * 100),
         "corrupt_dicom"),
    Case("dicom_no_rescale", "dicom", lambda d: _dicom(d, "ct", lambda ds: delattr(ds, "RescaleSlope"),
                                                       slice(6, 7)), "missing_rescale"),
    Case("dicom_no_intercept", "dicom", lambda d: _dicom(d, "ct", lambda ds: delattr(ds, "RescaleIntercept"),
                                                         slice(2, 3)), "missing_rescale"),
    Case("dicom_other_pixel_spacing", "dicom", lambda d: _dicom(d, "ct", lambda ds: setattr(
        ds, "PixelSpacing", [float(v) * 1.25 for v in ds.PixelSpacing]), slice(9, 10)), "inconsistent_spacing"),
    Case("dicom_missing_slice", "dicom", lambda d: _slices(d, "ct")[20].unlink(), "missing_slices"),
    Case("dicom_duplicate_slice", "dicom", lambda d: shutil.copy(_slices(d, "pet")[10], d / "pet" / "zz_copy.dcm"),
         "missing_slices"),
    Case("dicom_wrong_modality", "dicom", lambda d: _dicom(d, "ct", lambda ds: setattr(ds, "Modality", "MR"),
                                                           slice(0, 1)), "wrong_modality"),
    Case("dicom_two_series", "dicom", lambda d: _dicom(d, "pet", lambda ds: setattr(
        ds, "SeriesInstanceUID", generate_uid()), slice(0, 1)), "multiple_series"),
    Case("dicom_other_patient_pet", "dicom", lambda d: _dicom(d, "pet", lambda ds: setattr(
        ds, "PatientID", "MRN0999999")), "patient_mismatch"),
    Case("dicom_other_frame_of_reference", "dicom", lambda d: _dicom(d, "pet", lambda ds: setattr(
        ds, "FrameOfReferenceUID", "1.2.3.4.5")), "geometry_mismatch"),
    Case("dicom_injection_after_series_no_date", "dicom", lambda d: _dicom(d, "pet", _late_injection),
         "implausible_uptake"),
    Case("dicom_weight_in_grams", "dicom", lambda d: _dicom(d, "pet", lambda ds: setattr(
        ds, "PatientWeight", float(ds.PatientWeight) * 1000)), "implausible_weight"),
    Case("dicom_dose_in_mbq", "dicom", lambda d: _dicom(d, "pet", lambda ds: setattr(
        ds.RadiopharmaceuticalInformationSequence[0], "RadionuclideTotalDose",
        float(ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose) / 1e6)), "implausible_dose"),
    Case("dicom_no_weight", "dicom", lambda d: _dicom(d, "pet", lambda ds: delattr(ds, "PatientWeight")),
         "missing_suv_tags"),
    Case("dicom_units_counts", "dicom", lambda d: _dicom(d, "pet", lambda ds: setattr(ds, "Units", "CNTS")),
         "unsupported_pet_units"),
]

# Manifest rows that are rejected as rows (they name a copy of a good study): (case, reason, row edit)
ROW_CASES = [
    ("unknown_vendor", "invalid_manifest_row", lambda r: r.update(vendor="Philips")),
    ("unknown_tracer", "invalid_manifest_row", lambda r: r.update(tracer="DOTATATE")),
    ("empty_patient_id", "invalid_manifest_row", lambda r: r.update(patient_id="")),
    ("empty_study_key", "invalid_manifest_row", lambda r: r.update(study_key="")),
]


@dataclass
class Corpus:
    settings: Settings
    summary: object
    keys: dict[str, str]  # case name -> study key
    good: list[str]  # keys of the untouched studies
    log: str
    quarantine: list


@pytest.fixture(scope="module")
def corpus(delivery, tmp_path_factory) -> Corpus:
    root = delivery.copy(tmp_path_factory.mktemp("corpus") / "raw").root
    settings = Settings(home=tmp_path_factory.mktemp("corpus_home"))
    rows = {k: r.model_dump(mode="json") for k, r in delivery.rows.items()}
    good = list(rows)
    nifti = [k for k in good if delivery.studies[k].source_format == "nifti"]
    dicom = next(k for k in good if delivery.studies[k].source_format == "dicom")
    out_rows = [rows[k] for k in good]
    keys: dict[str, str] = {}

    def copy_study(src: str, key: str) -> tuple[dict, Path]:
        shutil.copytree(root / "studies" / src, root / "studies" / key)
        row = {f: (v.replace(src, key) if isinstance(v, str) else v) for f, v in rows[src].items()}
        row["study_key"] = key
        return row, root / "studies" / key

    for i, case in enumerate(CASES):
        key = f"CASE{i:02d}_{case.name}"
        src = nifti[0] if case.fmt == "nifti" else dicom
        row, folder = copy_study(src, key)
        if case.other:  # a study of another patient (not this patient's other visit)
            other = next(k for k in nifti if rows[k]["patient_id"] != rows[src]["patient_id"])
            case.damage(folder, root / "studies" / other)
        else:
            case.damage(folder)
        if case.row:
            case.row(row)
        keys[case.name] = key
        out_rows.append(row)
    for j, (name, _, edit) in enumerate(ROW_CASES):
        row, _ = copy_study(nifti[0], f"ROW{j:02d}_{name}")
        edit(row)
        keys[name] = row["study_key"]
        out_rows.append(row)
    # Two rows with one key; two keys on one folder.
    for key, folder in (("DUPKEY_a", "DUPKEY_a"), ("DUPKEY_a", "DUPKEY_b"), ("FOLDER_x", "FOLDER_x"),
                        ("FOLDER_y", "FOLDER_x")):
        if not (root / "studies" / folder).exists():
            copy_study(nifti[1], folder)
        row = {f: (v.replace(nifti[1], folder) if isinstance(v, str) else v) for f, v in rows[nifti[1]].items()}
        row["study_key"] = key
        out_rows.append(row)
    import pandas as pd
    pd.DataFrame(out_rows, columns=list(MANIFEST.columns)).fillna("").to_csv(root / "manifest.csv", index=False)

    handler = _Collect()
    logging.getLogger().addHandler(handler)
    level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    try:
        summary = ingest_all(settings, raw_dir=root, progress=False)
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(level)
    quarantine = QUARANTINE.records(QUARANTINE.read(settings.table_path("quarantine")))
    return Corpus(settings, summary, keys, good, "\n".join(handler.lines), quarantine)


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))


def _sid(c: Corpus, key: str) -> str:
    return study_pseudonym(key, c.settings.pseudonym_key)


def test_the_corpus_has_at_least_40_kinds():
    assert len(CASES) + len(ROW_CASES) + 2 >= 40


@pytest.mark.parametrize("case", [c for c in CASES if c.reason], ids=lambda c: c.name)
def test_each_bad_study_ends_as_its_named_reason(corpus, case):
    sid = _sid(corpus, corpus.keys[case.name])
    records = [q for q in corpus.quarantine if q.item == sid]
    assert [(q.stage, q.reason) for q in records] == [("ingest", case.reason)], records
    assert records[0].detail and records[0].source.startswith(sid)
    assert sid not in list_studies(corpus.settings.store_url)


@pytest.mark.parametrize("case", [c for c in CASES if not c.reason], ids=lambda c: c.name)
def test_unusual_but_valid_studies_are_ingested_correctly(corpus, case, delivery):
    sid = _sid(corpus, corpus.keys[case.name])
    assert not [q for q in corpus.quarantine if q.item == sid]
    stored = open_study(corpus.settings.store_url, sid)
    source = open_study(corpus.settings.store_url, _sid(corpus, [k for k in corpus.good if
                                                                 delivery.studies[k].source_format == "nifti"][0]))
    if case.name == "mask_label_256_uint16":  # the relabelled lesion is not dropped (no wrap to 0)
        assert stored.study.lesion_count == source.study.lesion_count >= 1
        np.testing.assert_array_equal(stored.lesions[...] > 0, source.lesions[...] > 0)
    elif case.name in ("lesion_free_study", "mask_of_one_voxel"):
        assert stored.study.lesion_count == 0 and not stored.lesion_records
        assert not np.any(stored.lesions[...])
    elif case.name == "no_anatomy_delivered":
        assert stored.anatomy is None and stored.study.lesion_count == source.study.lesion_count


@pytest.mark.parametrize("name, reason", [(n, r) for n, r, _ in ROW_CASES])
def test_bad_manifest_rows_are_rejected_alone(corpus, name, reason):
    key = corpus.keys[name]
    item = _sid(corpus, key) if key else None
    records = [q for q in corpus.quarantine if (q.item == item if item else q.item.startswith("row-"))
               and q.reason == reason and q.source.startswith("manifest.csv:row ")]
    assert len(records) == 1, records
    if item:
        assert item not in list_studies(corpus.settings.store_url)


def test_duplicate_keys_and_shared_folders_reject_every_row_involved(corpus):
    dup = [q for q in corpus.quarantine if q.item == _sid(corpus, "DUPKEY_a")]
    assert [q.reason for q in dup] == ["duplicate_study_key"] * 2
    shared = [q for q in corpus.quarantine if q.item in (_sid(corpus, "FOLDER_x"), _sid(corpus, "FOLDER_y"))]
    assert sorted(q.reason for q in shared) == ["duplicate_study_folder"] * 2
    stored = set(list_studies(corpus.settings.store_url))
    assert not stored & {_sid(corpus, k) for k in ("DUPKEY_a", "FOLDER_x", "FOLDER_y")}


def test_the_good_studies_beside_them_go_through(corpus):
    stored = set(list_studies(corpus.settings.store_url))
    valid = [c for c in CASES if c.reason is None]
    expected = {_sid(corpus, k) for k in corpus.good} | {_sid(corpus, corpus.keys[c.name]) for c in valid}
    assert stored == expected
    studies = STUDIES.records(STUDIES.read(corpus.settings.table_path("studies")))
    assert {s.study_id for s in studies} == expected
    bad = len([c for c in CASES if c.reason]) + len(ROW_CASES) + 4
    assert (corpus.summary.ingested, corpus.summary.quarantined) == (len(expected), bad)
    assert len(corpus.quarantine) == bad


def test_every_study_in_the_store_passes_the_plausibility_checks(corpus):
    bands = corpus.settings.ingest.plausibility
    for sid in list_studies(corpus.settings.store_url):
        assert verify_stored(open_study(corpus.settings.store_url, sid), bands) == []


def test_no_raw_folder_name_in_quarantine_rows_tables_or_logs(corpus):
    raw_names = [*corpus.keys.values(), *corpus.good, "DUPKEY", "FOLDER_"]
    raw_names = [k for k in raw_names if k]
    text = corpus.log + "\n" + "\n".join(q.model_dump_json() for q in corpus.quarantine) + str(corpus.summary)
    for path in corpus.settings.tables_dir.rglob("*.parquet"):
        import pandas as pd
        text += pd.read_parquet(path).astype(str).to_string()
    assert not [k for k in raw_names if k in text]
    assert "quarantined" in corpus.log  # the log does name each problem (by pseudonym)
