"""A new study to caption: describing a study folder from its headers, ingesting it into a private store (a
lesion-free one included), cutting its patches, and the JSON / visual report writers (the models are exercised
in tests/serving)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from data_contracts.settings import Settings, SynthSettings
from data_contracts.tables import MANIFEST
from tasks.caption_output.figure import write_report
from tasks.caption_output.records import NO_LESIONS, LesionCaption, StudyCaptions
from tasks.caption_output.writers import default_writers, write_json
from tasks.ingest import IngestError
from tasks.new_study.header import describe_study
from tasks.new_study.intake import NoLesions, ingest_new_study, study_patches
from tasks.synth.cohort import synthesize_cohort


@pytest.fixture(scope="module")
def drop(tmp_path_factory):
    root = tmp_path_factory.mktemp("drop")
    settings = Settings(home=root.parent / "h", synth=SynthSettings(dicom_vendors=("Siemens", "GE"), workers=1,
                                                                             lesion_free_fraction=0.0))
    synthesize_cohort(root, patients=3, seed=3, scale="tiny", settings=settings, progress=False)
    return root


def test_describe_study_reads_vendor_and_tracer_from_dicom_and_bids_headers(drop):
    rows = MANIFEST.records(MANIFEST.read(drop / "manifest.csv"))
    formats = set()
    for row in rows:
        got = describe_study(drop / "studies" / row.study_key)
        assert (got.vendor, got.tracer) == (row.vendor, row.tracer)
        fmt = "dicom" if got.ct_path == "ct" else "nifti"
        formats.add(fmt)
        assert got.lesions_path == "lesions.nii.gz" and got.anatomy_path == "anatomy.nii.gz"
        if fmt == "dicom":  # the header's PatientID, so ingestion can check CT and PET belong together
            assert got.patient_id == row.patient_id
    assert formats == {"dicom", "nifti"}


def test_a_study_without_pet_names_the_missing_file(drop, tmp_path):
    study = tmp_path / "S1"
    shutil.copytree(min((drop / "studies").iterdir()), study)
    for name in ("pet", "pet.nii.gz"):
        p = study / name
        shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)
    with pytest.raises(IngestError) as e:
        describe_study(study)
    assert e.value.reason == "missing_pet" and "S1/pet" in e.value.source


def test_new_study_goes_to_a_private_store_and_yields_both_patches_per_lesion(drop, tmp_path):
    settings = Settings(home=tmp_path / "training_home")
    study = min((drop / "studies").iterdir())
    ingested, local = ingest_new_study(study, tmp_path / "out", settings)
    assert local.store_url == str(tmp_path / "out" / "volumes.zarr")
    assert not (settings.home / "volumes.zarr").exists()  # the training store is untouched
    patches = study_patches(local, local.store_url, ingested.study.study_id, ingested.lesions)
    assert sorted(patches) == [les.instance for les in ingested.lesions] and len(patches) > 0
    cfg = settings.patches
    for p in patches.values():
        assert p["localizer"].shape == (3, *cfg.localizer_size) and p["captioner"].shape == (3, *cfg.captioner_size)
        mask = np.asarray(p["captioner"][2], dtype=np.float32)
        assert set(np.unique(mask)) <= {0.0, 1.0} and mask.sum() > 0
        centre = tuple(s // 2 for s in cfg.captioner_size)
        assert mask[centre] == 1.0 or mask.sum() < 8  # the patch is centred on the lesion

    lesions = [LesionCaption(instance=les.instance, centroid_mm=les.centroid_mm, volume_ml=les.volume_ml,
                             suv_max=les.suv_max, top5=[{"location_id": "liver", "location": "liver",
                                                         "confidence": 0.5}] * 5,
                             window="soft_tissue", prompt="liver", caption=f"lesion {les.instance}")
               for les in ingested.lesions]
    result = StudyCaptions(ingested.study.study_id, "GE", "FDG", lesions)
    data = json.loads(write_json(result, tmp_path / "out").read_text())
    assert [d["caption"] for d in data["lesions"]] == [f"lesion {les.instance}" for les in ingested.lesions]
    assert data["study_id"].startswith("S") and study.name not in json.dumps(data)  # pseudonym only
    png = write_report(result, patches, tmp_path / "out")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    assert StudyCaptions.from_json(data) == result  # JSON round trip


def test_a_lesion_free_study_is_a_valid_answer_not_an_error(drop, tmp_path):
    import SimpleITK as sitk

    study = tmp_path / "S_clean"
    shutil.copytree(min((drop / "studies").iterdir()), study)
    mask = sitk.ReadImage(str(study / "lesions.nii.gz"))
    empty = sitk.Image(mask.GetSize(), mask.GetPixelID())
    empty.CopyInformation(mask)
    sitk.WriteImage(empty, str(study / "lesions.nii.gz"))
    ingested, _ = ingest_new_study(study, tmp_path / "out", Settings(home=tmp_path / "h"))
    assert isinstance(ingested, NoLesions) and ingested.study_id.startswith("S") and "S_clean" not in ingested.study_id
    answer = StudyCaptions(ingested.study_id, ingested.vendor, ingested.tracer, status=NO_LESIONS)
    paths = [w.write(answer, {}, tmp_path / "out") for w in default_writers()]
    assert [p.name for p in paths] == ["report.png", "captions.json"]
    data = json.loads(paths[1].read_text())
    assert data["status"] == "no lesions" and data["lesions"] == []
