"""End-to-end ingestion of a tiny generated delivery: round trip, statistics, idempotency, quarantine, crashes."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
import SimpleITK as sitk

from data_contracts.findings import Vendor
from data_contracts.records import PSEUDO_PATIENT, PSEUDO_STUDY
from data_contracts.tables import LESIONS, QUARANTINE, STUDIES, TRUTH
from tasks.ingest import ingest as ingest_module
from tasks.ingest import ingest_all, list_studies, open_study, study_pseudonym
from tasks.ingest.store import MARKER

REPO = Path(__file__).resolve().parents[3]


def _sid(settings, key: str) -> str:
    return study_pseudonym(key, settings.pseudonym_key)


def _image(volume, array=None) -> sitk.Image:
    image = sitk.GetImageFromArray(np.asarray(volume.array if array is None else array))
    image.SetSpacing(volume.spacing)
    image.SetOrigin(volume.origin)
    image.SetDirection(volume.direction)
    return image


def _pet_on_ct_grid(study) -> np.ndarray:
    """The generator's SUV resampled onto the CT grid with SimpleITK: what the store should hold."""
    pet = _image(study.pet, np.asarray(study.pet.array, dtype=np.float32))
    return sitk.GetArrayFromImage(sitk.Resample(pet, _image(study.ct), sitk.Transform(), sitk.sitkLinear, 0.0,
                                                sitk.sitkFloat32))


def _components(study, min_voxels: int) -> np.ndarray:
    """Lesion instances computed independently (ITK's connected components, 26-connected, small ones removed)."""
    mask = _image(study.lesions, (np.asarray(study.lesions.array) > 0).astype(np.uint8))
    labels = sitk.ConnectedComponent(mask, True)
    return sitk.GetArrayFromImage(sitk.RelabelComponent(labels, minimumObjectSize=min_voxels, sortByObjectSize=False))


def _store_files(settings) -> dict[str, int]:
    root = Path(settings.store_url)
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


# ----------------------------------------------------------------------------------------- round trip
def test_round_trip_equals_source_with_geometry_and_lesion_statistics(raw, settings):
    summary = ingest_all(settings, raw_dir=raw.root, progress=False)
    n = len(raw.studies)
    assert (summary.ingested, summary.skipped, summary.quarantined) == (n, 0, 0)
    assert len(list_studies(settings.store_url)) == n
    truth = TRUTH.records(TRUTH.read(raw.root / "truth/lesions.parquet"))

    for key, study in raw.studies.items():
        stored = open_study(settings.store_url, _sid(settings, key))
        hu = np.asarray(study.ct.array)
        if study.source_format == "dicom" and study.vendor is Vendor.siemens:  # 12 bits, intercept -1024
            hu = np.clip(hu, -1024, 3071)
        assert stored.ct.dtype == np.int16 and stored.pet.dtype == np.float32
        np.testing.assert_array_equal(stored.ct[...], hu)
        assert stored.geometry.shape == study.ct.shape
        assert stored.geometry.spacing == pytest.approx(study.ct.spacing)
        assert stored.geometry.origin == pytest.approx(study.ct.origin, abs=1e-3)
        assert stored.geometry.direction == pytest.approx(study.ct.direction)
        assert stored.attrs["units"] == {"ct": "HU", "pet": "SUVbw", "lesions": "instance", "anatomy": "label"}
        assert stored.attrs["vendor"] == study.vendor.value and stored.attrs["tracer"] == study.tracer.value
        # PET on its own grid: the source PET's geometry and its SUV voxel for voxel. DICOM PET is int16 with a
        # per-slice slope: relative precision ~1/32767 of each slice's maximum.
        assert stored.pet_geometry.shape == study.pet.shape == stored.pet.shape
        assert stored.pet_geometry.spacing == pytest.approx(study.pet.spacing)
        assert stored.pet_geometry.origin == pytest.approx(study.pet.origin, abs=1e-3)
        assert stored.pet_geometry.direction == pytest.approx(study.pet.direction)
        native = stored.pet[...]
        np.testing.assert_allclose(native, study.pet.array, rtol=1e-3, atol=1e-3 * native.max())
        # Interpolated onto the CT grid, it is what SimpleITK makes of the source PET there.
        pet = stored.pet_on(stored.geometry)
        np.testing.assert_allclose(pet, _pet_on_ct_grid(study), rtol=1e-3, atol=1e-3 * pet.max())
        np.testing.assert_array_equal(stored.anatomy[...], study.anatomy.array)
        # The label map is read whole, never by patch: uint8 (every class fits) in whole slabs of slices.
        assert stored.anatomy.dtype == np.uint8
        assert stored.anatomy.chunks == (min(settings.ingest.chunks[0], study.ct.shape[0]), *study.ct.shape[1:])

        # Instances: the same components ITK finds, numbered in raster order of first voxel.
        instances = stored.lesions[...]
        expected = _components(study, settings.ingest.min_lesion_voxels)
        np.testing.assert_array_equal(instances > 0, expected > 0)
        records = stored.lesion_records
        assert [r.instance for r in records] == list(range(1, expected.max() + 1)) and records
        for r in records:
            voxels = instances == r.instance
            assert len(np.unique(expected[voxels])) == 1  # one ITK component, whole
            assert r.voxels == voxels.sum() == (expected == expected[voxels][0]).sum()
            assert r.volume_ml == pytest.approx(voxels.sum() * np.prod(study.ct.spacing) / 1000)
            zz, yy, xx = np.nonzero(voxels)
            assert r.bbox == (zz.min(), yy.min(), xx.min(), zz.max() + 1, yy.max() + 1, xx.max() + 1)
            centre = np.asarray(study.ct.origin) + np.mean([xx, yy, zz], axis=1) * np.asarray(study.ct.spacing)
            np.testing.assert_allclose(r.centroid_mm, centre, atol=1e-3)  # NIfTI keeps float32 geometry
            assert r.suv_max == pytest.approx(pet[voxels].max(), rel=1e-5)
            assert r.suv_mean == pytest.approx(pet[voxels].mean(), rel=1e-4)
            labels, counts = np.unique(stored.anatomy[...][voxels], return_counts=True)
            if (labels > 0).any():
                assert r.anatomy_label == labels[labels > 0][np.argmax(counts[labels > 0])]
            assert r.touches_edge == bool(zz.min() == 0 or yy.min() == 0 or xx.min() == 0 or
                                          zz.max() + 1 == instances.shape[0] or yy.max() + 1 == instances.shape[1]
                                          or xx.max() + 1 == instances.shape[2])
        # The generator's truth: each masked lesion's SUVmax and centre come back (matched by position).
        for t in [t for t in truth if t.study_key == key and t.in_mask]:
            nearest = min(records, key=lambda r: np.linalg.norm(np.subtract(r.centroid_mm, t.center_mm)))
            assert np.linalg.norm(np.subtract(nearest.centroid_mm, t.center_mm)) < 2 * max(study.ct.spacing)
            assert nearest.suv_max == pytest.approx(t.suv_max, rel=0.02, abs=0.01)

    studies_table = STUDIES.read(settings.table_path("studies"))
    lesions_table = LESIONS.read(settings.table_path("lesions"))
    assert len(studies_table) == n and len(lesions_table) == studies_table.lesion_count.sum() > 0
    assert len(QUARANTINE.read(settings.table_path("quarantine"))) == 0
    assert studies_table.patient_id.str.fullmatch(PSEUDO_PATIENT[1:-1]).all()
    assert studies_table.study_id.str.fullmatch(PSEUDO_STUDY[1:-1]).all()
    key = raw.key("dicom")
    row = studies_table.set_index("study_id").loc[_sid(settings, key)]
    study = raw.studies[key]
    assert row["acquisition__source_format"] == "dicom"
    assert row["acquisition__injected_dose_mbq"] == pytest.approx(study.injected_dose_mbq)
    assert row["acquisition__patient_weight_kg"] == pytest.approx(study.weight_kg, abs=0.05)
    uptake = (study.acquisition_time - study.injection_time).total_seconds() / 60
    assert row["acquisition__uptake_minutes"] == pytest.approx(uptake)
    assert tuple(row["acquisition__pet_shape"]) == study.pet.shape


def test_patch_reads_are_chunked(raw, settings):
    """Readers slice patches: a small window decodes only the chunks it touches."""
    ingest_all(settings, raw_dir=raw.root, progress=False)
    key = raw.key("nifti")
    stored = open_study(settings.store_url, _sid(settings, key))
    assert stored.ct.chunks == tuple(min(c, s) for c, s in zip(settings.ingest.chunks, stored.ct.shape))
    window = (slice(40, 48), slice(10, 30), slice(12, 40))
    np.testing.assert_array_equal(stored.ct[window], raw.studies[key].ct.array[window])


# ------------------------------------------------------------------------------------------ idempotency
def test_second_ingest_does_no_work(raw, settings, monkeypatch):
    ingest_all(settings, raw_dir=raw.root, progress=False)
    before = _store_files(settings)
    tables_before = {name: pd.read_parquet(settings.table_path(name)) for name in ("studies", "lesions")}

    def must_not_run(*args, **kwargs):
        raise AssertionError("an unchanged study was ingested again")

    monkeypatch.setattr(ingest_module, "_ingest", must_not_run)
    summary = ingest_all(settings, raw_dir=raw.root, progress=False)
    assert (summary.ingested, summary.skipped, summary.quarantined) == (0, len(raw.studies), 0)
    assert _store_files(settings) == before  # not one file rewritten
    for name, table in tables_before.items():  # same rows, no duplicates
        pd.testing.assert_frame_equal(pd.read_parquet(settings.table_path(name)), table)


def test_changed_input_is_reingested_and_its_rows_replaced(raw, settings):
    ingest_all(settings, raw_dir=raw.root, progress=False)
    key = raw.key("nifti")
    old = open_study(settings.store_url, _sid(settings, key)).lesion_records
    before = len(old)

    def add_lesion(a):
        a[5:8, 0:3, 0:3] = 1  # a new lesion cut by the field of view's edge (in the air of the corner)
        return a

    _rewrite_nifti(raw.root / raw.rows[key].lesions_path, add_lesion)
    summary = ingest_all(settings, raw_dir=raw.root, progress=False)
    assert (summary.ingested, summary.skipped) == (1, len(raw.studies) - 1)
    stored = open_study(settings.store_url, _sid(settings, key))
    assert stored.study.lesion_count == before + 1
    records = stored.lesion_records
    [edge] = [r for r in records if r.bbox[:3] == (5, 0, 0)]
    assert edge.touches_edge and edge.voxels == 27 and edge.bbox == (5, 0, 0, 8, 3, 3)
    assert edge.anatomy_label is None and edge.suv_max < 0.5  # outside the body: no structure, no uptake
    others = [(r.bbox, r.voxels, r.suv_max, r.touches_edge) for r in records if r is not edge]
    assert sorted(others) == sorted((r.bbox, r.voxels, r.suv_max, r.touches_edge) for r in old)
    lesions = LESIONS.read(settings.table_path("lesions"))
    assert (lesions.study_id == _sid(settings, key)).sum() == before + 1
    assert not lesions.duplicated(["study_id", "instance"]).any()
    assert LESIONS.records(lesions)[0].study_id  # still valid records


# ------------------------------------------------------------------------------------------- quarantine
def _rewrite_nifti(path: Path, change) -> None:
    image = sitk.ReadImage(str(path))
    out = sitk.GetImageFromArray(change(sitk.GetArrayFromImage(image)))
    out.SetSpacing(image.GetSpacing())
    out.SetOrigin(image.GetOrigin())
    out.SetDirection(image.GetDirection())
    sitk.WriteImage(out, str(path), True)


def _other_patient_pet(raw) -> tuple[str, str]:
    key = raw.key("dicom")
    for f in (raw.root / raw.rows[key].pet_path).iterdir():
        ds = pydicom.dcmread(f)
        ds.PatientID = "MRN0999999"
        ds.save_as(f)
    return key, raw.rows[key].pet_path


# The bad-input corpus (every quarantine reason next to good studies) is test_bad_input.py.


def test_fixed_study_leaves_quarantine(raw, settings):
    pet = raw.root / raw.rows[raw.key("nifti")].pet_path
    kept = pet.read_bytes()
    pet.unlink()
    assert ingest_all(settings, raw_dir=raw.root, progress=False).quarantined == 1
    pet.write_bytes(kept)
    summary = ingest_all(settings, raw_dir=raw.root, progress=False)
    assert (summary.ingested, summary.skipped, summary.quarantined) == (1, len(raw.studies) - 1, 0)
    assert len(QUARANTINE.read(settings.table_path("quarantine"))) == 0


# ------------------------------------------------------------------------------------------ privacy
def test_names_and_ids_reach_no_store_table_or_log(raw, settings, caplog):
    _other_patient_pet(raw)  # one quarantine record too, so its text is checked as well
    with caplog.at_level(logging.DEBUG):
        summary = ingest_all(settings, raw_dir=raw.root, progress=False)
    assert summary.quarantined == 1
    dicom = raw.studies[raw.key("dicom")]
    planted = pydicom.dcmread(next((raw.root / raw.rows[raw.key("dicom")].ct_path).iterdir()),
                              stop_before_pixels=True)
    assert str(planted.PatientName) == dicom.patient_name and planted.PatientID == dicom.patient_id
    secrets = {"MRN0999999"}
    for s in raw.studies.values():
        secrets |= {s.patient_id, s.patient_name, s.birth_date}
        secrets |= {part for part in s.patient_name.replace("^", " ").split() if len(part) >= 4}
    for path in [*Path(settings.store_url).rglob("*"), *settings.tables_dir.rglob("*")]:
        if path.is_file():
            data = path.read_bytes()
            assert not [s for s in secrets if s.encode() in data], path
    for name in ("studies", "lesions", "quarantine"):
        text = pd.read_parquet(settings.table_path(name)).astype(str).to_string()
        assert not [s for s in secrets if s in text], name
    assert not [s for s in secrets if s in caplog.text + str(summary)]


# ------------------------------------------------------------------------------------- crash recovery
KILLER = """
import os, signal, sys
from pathlib import Path
from data_contracts.settings import Settings
from tasks.ingest import ingest, store

calls = 0
create = store.StudyWriter.create

def create_then_die(self, name, geometry):
    global calls
    calls += 1
    if calls == 7:  # the second study: ct and pet being written, lesions not yet -> a group without its marker
        os.kill(os.getpid(), signal.SIGKILL)
    return create(self, name, geometry)

store.StudyWriter.create = create_then_die
ingest.ingest_all(Settings(home=Path(sys.argv[2])), raw_dir=Path(sys.argv[1]), progress=False)
"""


def test_ingest_killed_midway_then_rerun_yields_the_complete_store(raw, settings):
    env = {**os.environ, "PETCAP_INGEST__MAX_WORKERS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", KILLER, str(raw.root), str(settings.home)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    complete = list_studies(settings.store_url)
    groups = [p for p in Path(settings.store_url).iterdir() if p.is_dir()]
    assert len(complete) == 1 and len(groups) == 2  # one whole group, one interrupted
    interrupted = next(p.name for p in groups if p.name not in complete)
    assert (Path(settings.store_url) / interrupted / "v1" / "ct" / "zarr.json").exists()
    assert not settings.table_path("studies").exists()

    n = len(raw.studies)
    summary = ingest_all(settings, raw_dir=raw.root, progress=False)
    assert (summary.ingested, summary.skipped, summary.quarantined) == (n - 1, 1, 0)
    assert sorted(list_studies(settings.store_url)) == sorted(_sid(settings, k) for k in raw.studies)
    redone = open_study(settings.store_url, interrupted)
    assert redone.attrs[MARKER]
    key = next(k for k in raw.studies if _sid(settings, k) == interrupted)
    np.testing.assert_array_equal(redone.anatomy[...], raw.studies[key].anatomy.array)
    np.testing.assert_array_equal(redone.lesions[...] > 0, _components(raw.studies[key], 3) > 0)
    assert len(STUDIES.read(settings.table_path("studies"))) == n
    lesions = LESIONS.read(settings.table_path("lesions"))
    assert len(lesions) == STUDIES.read(settings.table_path("studies")).lesion_count.sum()


REINGEST_KILLER = """
import os, signal, sys
from pathlib import Path
from data_contracts.settings import Settings
from tasks.ingest import ingest, store

create = store.StudyWriter.create

def create_then_die(self, name, geometry):
    if name == "lesions":  # the new version's ct and pet are written, the commit has not happened
        os.kill(os.getpid(), signal.SIGKILL)
    return create(self, name, geometry)

store.StudyWriter.create = create_then_die
ingest.ingest_all(Settings(home=Path(sys.argv[2])), raw_dir=Path(sys.argv[1]), progress=False)
"""


def test_a_kill_during_reingest_leaves_the_old_study_readable(raw, settings):
    ingest_all(settings, raw_dir=raw.root, progress=False)
    key = raw.key("nifti")
    sid = _sid(settings, key)
    old = open_study(settings.store_url, sid)
    old_ct, old_record = old.ct[...], old.attrs["study"]
    _rewrite_nifti(raw.root / raw.rows[key].ct_path, lambda a: (a + 5).astype(a.dtype))  # a changed delivery

    env = {**os.environ, "PETCAP_INGEST__MAX_WORKERS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", REINGEST_KILLER, str(raw.root), str(settings.home)], env=env,
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == -9, done.stderr
    # Killed after the new version's arrays were written, before the commit: the old study is whole and listed.
    assert sid in list_studies(settings.store_url)
    kept = open_study(settings.store_url, sid)
    np.testing.assert_array_equal(kept.ct[...], old_ct)
    assert kept.attrs["study"] == old_record and kept.attrs["version"] == "v1"
    assert (Path(settings.store_url) / sid / "v2" / "ct" / "zarr.json").exists()  # the uncommitted new version
    assert sid in set(STUDIES.read(settings.table_path("studies")).study_id)

    summary = ingest_all(settings, raw_dir=raw.root, progress=False)
    assert (summary.ingested, summary.quarantined) == (1, 0)
    new = open_study(settings.store_url, sid)
    np.testing.assert_array_equal(new.ct[...], old_ct + 5)
    # The stale v2 was cleared and rewritten as the next version; the old one retired after the commit.
    assert sorted(p.name for p in (Path(settings.store_url) / sid).iterdir() if p.is_dir()) == [new.attrs["version"]]


# ---------------------------------------------------------------------------------- store location, grids
def test_any_fsspec_url_is_a_store_root(raw, settings):
    url = f"memory://petcap-test-{os.getpid()}/volumes.zarr"
    summary = ingest_all(settings, raw_dir=raw.root, store_url=url, progress=False)
    assert summary.ingested == len(raw.studies)
    key = raw.key("nifti")
    np.testing.assert_array_equal(open_study(url, _sid(settings, key)).ct[...], raw.studies[key].ct.array)
    assert ingest_all(settings, raw_dir=raw.root, store_url=url, progress=False).skipped == len(raw.studies)


def test_configured_spacing_resamples_every_array(raw, settings):
    key = raw.key("nifti")
    study = raw.studies[key]
    ct_spacing = tuple(round(s * 0.8, 3) for s in study.ct.spacing)  # finer: lesions keep their voxels
    pet_spacing = tuple(round(s * 1.5, 3) for s in study.pet.spacing)
    custom = settings.model_copy(update={"ingest": settings.ingest.model_copy(
        update={"ct_spacing_mm": ct_spacing, "pet_spacing_mm": pet_spacing})})
    ingest_all(custom, raw_dir=raw.root, progress=False)
    stored = open_study(custom.store_url, _sid(custom, key))
    extent = np.asarray(study.ct.shape[::-1]) * np.asarray(study.ct.spacing)
    assert stored.geometry.spacing == pytest.approx(ct_spacing)
    assert stored.ct.shape == tuple(np.round(extent / ct_spacing).astype(int))[::-1]
    assert stored.lesions.shape == stored.anatomy.shape == stored.ct.shape
    assert stored.pet_geometry.spacing == pytest.approx(pet_spacing)
    pet_extent = np.asarray(study.pet.shape[::-1]) * np.asarray(study.pet.spacing)  # over the PET's own view
    assert stored.pet.shape == tuple(np.round(pet_extent / pet_spacing).astype(int))[::-1]
    pet_corner = np.asarray(study.pet.origin) - np.asarray(study.pet.spacing) / 2
    np.testing.assert_allclose(np.asarray(stored.pet_geometry.origin) - np.asarray(pet_spacing) / 2, pet_corner,
                               atol=1e-3)
    corner = np.asarray(study.ct.origin) - np.asarray(study.ct.spacing) / 2  # outer corner of voxel 0
    np.testing.assert_allclose(np.asarray(stored.geometry.origin) - np.asarray(ct_spacing) / 2, corner, atol=1e-6)
    assert stored.study.lesion_count >= 1
    # CT resampled linearly: the air outside and soft tissue inside keep their HU classes.
    assert stored.ct[0, 0, 0] < -900
    assert np.median(stored.ct[...][stored.anatomy[...] > 0]) > -200


def test_a_float_ct_is_converted_after_reading_and_an_int16_ct_streamed(raw, settings, monkeypatch):
    """An int16 NIfTI CT is written slab by slab while it is inflated; a float one (not streamable: its voxels
    become int16 HU only after the read) is written whole afterwards. Both store the same HU."""
    key = raw.key("nifti")
    study, path = raw.studies[key], raw.root / raw.rows[key].ct_path
    image = sitk.ReadImage(str(path))
    assert image.GetPixelID() == sitk.sitkInt16
    streamed = []
    monkeypatch.setattr(ingest_module.SlabWriter, "__call__", _spy(ingest_module.SlabWriter.__call__, streamed))
    ingest_all(settings, raw_dir=raw.root, progress=False)
    assert streamed and all(z1 - z0 <= 64 for z0, z1 in streamed)
    np.testing.assert_array_equal(open_study(settings.store_url, _sid(settings, key)).ct[...], study.ct.array)
    sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32), str(path))
    streamed.clear()
    ingest_all(settings, raw_dir=raw.root, progress=False)
    np.testing.assert_array_equal(open_study(settings.store_url, _sid(settings, key)).ct[...], study.ct.array)


def _spy(method, calls: list):
    def wrapper(self, z0, z1, slab):
        calls.append((z0, z1))
        return method(self, z0, z1, slab)
    return wrapper
