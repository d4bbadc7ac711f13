"""``train-localizer`` and ``train-captioner``: train on the current dataset version, track it, register it.

Each flow trains one model on what the patch store and the splits table hold now (the current dataset
version), logs the run to MLflow (the config as params, losses and validation metrics, the checkpoint as an
artifact, dataset lineage tags). ``train-captioner`` then registers the captioner together with the localizer
it was trained on as a new version of the registered model — a *candidate*: what is served changes only when
``promote-captioner`` moves the ``champion`` alias. (A localizer alone is never registered: the captioner's
inputs depend on it, so the two are versioned together.) ``config`` names a training preset
(``models/training/configs/*.toml``); ``overrides`` are its dotted keys (``{"loop.epochs": 2}``).

Up-front checks, before any training, each failing at once with what to do (no retries): the config and its
overrides load, the train and val splits have samples (a vendor needs 3 patients for val and test), and the
captioner finds the localizer it is trained on (run order: localizer, captioner, promote, evaluate). The
dataset version is taken just before training and tagged on the run and the registered version.
"""

from __future__ import annotations

from prefect import flow

from flows.common import flow_settings, run_logger
from flows.task_wrappers import (
    check_config_task,
    dataset_version_task,
    log_training_run_task,
    register_candidate_task,
    require_localizer_task,
    require_splits_task,
    start_training_run_task,
    train_captioner_task,
    train_localizer_task,
)


def _summary(result, run_id: str) -> dict:
    return {"model": result.model, "config": result.config, "checkpoint": result.checkpoint,
            "mlflow_run_id": run_id, "epochs": result.epochs, "train_loss": result.train_loss,
            "val_loss": result.val_loss, "metrics": dict(result.metrics), "seconds": result.seconds}


@flow(name="train-localizer", log_prints=True)
def train_localizer_flow(home: str | None = None, config: str = "demo", overrides: dict | None = None) -> dict:
    """Train the CLIP localizer on the current dataset and log the run to MLflow."""
    settings = flow_settings(home)
    check_config_task("localizer", config, overrides or None)
    require_splits_task(settings, ("train", "val"))
    tags = {"lineage.dataset_version": dataset_version_task(settings)}  # what this training reads
    run_id = start_training_run_task(settings, "train-localizer", "localizer", config, overrides or None, tags)
    result = train_localizer_task(settings, config=config, overrides=overrides or None, progress=False,
                                  mlflow_run_id=run_id)
    log_training_run_task(settings, "train-localizer", "localizer", config, overrides or None, result, run_id, tags)
    run_logger().info("localizer (%s): %d epochs, metrics %s, checkpoint %s, MLflow run %s", config,
                          result.epochs, result.metrics, result.checkpoint, run_id)
    return _summary(result, run_id)


@flow(name="train-captioner", log_prints=True)
def train_captioner_flow(home: str | None = None, config: str = "demo", overrides: dict | None = None) -> dict:
    """Train the captioner on the current dataset, log the run to MLflow, register a candidate version."""
    settings = flow_settings(home)
    check_config_task("captioner", config, overrides or None)
    require_splits_task(settings, ("train", "val"))
    require_localizer_task(settings)
    tags = {"lineage.dataset_version": dataset_version_task(settings)}  # what this training reads
    run_id = start_training_run_task(settings, "train-captioner", "captioner", config, overrides or None, tags)
    result = train_captioner_task(settings, config=config, overrides=overrides or None, progress=False,
                                  mlflow_run_id=run_id)
    log_training_run_task(settings, "train-captioner", "captioner", config, overrides or None, result, run_id, tags)
    version = register_candidate_task(settings, result.checkpoint, run_id, tags)
    run_logger().info("captioner (%s): %d epochs, metrics %s; MLflow run %s; registered as candidate "
                          "version %s", config, result.epochs, result.metrics, run_id, version)
    return {**_summary(result, run_id), "model_version": version}
