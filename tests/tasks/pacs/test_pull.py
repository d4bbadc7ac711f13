"""``tasks.pacs.pull`` against a real Orthanc: QIDO + WADO into the raw drop layout, incremental, resumable,
and bad studies quarantined while the others go on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import SimpleITK as sitk

from data_contracts.settings import PacsSettings, Settings
from data_contracts.tables import MANIFEST, QUARANTINE, STUDIES
from tasks.pacs.pull import StudyRef, find_studies, pull_studies
from tests.pacs_support import upload_study

REPO = Path(__file__).resolve().parents[3]


def _settings(tmp_path: Path, pacs, reports: Path | None = None) -> Settings:
    return Settings(home=tmp_path / "home", raw_dir=tmp_path / "drop",
                    pacs=PacsSettings(url=pacs.dicomweb, reports_dir=reports, batch_size=1))


def _studies(drop: Path) -> list[Path]:
    return sorted(p for p in (drop / "studies").iterdir() if p.is_dir())


@pytest.fixture(scope="module")
def uploaded(pacs, dicom_drop):
    """The two synthetic studies on the PACS, accession numbers ACC1 and ACC2."""
    studies = _studies(dicom_drop)
    return {f"ACC{i}": (s, upload_study(pacs, s, f"ACC{i}")) for i, s in enumerate(studies[:2], start=1)}


def test_pull_writes_the_drop_layout_incrementally(pacs, uploaded, tmp_path):
    reports = tmp_path / "ris"
    reports.mkdir()
    (reports / "ACC1.txt").write_text("FINDINGS: intense FDG uptake in a right hilar node, SUVmax 8.1.")
    settings = _settings(tmp_path, pacs, reports)
    assert len(find_studies(settings)) == 2  # paged one study at a time (batch_size 1)

    summary = pull_studies(settings)
    assert (summary.found, len(summary.pulled), summary.quarantined) == (2, 2, {})
    rows = MANIFEST.records(MANIFEST.read(settings.raw.manifest))
    assert sorted(r.study_key for r in rows) == sorted(summary.pulled)
    for acc, (source, study_uid) in uploaded.items():
        key = StudyRef(study_uid, acc).key
        assert key.startswith("PACS_") and acc not in key  # no accession number in a folder name
        study = settings.raw.study_dir(key)
        assert len(list((study / "ct").iterdir())) == len(list((source / "ct").iterdir()))
        assert len(list((study / "pet").iterdir())) == len(list((source / "pet").iterdir()))
        pulled = sitk.GetArrayFromImage(sitk.ReadImage(str(study / "lesions.nii.gz")))
        original = sitk.GetArrayFromImage(sitk.ReadImage(str(source / "lesions.nii.gz")))
        assert np.array_equal(pulled > 0, original > 0)  # the SEG's segments land on the same voxels
        assert len(np.unique(pulled)) == len(np.unique(original))
    key1 = StudyRef(uploaded["ACC1"][1], "ACC1").key
    assert "right hilar node" in settings.raw.report(key1).read_text()
    assert not settings.raw.report(StudyRef(uploaded["ACC2"][1], "ACC2").key).exists()  # not in the RIS export

    again = pull_studies(settings)
    assert (again.pulled, sorted(again.skipped)) == ([], sorted(summary.pulled))
    assert len(MANIFEST.read(settings.raw.manifest)) == 2


def test_pulled_studies_ingest_like_any_delivery(pacs, uploaded, tmp_path):
    from tasks.ingest import ingest_all

    settings = _settings(tmp_path, pacs)
    pulled = pull_studies(settings)
    ingest_all(settings, progress=False)
    studies = STUDIES.records(STUDIES.read(settings.table_path("studies")))
    assert len(studies) == len(pulled.pulled) == 2
    assert QUARANTINE.read(settings.table_path("quarantine")).empty


def test_bad_studies_are_quarantined_and_the_others_pulled(pacs, dicom_drop, uploaded, tmp_path, monkeypatch):
    source = _studies(dicom_drop)[0]
    no_pet = upload_study(pacs, _copy_with_new_uids(source, tmp_path / "nopet"), "ACC3", with_pet=False)
    shifted = upload_study(pacs, _copy_with_new_uids(source, tmp_path / "shift"), "ACC4", seg_shift_mm=37.0)
    settings = _settings(tmp_path, pacs)

    import tasks.pacs.pull as pull

    real = pull.pull_study
    down = StudyRef(uploaded["ACC2"][1], "ACC2").key

    def flaky(settings, c, ref):  # the PACS drops the connection while this one study is retrieved
        if ref.key != down:
            return real(settings, c, ref)
        retrieve = c.retrieve_series
        c.retrieve_series = lambda *a, **k: (_ for _ in ()).throw(requests.ConnectionError("connection reset"))
        try:
            return real(settings, c, ref)
        finally:
            c.retrieve_series = retrieve

    monkeypatch.setattr(pull, "pull_study", flaky)
    summary = pull_studies(settings)  # a date range: a CT-only study is not a PET/CT study and is not tried
    monkeypatch.setattr(pull, "pull_study", real)
    assert summary.quarantined == {StudyRef(shifted, "ACC4").key: "seg_geometry_mismatch", down: "pacs_unreachable"}
    assert summary.pulled == [StudyRef(uploaded["ACC1"][1], "ACC1").key]
    named = pull_studies(settings, study_uids=[no_pet])  # asked for by UID: it is tried, and quarantined
    assert named.quarantined == {StudyRef(no_pet, "ACC3").key: "missing_pet"}
    q = QUARANTINE.read(settings.table_path("quarantine"))
    assert sorted(q["reason"]) == ["missing_pet", "pacs_unreachable", "seg_geometry_mismatch"]
    assert not any(name.startswith(".") for name in os.listdir(settings.raw.studies))  # no partial folder left

    retry = pull_studies(settings)  # the PACS is back: the study it dropped comes in, its quarantine row goes
    assert retry.pulled == [down]
    q = QUARANTINE.read(settings.table_path("quarantine"))
    assert sorted(q["reason"]) == ["missing_pet", "seg_geometry_mismatch"]


def test_a_report_that_is_not_text_quarantines_its_study_until_the_export_is_fixed(pacs, uploaded, tmp_path):
    """Both RIS sources pass ingest's report gate at pull: a binary ``<accession>.txt`` and an empty
    ``reports.csv`` row each quarantine their study (named by its key, never the accession number) and nothing of
    it is written; the next pull, after the export is corrected, brings both in with their text."""
    reports = tmp_path / "ris"
    reports.mkdir()
    (reports / "ACC1.txt").write_bytes(b"%PDF-1.4\x00\x01\x02 a scanned report")
    (reports / "reports.csv").write_text("accession_number,text\nACC2,\n")  # the RIS row for ACC2 has no text
    settings = _settings(tmp_path, pacs, reports)
    key1, key2 = (StudyRef(uploaded[acc][1], acc).key for acc in ("ACC1", "ACC2"))
    uids = [uploaded[acc][1] for acc in ("ACC1", "ACC2")]  # other tests of the module store more studies

    summary = pull_studies(settings, study_uids=uids)
    assert summary.pulled == [] and summary.quarantined == {key1: "undecodable_report", key2: "empty_report"}
    q = QUARANTINE.read(settings.table_path("quarantine"))
    assert sorted(zip(q["item"], q["reason"], q["stage"])) == sorted(
        [(key1, "undecodable_report", "pull"), (key2, "empty_report", "pull")])
    assert "control characters" in q.set_index("item").loc[key1, "detail"]
    assert "ACC" not in q.to_json()
    assert MANIFEST.read(settings.raw.manifest).empty and _studies(settings.raw_dir) == []

    (reports / "ACC1.txt").write_bytes("Befund: Läsion im rechten Hilus, SUVmax 8,1.".encode("cp1252"))
    (reports / "reports.csv").write_text("accession_number,text\nACC2,NA\n")  # a report may say just that
    retry = pull_studies(settings, study_uids=uids)
    assert sorted(retry.pulled) == sorted([key1, key2]) and retry.quarantined == {}
    assert QUARANTINE.read(settings.table_path("quarantine")).empty
    assert settings.raw.report(key1).read_text(encoding="utf-8") == "Befund: Läsion im rechten Hilus, SUVmax 8,1."
    assert settings.raw.report(key2).read_text(encoding="utf-8") == "NA"


KILLER = """
import sys
from pathlib import Path
from data_contracts.settings import PacsSettings, Settings
from tasks.pacs.pull import pull_studies
pull_studies(Settings(home=Path(sys.argv[1]) / "home", raw_dir=Path(sys.argv[1]) / "drop",
                      pacs=PacsSettings(url=sys.argv[2])))
"""


def test_a_pull_killed_mid_study_reruns_without_loss_or_duplicates(pacs, uploaded, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", KILLER, str(tmp_path), pacs.dicomweb], env=env, cwd=REPO,
                            start_new_session=True)
    studies = tmp_path / "drop" / "studies"
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if studies.is_dir() and any(p.name.endswith(".partial") for p in studies.iterdir()):
            break  # a study is half written
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    settings = _settings(tmp_path, pacs)
    pull_studies(settings)
    rows = MANIFEST.read(settings.raw.manifest)
    everything = {StudyRef(uid, "").key for uid in (s[1] for s in uploaded.values())}
    assert everything <= set(rows["study_key"]) and rows["study_key"].is_unique
    assert {p.name for p in _studies(tmp_path / "drop")} == set(rows["study_key"])


def _copy_with_new_uids(source: Path, dst: Path) -> Path:
    """The same images as another study with new study, series and instance UIDs (another patient's visit)."""
    import shutil

    import pydicom
    from pydicom.uid import generate_uid

    shutil.copytree(source, dst)
    study, frame = generate_uid(), generate_uid()
    for name in ("ct", "pet"):
        series = generate_uid()
        for f in sorted((dst / name).iterdir()):
            ds = pydicom.dcmread(f)
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study, series, generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.FrameOfReferenceUID = frame
            ds.save_as(f)
    return dst
