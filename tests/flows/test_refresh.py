"""``dataset-refresh`` on a real Prefect server: a second run adds nothing; a corrupt study is quarantined while
the others go through."""

from __future__ import annotations

import shutil

import pandas as pd

from data_contracts.settings import Settings
from data_contracts.tables import MANIFEST
from flows.refresh import dataset_refresh
from tasks.ingest import study_pseudonym
from tests.flows.conftest import PATIENTS, STUDIES, home_copy


def _tables(settings: Settings) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(settings.table_path(name)) for name in ("studies", "caption_samples", "splits")}


def test_refresh_twice_adds_nothing(refreshed, tiny_raw, tmp_path, fast_patches):
    settings = Settings(home=home_copy(refreshed, tmp_path / "home"), raw_dir=tiny_raw)
    first = refreshed[1]  # the first run, on the original home
    assert first["ingested"] == STUDIES and first["quarantined"] == 0
    assert first["caption_samples"] > 0 and first["patches_extracted"] == first["caption_samples"]
    assert first["new_patients"] == first["patients"] == PATIENTS
    before = _tables(settings)
    parts = sorted(p.name for p in settings.table_path("patch_samples").iterdir())

    second = dataset_refresh(home=str(settings.home), raw_dir=str(tiny_raw))
    assert second["added"] == 0
    assert (second["ingested"], second["skipped"], second["patches_extracted"], second["new_patients"]) == (0, STUDIES, 0, 0)
    assert second["caption_samples"] == first["caption_samples"]
    after = _tables(settings)
    for name in before:
        pd.testing.assert_frame_equal(before[name].drop(columns=["ingested_at"], errors="ignore"),
                                      after[name].drop(columns=["ingested_at"], errors="ignore"))
    assert sorted(p.name for p in settings.table_path("patch_samples").iterdir()) == parts  # no new commit


def test_refresh_quarantines_a_corrupt_study_and_finishes_the_others(prefect_server, tiny_raw, tmp_path,
                                                                       fast_patches):
    raw = tmp_path / "raw"
    shutil.copytree(tiny_raw, raw)
    rows = MANIFEST.records(MANIFEST.read(raw / "manifest.csv"))
    bad = rows[1]
    pet = raw / bad.pet_path
    pet.write_bytes(pet.read_bytes()[:200])  # a truncated upload
    settings = Settings(home=tmp_path / "home", raw_dir=raw)

    out = dataset_refresh(home=str(settings.home), raw_dir=str(raw))
    assert (out["ingested"], out["quarantined"]) == (STUDIES - 1, 1)
    bad_id = study_pseudonym(bad.study_key, settings.pseudonym_key)
    quarantine = pd.read_parquet(settings.table_path("quarantine"))
    assert quarantine["item"].tolist() == [bad_id]
    source = quarantine["source"].iloc[0]  # names the file by the study's pseudonym, never the raw folder
    assert source == f"{bad_id}/pet.nii.gz" and bad.study_key not in quarantine.to_string()
    assert quarantine["reason"].iloc[0] == "truncated_file"
    samples = pd.read_parquet(settings.table_path("caption_samples"))
    assert len(samples) == out["caption_samples"] > 0
    assert bad_id not in set(samples["study_id"])
    assert set(samples["study_id"]) <= set(pd.read_parquet(settings.table_path("studies"))["study_id"])
    assert out["patches_extracted"] == len(samples)
