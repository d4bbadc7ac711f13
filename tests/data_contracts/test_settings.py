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


def test_list_settings_accept_comma_lists_and_json(monkeypatch):
    monkeypatch.setenv("PETCAP_LLM__ALLOWED_HOSTS", "vllm, localhost")
    assert Settings().llm.allowed_hosts == ("vllm", "localhost")
    monkeypatch.setenv("PETCAP_LLM__ALLOWED_HOSTS", '["vllm"]')
    assert Settings().llm.allowed_hosts == ("vllm",)
    monkeypatch.setenv("PETCAP_SYNTH__DICOM_VENDORS", "Siemens,GE")
    assert Settings().synth.dicom_vendors == ("Siemens", "GE")


def test_a_relative_home_is_made_absolute_at_start_up(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PETCAP_HOME", "var")
    s = Settings()
    assert s.home == tmp_path / "var" and s.tables_dir == tmp_path / "var" / "tables"
    assert s.store_url == str(tmp_path / "var" / "volumes.zarr")


def test_unknown_petcap_variables_are_named():
    from data_contracts.settings import unknown_settings

    env = {"PETCAP_LLM_MODEL": "x", "PETCAP_LLM__MODEL": "y", "PETCAP_HOME": "h", "PETCAP_REPO": "/app",
           "PETCAP_REFRESH__MAX_FAILED_SHARE": "0.1", "HOME": "/root"}
    assert unknown_settings(env) == ["PETCAP_LLM_MODEL"]


def test_artifacts_go_through_a_tracking_server(tmp_path):
    assert Settings(home=tmp_path, tracking={"uri": "http://mlflow:5000"}).artifact_location is None
    assert Settings(home=tmp_path).artifact_location == (tmp_path / "mlruns").resolve().as_uri()
