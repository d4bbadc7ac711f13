"""``infra/compose.yaml`` without Docker: valid against the Compose Specification's JSON schema (vendored in
``infra/schema/``), only real setting names, a healthcheck on every service that others wait for, no pip at
start-up, Java in the image, MLflow serving artifacts, the LLM host allowed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

from data_contracts.settings import OTHER_VARIABLES, Settings, setting_env_names

INFRA = Path(__file__).resolve().parents[2] / "infra"
COMPOSE_TEXT = (INFRA / "compose.yaml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]
KNOWN = setting_env_names() | set(OTHER_VARIABLES)


def interpolate(value: str) -> str:
    """Compose's ``${NAME:-default}`` with nothing set: the default."""
    return re.sub(r"\$\{[A-Za-z0-9_]+:-([^}]*)\}", r"\1", value)


def test_compose_file_validates_against_the_compose_specification_schema():
    schema = json.loads((INFRA / "schema" / "compose-spec.json").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(COMPOSE), key=lambda e: list(e.path))
    assert not errors, [f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors]


def test_the_schema_catches_a_wrong_file():
    schema = json.loads((INFRA / "schema" / "compose-spec.json").read_text())
    broken = {**COMPOSE, "services": {**SERVICES, "mlflow": {**SERVICES["mlflow"], "depends_on": {"postgres": {
        "condition": "healthy"}}}}}
    assert list(jsonschema.Draft7Validator(schema).iter_errors(broken))


def test_every_petcap_variable_is_a_real_setting():
    names = set(re.findall(r"\b(PETCAP_[A-Z0-9_]+)", COMPOSE_TEXT))
    assert names and names <= KNOWN, sorted(names - KNOWN)
    for name, service in SERVICES.items():
        env = service.get("environment", {})
        assert all(not k.startswith("PETCAP_") or k in KNOWN for k in env), name


def test_the_settings_the_containers_get_parse_and_allow_the_llm_host(monkeypatch):
    from tasks.structure.endpoint_guard import check_endpoint

    env = SERVICES["prefect-worker"]["environment"]
    for key, value in env.items():
        if key.startswith("PETCAP_"):
            monkeypatch.setenv(key, interpolate(str(value)))
    monkeypatch.setenv("PETCAP_LLM__BACKEND", "openai")  # the llm profile
    settings = Settings()
    assert settings.home == Path("/data") and settings.raw_dir == Path("/data/raw")
    assert settings.llm.allowed_hosts == ("vllm",)
    check_endpoint(settings.llm.base_url, settings)  # raises when the host would be refused
    assert settings.artifact_location is None  # artifacts through the tracking server (--serve-artifacts)


def test_every_long_running_service_has_a_healthcheck_and_dependencies_wait_for_it():
    one_shot = {name for name, s in SERVICES.items() if s.get("restart") == "no"}
    assert one_shot == {"prefect-deploy"}
    for name, service in SERVICES.items():
        if name not in one_shot:
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        deps = service.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on without conditions"
        for dep, spec in deps.items():
            want = "service_completed_successfully" if dep in one_shot else "service_healthy"
            assert spec["condition"] == want, (name, dep)
    assert SERVICES["prefect-deploy"]["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    vllm = SERVICES["prefect-worker"]["depends_on"]["vllm"]
    assert vllm == {"condition": "service_healthy", "required": False}  # waited for with the llm profile only


def test_no_pip_at_start_up_and_java_in_the_image():
    for name, service in SERVICES.items():
        command = service.get("command", "")
        assert "pip install" not in (command if isinstance(command, str) else " ".join(command)), name
    assert "build" in SERVICES["mlflow"] and "psycopg2" in (INFRA / "mlflow.Dockerfile").read_text()
    dockerfile = (INFRA / "Dockerfile").read_text()
    assert re.search(r"apt-get install .*openjdk-17-jre-headless", dockerfile)


def test_mlflow_serves_artifacts_and_the_project_logs_through_it():
    command = SERVICES["mlflow"]["command"]
    assert "--serve-artifacts" in command and "--artifacts-destination" in command
    env = SERVICES["prefect-worker"]["environment"]
    assert env["PETCAP_TRACKING__URI"] == "http://mlflow:5000"
    assert "PETCAP_TRACKING__ARTIFACT_LOCATION" not in env


def test_raw_and_incoming_are_mounted_where_the_settings_look():
    mounts = [interpolate(v) for v in SERVICES["prefect-worker"]["volumes"]]
    targets = {m.split(":")[1] for m in mounts}
    settings = Settings(home=Path("/data"))
    assert {str(settings.raw_dir), str(settings.incoming_dir), str(settings.home)} <= targets
    for name in ("dask-worker", "dask-scheduler", "prefect-deploy"):
        assert SERVICES[name]["volumes"] == SERVICES["prefect-worker"]["volumes"]


@pytest.mark.parametrize("path", ["Dockerfile", "mlflow.Dockerfile", "prefect.yaml", "postgres-init.sql"])
def test_files_the_compose_file_names_exist(path):
    assert (INFRA / path).is_file()


def test_every_deployment_entrypoint_and_parameter_exists():
    import importlib
    import inspect

    spec = yaml.safe_load((INFRA / "prefect.yaml").read_text())
    for d in spec["deployments"]:
        module, func = d["entrypoint"].split(":")
        fn = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), func)
        params = inspect.signature(fn.fn).parameters
        assert set(d.get("parameters") or {}) <= set(params), d["entrypoint"]
