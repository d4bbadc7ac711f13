from pathlib import Path

from data_contracts.settings import Settings


def test_paths_derive_from_home_and_env_overrides(monkeypatch, tmp_path):
    s = Settings(home=tmp_path)
    assert s.raw_dir == tmp_path / "raw" and s.tables_dir == tmp_path / "tables"
    assert s.store_url == str(tmp_path / "volumes.zarr")
    assert s.raw.manifest == tmp_path / "raw" / "manifest.csv"
    assert s.table_path("lesions") == tmp_path / "tables" / "lesions.parquet"
    monkeypatch.setenv("PETCAP_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("PETCAP_STORE_URL", "s3://bucket/volumes.zarr")
    monkeypatch.setenv("PETCAP_CGLP_THRESHOLD", "0.9")
    monkeypatch.setenv("PETCAP_LLM__ALLOW_REMOTE_LLM", "true")
    s = Settings()
    assert s.home == Path(tmp_path / "h") and s.raw_dir == tmp_path / "h" / "raw"
    assert s.store_url == "s3://bucket/volumes.zarr"
    assert s.cglp_threshold == 0.9 and s.dws_threshold == 0.95
    assert s.llm.allow_remote_llm is True
