"""Deployments as code on a real Prefect server: ``infra/prefect.yaml`` deployed with ``prefect deploy --all``,
a process worker started, deployments run from the CLI and watched until they finish; then ``petcap caption``
with the promoted model on a new synthetic study.

Bounded everywhere: every CLI call has a timeout, runs are polled for at most ``RUN_TIMEOUT_S``, the worker gets
SIGINT (a Prefect worker ignores SIGTERM) and SIGKILL after 20 s; the server is the session's (see conftest).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
from scipy import ndimage

from data_contracts.settings import Settings, SynthSettings
from tests.flows.conftest import (
    PATIENTS,
    PETCAP,
    PREFECT,
    REPO,
    STUDIES,
    TINY_CAPTIONER,
    TINY_LOCALIZER,
    home_copy,
    stop,
)

POOL = "petcap-process"
RUN_TIMEOUT_S = 240
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
DEPLOYMENTS = {"dataset-refresh/nightly", "train-captioner/default", "train-localizer/default",
               "evaluate-captioner/default", "promote-captioner/default", "caption-study/default",
               "caption-studies/default"}


@pytest.fixture(scope="module")
def deployed(prefect_server, tmp_path_factory):
    """The work pool created and every deployment of infra/prefect.yaml deployed; a worker polling the pool."""
    prefect_server.cli("work-pool", "create", POOL, "--type", "process")
    prefect_server.cli("deploy", "--all", "--prefect-file", "infra/prefect.yaml", timeout=180,
                       env={"PETCAP_REPO": str(REPO)})
    env = {**prefect_server.env, "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5",
           "PETCAP_PATCHES__PROCESSES": "false", "PETCAP_PATCHES__WORKERS": "1"}
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen([PREFECT, "worker", "start", "--pool", POOL, "--type", "process"], cwd=REPO,
                                  env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield prefect_server
        finally:
            stop(worker, signal.SIGINT)


def _client():
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def run_deployment(server, name: str, params: dict) -> str:
    """``prefect deployment run NAME --param k=<json> ...``; returns the flow run id the CLI printed."""
    args = ["deployment", "run", name]
    for key, value in params.items():
        args += ["--param", f"{key}={json.dumps(value)}"]
    out = server.cli(*args, timeout=60).stdout
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
    assert match, out
    return match.group(1)


def wait(run_id: str, timeout: float = RUN_TIMEOUT_S):
    """The flow run once it reaches a final state (polled; fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    with _client() as client:
        while True:
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.type.value in FINAL:
                return run
            assert time.monotonic() < deadline, f"flow run {run_id} still {run.state} after {timeout} s"
            time.sleep(1)


def test_every_deployment_is_on_the_process_pool_and_refresh_is_scheduled_nightly(deployed):
    with _client() as client:
        for name in DEPLOYMENTS:
            assert client.read_deployment_by_name(name).work_pool_name == POOL
        nightly = client.read_deployment_by_name("dataset-refresh/nightly")
    assert len(nightly.schedules) == 1
    schedule = nightly.schedules[0]
    assert schedule.active and schedule.schedule.cron == "0 2 * * *"


def test_train_captioner_deployment_then_caption_a_new_study(deployed, refreshed, tiny_raw, tmp_path,
                                                             fast_patches):
    """train-captioner run by the worker from the CLI on a tiny prepared dataset (the refreshed cohort and a
    tiny localizer); then the promoted model captions a new study through ``petcap caption``."""
    from mlflow import MlflowClient

    from flows.evaluation import promote_captioner_flow
    from flows.training import train_localizer_flow

    home = home_copy(refreshed, tmp_path / "home")
    settings = Settings(home=home, raw_dir=tiny_raw)
    assert len(pd.read_parquet(settings.table_path("studies"))) == STUDIES
    assert len(pd.read_parquet(settings.table_path("splits"))) == PATIENTS

    localizer = train_localizer_flow(home=str(home), overrides=TINY_LOCALIZER)  # the captioner trains on its answers
    run = wait(run_deployment(deployed, "train-captioner/default",
                              {"home": str(home), "config": "demo", "overrides": TINY_CAPTIONER}))
    assert run.state.type.value == "COMPLETED", run.state

    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)
    experiment = client.get_experiment_by_name(f"{settings.tracking.experiment_prefix}/train-captioner")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    params = runs[0].data.params
    assert (params["loop.epochs"], params["model.dim"], params["model.decoder"]) == ("1", "32", "xtransformer")
    versions = client.search_model_versions(f"name='{settings.tracking.registered_model}'")
    assert [str(v.version) for v in versions] == ["1"] and versions[0].run_id == runs[0].info.run_id
    from tasks.deliveries import log_sha256
    from tasks.tracking import dataset_version

    tags = client.get_model_version(settings.tracking.registered_model, "1").tags
    assert tags["lineage.dataset_version"] == dataset_version(settings) != "none"  # what training read
    assert tags["lineage.delivery_log_sha256"] == log_sha256(settings) != "none"
    assert localizer["mlflow_run_id"] != runs[0].info.run_id

    decision = promote_captioner_flow(home=str(home))
    assert decision["promoted"] and decision["candidate_version"] == "1"

    # A new study (another seed: not in the cohort), captioned from the command line with the champion.
    from tasks.synth.cohort import synthesize_cohort

    drop = tmp_path / "incoming"
    synthesize_cohort(drop, patients=1, seed=4242, scale="tiny", progress=False,
                      settings=settings.model_copy(update={"synth": SynthSettings(lesion_free_fraction=0.0)}))
    study = min((drop / "studies").iterdir())
    out = tmp_path / "captions"
    proc = subprocess.run([PETCAP, "--home", str(home), "caption", str(study),
                           "--out", str(out)], check=False, cwd=REPO, env=deployed.env, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((out / "captions.json").read_text())
    mask = sitk.GetArrayFromImage(sitk.ReadImage(str(study / "lesions.nii.gz"))) > 0
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    sizes = np.bincount(labels.ravel())[1:]
    expected = int((sizes >= settings.ingest.min_lesion_voxels).sum())  # the lesion instances ingestion keeps
    assert expected > 0 and len(result["lesions"]) == expected
    assert [les["instance"] for les in result["lesions"]] == list(range(1, expected + 1))
    for lesion in result["lesions"]:
        assert lesion["caption"].strip()
        assert len(lesion["top5"]) == 5
        conf = [t["confidence"] for t in lesion["top5"]]
        assert conf == sorted(conf, reverse=True) and 0 < sum(conf) <= 1.0 + 1e-6
    assert result["models"]["checkpoints"]["captioner"].endswith(".pt") and result["models"]["version"] == "1"
    assert result["status"] == "captioned" and not list(out.rglob("*.pt"))  # the model files are shared, not copied
    assert (out / "report.png").stat().st_size > 10_000
    assert proc.stdout.count("lesion ") >= expected
