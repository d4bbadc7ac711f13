"""Thin Prefect ``@task`` wrappers around the step functions, one per step; the step modules stay pure functions.

Named ``task_wrappers`` and not ``tasks``: Prefect loads a deployment's entrypoint script with the script's own
folder on ``sys.path``, where a ``flows/tasks.py`` would shadow the ``tasks`` package.

Retries: steps that talk to something that can fail transiently get them — report structuring (an
OpenAI-compatible LLM server when ``settings.llm.backend == "openai"``; the structuring layer retries each
request itself, the task retry covers a server that was down for longer) and the I/O steps (ingestion, patch
extraction, MLflow tracking and registry calls, downloading a registered version), whose reruns are safe
because every step is idempotent (content hashes, completion markers, append-only sample tables, atomic
writes). Training gets one retry (a worker lost mid-run resumes from its last checkpoint).

Caching: none of Prefect's result caching (``cache_policy=NONE`` everywhere). Every step writes to stores
whose state is outside its inputs (the raw drop folder, the volume store, the tables, the registry), so a
Prefect cache keyed on inputs would skip work the state needs — a deleted store would stay deleted. The steps
do the safe form of caching themselves: ingestion skips unchanged studies by content hash, patch extraction
cuts only new or re-ingested samples, the LLM backend caches answers by prompt, the localizer's top-5 are
cached per sample and checkpoint hash, training resumes from its checkpoint.

A few wrappers adapt a step to what a flow has at hand (a config name instead of a config object, the
registry's champion instead of paths); they only look things up and call.
"""

from __future__ import annotations


from prefect import task
from prefect.cache_policies import NONE

from data_contracts.settings import Settings
from serving.models_cache import resolve_models
from serving.hospital_loop import correct_lesion_files, export_and_push
from serving.study import caption_study_files
from tasks.ingest import ingest_all
from tasks.link import link_dataset
from tasks.patches.extract import extract_patches
from tasks.splits import update_splits
from tasks.synth.cohort import synthesize_cohort
from tasks.synth.preview import render_preview


def retry_transient(task, task_run, state) -> bool:
    """Retry unless the failure is the input's fault (a study that cannot be ingested, a missing file, a bad
    value): retrying a corrupt study only delays the others."""
    from tasks.ingest import IngestError

    try:
        state.result()
    except (IngestError, FileNotFoundError, ValueError, KeyError, LookupError):
        return False
    except Exception:  # noqa: BLE001 - anything else (I/O, a server away) may pass on a retry
        return True
    return True


IO_RETRIES = 2
IO_DELAY_S = [5, 30]
LLM_RETRIES = 3
LLM_DELAY_S = [10, 60, 120]


# ------------------------------------------------------------------------------------- adapters
def _on_epoch(settings: Settings, run_id: str | None):
    """Each epoch's MLflow step metrics on the open run, so the curves move while training is on (the loop's
    own log line per epoch reaches the flow run's log through ``flows.logs``)."""
    from tasks.tracking import epoch_metrics

    return epoch_metrics(settings, run_id) if run_id else None


def train_localizer(settings: Settings, config: str = "demo", overrides: dict | None = None, progress: bool = True,
                    mlflow_run_id: str | None = None):
    from models.training import train_localizer as train

    return train(settings, config=config, overrides=overrides, progress=progress,
                 on_epoch=_on_epoch(settings, mlflow_run_id))


def train_captioner(settings: Settings, config: str = "demo", overrides: dict | None = None, progress: bool = True,
                    mlflow_run_id: str | None = None):
    from models.training import train_captioner as train
    from tasks.evaluate.metrics import validation_scores

    return train(settings, config=config, overrides=overrides, progress=progress,
                 on_epoch=_on_epoch(settings, mlflow_run_id), score_captions=validation_scores)


def start_training_run(settings: Settings, flow: str, kind: str, config: str, overrides: dict | None) -> str:
    """The MLflow run of a training, opened before it starts (config as params)."""
    from models.training.configs import load_config
    from tasks.tracking import start_training_run as start

    return start(settings, flow, load_config(kind, config, overrides), run_name=f"{kind}-{config}")


def log_training_run(settings: Settings, flow: str, kind: str, config: str, overrides: dict | None, result,
                     run_id: str | None = None, tags: dict[str, str] | None = None) -> str:
    """MLflow run of one training: the named config (with overrides) as params, the result as metrics
    (``run_id``: the run opened before training, completed here)."""
    from models.training.configs import load_config
    from tasks.tracking import log_training_run as log_run

    return log_run(settings, flow, load_config(kind, config, overrides), result, run_name=f"{kind}-{config}",
                   run_id=run_id, tags=tags)


def register_candidate(settings: Settings, captioner_checkpoint: str, run_id: str | None) -> str:
    """Register the captioner with the localizer it was trained on (recorded in its checkpoint)."""
    from models.captioner import load_checkpoint
    from models.training.localizer import checkpoint_path
    from serving.pyfunc import register_candidate as register

    _, _, _, extra = load_checkpoint(captioner_checkpoint)
    localizer = extra.get("localizer_checkpoint") or checkpoint_path(settings)
    return register(settings, localizer, captioner_checkpoint, run_id=run_id)


def latest_version(settings: Settings) -> str:
    """The newest registered version of the captioner model (the candidate a promotion considers by default)."""
    from tasks.tracking import configure

    client = configure(settings)
    versions = client.search_model_versions(f"name='{settings.tracking.registered_model}'")
    if not versions:
        raise LookupError(f"no version of {settings.tracking.registered_model} is registered: run train-captioner")
    return str(max(int(v.version) for v in versions))


def champion_checkpoints(settings: Settings, version: str | None) -> dict:
    """{"version", "localizer", "captioner"}: a registered version's (default: the champion's) checkpoint files,
    from the shared models folder (downloaded once per version, never per study)."""
    return resolve_models(settings, version)


def predict(settings: Settings, checkpoint: str, split: str = "test"):
    from models.training import predict as run_predict

    return run_predict(settings, checkpoint, split=split)


def evaluate(settings: Settings, predictions, split: str = "test") -> dict:
    """Score the predictions as the method's configuration next to the trivial baseline on the same lesions (the
    location prior), write the report, log it to MLflow."""
    from tasks.evaluate.run import OURS, PRIOR, evaluate_run, with_location_prior
    from tasks.tracking import log_evaluation

    result = evaluate_run(settings, with_location_prior(settings, {OURS: predictions}))
    run_id = log_evaluation(settings, result, split=split)
    scores = {name: {k: float(v) for k, v in result.overall.loc[name].items()} for name in result.overall.index}
    return {"report": str(result.html_path or result.markdown_path), "mlflow_run_id": run_id,
            "overall": scores[OURS], "baseline": scores.get(PRIOR)}


def validation_predictions(settings: Settings, checkpoints: dict):
    """A registered version's captions of the validation split (what promotion compares)."""
    from models.training.captioner import predict as run_predict

    return run_predict(settings, checkpoints["captioner"], split="val", localizer_checkpoint=checkpoints.get("localizer"))


def evaluate_configs(settings: Settings, predictions: dict, out_dir: str | None = None, track: bool = True,
                     run_name: str = "benchmark", config: dict | None = None, tags: dict[str, str] | None = None):
    """Several configurations' predictions (row name -> ``predict`` table) next to the trivial baseline on the
    same lesions: the report (Tables 1-2, per vendor / tracer), logged to MLflow when ``track``.
    -> (EvaluationResult, MLflow run id or None)."""
    from pathlib import Path

    from tasks.evaluate.run import evaluate_run, with_location_prior
    from tasks.tracking import log_evaluation

    result = evaluate_run(settings, with_location_prior(settings, predictions),
                          out_dir=Path(out_dir) if out_dir else None)
    run_id = log_evaluation(settings, result, split="test", run_name=run_name, config=config,
                            tags=tags) if track else None
    return result, run_id


def promote(settings: Settings, candidate_version: str):
    from tasks.promote import promote as run_promote

    return run_promote(settings, candidate_version, validation_predictions)


# ------------------------------------------------------------------------------------- tasks
synthesize_cohort_task = task(synthesize_cohort, name="synthesize-cohort", cache_policy=NONE)
preview_task = task(render_preview, name="render-preview", cache_policy=NONE)
ingest_task = task(ingest_all, name="ingest", retries=IO_RETRIES, retry_delay_seconds=IO_DELAY_S, cache_policy=NONE)
link_task = task(link_dataset, name="structure-and-link", retries=LLM_RETRIES, retry_delay_seconds=LLM_DELAY_S,
                 cache_policy=NONE)
extract_patches_task = task(extract_patches, name="extract-patches", retries=IO_RETRIES,
                            retry_delay_seconds=IO_DELAY_S, cache_policy=NONE)
update_splits_task = task(update_splits, name="update-splits", cache_policy=NONE)
train_localizer_task = task(train_localizer, name="train-localizer", retries=1, retry_delay_seconds=30,
                            cache_policy=NONE)
train_captioner_task = task(train_captioner, name="train-captioner", retries=1, retry_delay_seconds=30,
                            cache_policy=NONE)
start_training_run_task = task(start_training_run, name="start-training-run", retries=IO_RETRIES,
                               retry_delay_seconds=IO_DELAY_S, cache_policy=NONE)
log_training_run_task = task(log_training_run, name="log-training-run", retries=IO_RETRIES,
                             retry_delay_seconds=IO_DELAY_S, cache_policy=NONE)
register_candidate_task = task(register_candidate, name="register-candidate", retries=IO_RETRIES,
                               retry_delay_seconds=IO_DELAY_S, cache_policy=NONE)
latest_version_task = task(latest_version, name="latest-version", retries=IO_RETRIES,
                           retry_delay_seconds=IO_DELAY_S, retry_condition_fn=retry_transient, cache_policy=NONE)
resolve_models_task = task(resolve_models, name="resolve-models", retries=IO_RETRIES, retry_delay_seconds=IO_DELAY_S,
                           retry_condition_fn=retry_transient, cache_policy=NONE)
champion_checkpoints_task = task(champion_checkpoints, name="champion-checkpoints", retries=IO_RETRIES,
                                 retry_delay_seconds=IO_DELAY_S, retry_condition_fn=retry_transient, cache_policy=NONE)
predict_task = task(predict, name="predict", cache_policy=NONE)
evaluate_task = task(evaluate, name="evaluate", retries=IO_RETRIES, retry_delay_seconds=IO_DELAY_S,
                     cache_policy=NONE)
evaluate_configs_task = task(evaluate_configs, name="evaluate-configs", retries=IO_RETRIES,
                             retry_delay_seconds=IO_DELAY_S, cache_policy=NONE)
promote_task = task(promote, name="promote", retries=IO_RETRIES, retry_delay_seconds=IO_DELAY_S, cache_policy=NONE)
caption_study_files_task = task(caption_study_files, name="caption-study-files", retries=IO_RETRIES,
                                retry_delay_seconds=IO_DELAY_S, retry_condition_fn=retry_transient,
                                cache_policy=NONE)
export_and_push_task = task(export_and_push, name="dicom-sr-seg", retries=IO_RETRIES, retry_delay_seconds=IO_DELAY_S,
                            retry_condition_fn=retry_transient, cache_policy=NONE)
correct_lesion_task = task(correct_lesion_files, name="correct-lesion", retries=IO_RETRIES,
                           retry_delay_seconds=IO_DELAY_S, retry_condition_fn=retry_transient, cache_policy=NONE)
