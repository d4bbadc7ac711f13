"""Every data-loss path of ``dataset-refresh`` ends FAILED or refused with no table shrinking, or grows the data.

LLM down during a refresh; a changed model name with a cold cache; a new delivery folder; link on an empty home;
a study missing from its drop (refused, or withdrawn with --allow-removals); a withdrawal (tombstones).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pandas as pd
import pytest

from data_contracts.errors import PrerequisiteError
from data_contracts.settings import Settings
from data_contracts.tables import MANIFEST
from flows.refresh import dataset_refresh
from tasks.deliveries import RefreshFailed, RemovalRefused, withdraw
from tasks.ingest import study_pseudonym
from tasks.link import link_dataset
from tests.flows.conftest import STUDIES, home_copy
from tests.tasks.structure.fake_openai_server import FakeOpenAIServer

DERIVED = ("findings", "caption_samples", "link_unmatched", "splits")


def snapshot(settings: Settings) -> dict[str, bytes]:
    """The bytes of every derived table and the patch-sample parts: equal snapshots = nothing changed."""
    out = {name: settings.table_path(name).read_bytes() for name in DERIVED if settings.table_path(name).exists()}
    parts = settings.table_path("patch_samples")
    out.update({f"patch_samples/{p.name}": p.read_bytes() for p in sorted(parts.iterdir())})
    return out


def samples(settings: Settings) -> pd.DataFrame:
    return pd.read_parquet(settings.table_path("caption_samples")).sort_values("sample_id").reset_index(drop=True)


def llm_env(monkeypatch, base_url: str, model: str) -> None:
    for k, v in {"PETCAP_LLM__BACKEND": "openai", "PETCAP_LLM__BASE_URL": base_url, "PETCAP_LLM__MODEL": model,
                 "PETCAP_LLM__MAX_RETRIES": "0", "PETCAP_LLM__TIMEOUT_S": "5"}.items():
        monkeypatch.setenv(k, v)


def closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends: nothing listens there


def test_llm_down_during_a_refresh_fails_and_changes_no_table(refreshed, tiny_raw, tmp_path, monkeypatch,
                                                               fast_patches):
    settings = Settings(home=home_copy(refreshed, tmp_path / "home"), raw_dir=tiny_raw)
    before = snapshot(settings)
    llm_env(monkeypatch, f"http://127.0.0.1:{closed_port()}/v1", "Qwen/Qwen2.5-7B-Instruct")
    t0 = time.monotonic()
    with pytest.raises(RefreshFailed, match=f"{STUDIES} of {STUDIES} reports could not be structured "
                                            f"\\({STUDIES} by LLM failures; llm_unavailable {STUDIES}\\)"):
        dataset_refresh(home=str(settings.home), raw_dir=str(tiny_raw))
    assert time.monotonic() - t0 < 60  # no Prefect retries with 10-120 s delays
    assert snapshot(settings) == before


def test_changed_model_name_with_a_cold_cache_fails_and_changes_no_table(refreshed, tiny_raw, tmp_path,
                                                                           monkeypatch, fast_patches):
    settings = Settings(home=home_copy(refreshed, tmp_path / "home"), raw_dir=tiny_raw)
    before = snapshot(settings)
    with FakeOpenAIServer(served_model="Qwen/Qwen2.5-7B-Instruct") as server:  # the server kept the old model
        llm_env(monkeypatch, server.base_url, "Qwen/Qwen3-8B")
        with pytest.raises(Exception, match="HTTP 404.*Qwen3-8B") as e:
            dataset_refresh(home=str(settings.home), raw_dir=str(tiny_raw))
        assert len(server.bodies) <= STUDIES  # one request per report at most: no task retry of a config error
    assert "Retries" not in str(e.value)
    assert snapshot(settings) == before


def test_a_new_delivery_folder_adds_to_the_earlier_ones(refreshed, tiny_raw, tmp_path, fast_patches):
    """Two drops, refreshed one after the other, give the samples one refresh of both gives."""
    rows = MANIFEST.read(tiny_raw / "manifest.csv")
    drops = []
    deliveries = tmp_path / "deliveries"
    for name, part in (("drop-1", rows.iloc[:5]), ("drop-2", rows.iloc[5:])):
        drop = deliveries / name
        shutil.copytree(tiny_raw, drop, ignore=shutil.ignore_patterns("truth"))
        MANIFEST.write(part.reset_index(drop=True), drop / "manifest.csv")
        drops.append(drop)
    home = tmp_path / "home"
    for h in (home, tmp_path / "home-2"):  # the refreshed home's pseudonym key: the same pseudonyms
        shutil.copytree(refreshed[0] / "secrets", h / "secrets")
    first = dataset_refresh(home=str(home), raw_dir=str(drops[0]))
    second = dataset_refresh(home=str(home), raw_dir=str(drops[1]))
    settings = Settings(home=home)
    assert first["ingested"] == 5 and second["ingested"] == STUDIES - 5
    assert second["stages"]["link"]["removed"] == 0 and second["removed"] == 0
    whole = samples(Settings(home=refreshed[0]))
    pd.testing.assert_frame_equal(samples(settings), whole)
    assert second["caption_samples"] == len(whole) > first["caption_samples"]
    patches = pd.read_parquet(settings.table_path("patch_samples"))
    assert set(patches["sample_id"]) == set(whole["sample_id"]) and not patches["removed"].any()

    # a folder holding one subfolder per delivery: one refresh takes in each of them
    out = dataset_refresh(home=str(tmp_path / "home-2"), raw_dir=str(deliveries))
    assert out["stages"]["deliveries"]["added"] == STUDIES and out["ingested"] == STUDIES
    pd.testing.assert_frame_equal(samples(Settings(home=tmp_path / "home-2")), whole)


def test_link_on_an_empty_home_is_refused(tmp_path):
    settings = Settings(home=tmp_path / "wrong-home")
    with pytest.raises(PrerequisiteError, match="no ingested study") as e:
        link_dataset(settings, "rules")
    assert e.value.exit_code == 2 and "--home" in str(e.value)
    assert not settings.table_path("caption_samples").exists()


def test_a_study_gone_from_its_drop_is_refused_unless_forced(refreshed, tiny_raw, tmp_path, fast_patches):
    settings = Settings(home=home_copy(refreshed, tmp_path / "home"), raw_dir=tmp_path / "raw")
    shutil.copytree(tiny_raw, settings.raw_dir)
    # the refreshed home registered tiny_raw; the same drop, moved here, is the same delivery
    dataset_refresh(home=str(settings.home), raw_dir=str(settings.raw_dir))
    rows = MANIFEST.read(settings.raw.manifest)
    gone_key = rows["study_key"].iloc[0]
    MANIFEST.write(rows.iloc[1:].reset_index(drop=True), settings.raw.manifest)
    before = snapshot(settings)
    with pytest.raises(RemovalRefused, match="no longer in its manifest"):
        dataset_refresh(home=str(settings.home), raw_dir=str(settings.raw_dir))
    assert snapshot(settings) == before

    out = dataset_refresh(home=str(settings.home), raw_dir=str(settings.raw_dir), allow_removals=True)
    gone = study_pseudonym(gone_key, settings.pseudonym_key)
    old = pd.read_parquet(Settings(home=refreshed[0]).table_path("caption_samples"))
    lost = set(old.loc[old["study_id"] == gone, "sample_id"])
    assert lost and out["samples_removed"] == len(lost) == out["patches_removed"]
    assert out["stages"]["link"]["removed"] == len(lost)
    tomb = pd.read_parquet(settings.table_path("tombstones"))
    assert set(tomb.loc[tomb["table"] == "caption_samples", "key"]) == lost
    assert set(tomb.loc[tomb["table"] == "patch_samples", "key"]) == lost
    assert tomb["reason"].eq("withdrawn").all() and tomb["detail"].str.startswith("absent_from_delivery").all()


def test_a_withdrawn_study_leaves_with_tombstones_and_the_rest_stays(refreshed, tiny_raw, tmp_path, fast_patches):
    settings = Settings(home=home_copy(refreshed, tmp_path / "home"), raw_dir=tiny_raw)
    key = MANIFEST.read(tiny_raw / "manifest.csv")["study_key"].iloc[2]
    (sid,) = withdraw(settings, [key], "consent withdrawn")
    before = samples(settings)
    out = dataset_refresh(home=str(settings.home), raw_dir=str(tiny_raw))
    after = samples(settings)
    pd.testing.assert_frame_equal(after, before[before["study_id"] != sid].reset_index(drop=True))
    assert out["samples_removed"] == (before["study_id"] == sid).sum() > 0
    tomb = pd.read_parquet(settings.table_path("tombstones"))
    assert set(tomb["detail"]) == {"consent withdrawn"} and set(tomb["study_id"]) == {sid}
    assert out["added"] == 0


def test_removals_nobody_recorded_are_refused_by_patch_extraction(refreshed, tmp_path):
    from tasks.patches.extract import extract_patches

    settings = Settings(home=home_copy(refreshed, tmp_path / "home"))
    table = settings.table_path("caption_samples")
    df = pd.read_parquet(table)
    df.iloc[: len(df) // 2].to_parquet(table)  # the table replaced by hand with half of it
    before = snapshot(settings)
    with pytest.raises(RemovalRefused, match="without a recorded reason"):
        extract_patches(settings, progress=False)
    assert snapshot(settings) == before


def test_refresh_reports_counts_per_stage(refreshed):
    stages = refreshed[1]["stages"]
    assert stages["ingest"] == {"added": STUDIES, "unchanged": 0, "removed": 0, "quarantined": 0}
    assert stages["link"]["added"] == refreshed[1]["caption_samples"] and stages["link"]["removed"] == 0
    assert stages["patches"]["added"] == refreshed[1]["caption_samples"]
    assert stages["deliveries"]["added"] == STUDIES
    assert Path(refreshed[0]).joinpath("tables", "deliveries.parquet").exists()
