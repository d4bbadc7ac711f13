"""Thin Prefect ``@task`` wrappers around the step functions, one per step; the step modules stay pure functions.

Named ``task_wrappers`` and not ``tasks``: Prefect loads a deployment's entrypoint script with the script's own
folder on ``sys.path``, where a ``flows/tasks.py`` would shadow the ``tasks`` package.

Retries: steps that talk to something that can fail transiently get them — report structuring (an
OpenAI-compatible LLM server when ``settings.llm.backend == "openai"``; the structuring layer retries each
request itself, the task retry covers a server that was down for longer) and the I/O steps (ingestion, patch
extraction, MLflow tracking and registry calls, downloading a registered version), whose reruns are safe
because every step is idempotent (content hashes, completion markers, append-only sample tables, atomic
writes). Training gets one retry (a worker lost mid-run resumes from its last checkpoint). Every retry is
conditional (``retry_transient``): only a ``TransientError`` or a connection / timeout error is retried; a
mistake that cannot pass on a retry (unknown config or version, empty split, missing file, a refused removal,
too many failed reports) fails the run at once with its one-line message.

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

from prefect import Task
from prefect.cache_policies import NONE

from data_contracts.errors import is_retryable
from data_contracts.settings import Settings
from flows.common import calls_are_plain
from serving.hospital_loop import correct_lesion_files, export_and_push
from serving.models_cache import resolve_models
from serving.study import caption_study_files
from tasks.deliveries import find_drops, register_delivery
from tasks.evaluate.benchmark import mark_cohort_ready
from tasks.evaluate.seeds import save_seed_scores, summarize_seeds
from tasks.ingest import ingest_all
from tasks.link import link_dataset
from tasks.patches.extract import extract_patches
from tasks.splits import require_splits, update_splits
from tasks.synth.cohort import synthesize_cohort
from tasks.synth.preview import render_preview


def retry_transient(task, task_run, state) -> bool:
    """Prefect's ``retry_condition_fn`` of every task with retries: retry only what can pass on a retry
    (``data_contracts.errors.is_retryable``: a ``TransientError``, a connection or timeout error). A missing
    file, an unknown version, a refused removal or too many failed reports fail at once, without the delays."""
    try:
        state.result()
    except Exception as e:  # noqa: BLE001 - the state's exception, whatever it is, decides
        return is_retryable(e)
    return False


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


def start_training_run(settings: Settings, flow: str, kind: str, config: str, overrides: dict | None,
                       tags: dict[str, str] | None = None) -> str:
    """The MLflow run of a training, opened before it starts (config as params; ``tags``: the dataset version
    the training reads, over the current one)."""
    from models.training.configs import load_config
    from tasks.tracking import start_training_run as start

    return start(settings, flow, load_config(kind, config, overrides), run_name=f"{kind}-{config}", tags=tags)


def log_training_run(settings: Settings, flow: str, kind: str, config: str, overrides: dict | None, result,
                     run_id: str | None = None, tags: dict[str, str] | None = None) -> str:
    """MLflow run of one training: the named config (with overrides) as params, the result as metrics
    (``run_id``: the run opened before training, completed here)."""
    from models.training.configs import load_config
    from tasks.tracking import log_training_run as log_run

    return log_run(settings, flow, load_config(kind, config, overrides), result, run_name=f"{kind}-{config}",
                   run_id=run_id, tags=tags)


def check_config(kind: str, config: str, overrides: dict | None) -> str:
    """Up front: the named config and its overrides load (``ConfigError``, a ``UsageError``, otherwise)."""
    from models.training.configs import load_config

    return load_config(kind, config, overrides).name


def register_candidate(settings: Settings, captioner_checkpoint: str, run_id: str | None,
                       tags: dict[str, str] | None = None) -> str:
    """Register the captioner with the localizer it was trained on (recorded in its checkpoint); ``tags`` (the
    dataset version training read) go on the version over the current lineage."""
    from models.captioner import load_checkpoint
    from models.training.localizer import checkpoint_path
    from serving.pyfunc import register_candidate as register

    _, _, _, extra = load_checkpoint(captioner_checkpoint)
    localizer = extra.get("localizer_checkpoint") or checkpoint_path(settings)
    return register(settings, localizer, captioner_checkpoint, run_id=run_id, tags=tags)


def latest_version(settings: Settings) -> str:
    """The newest registered version of the captioner model (the candidate a promotion considers by default)."""
    from tasks.tracking import latest_version as newest

    return newest(settings)


def champion_checkpoints(settings: Settings, version: str | None) -> dict:
    """{"version", "localizer", "captioner"}: a registered version's (default: the champion's) checkpoint files,
    from the shared models folder (downloaded once per version, never per study)."""
    return resolve_models(settings, version)


def require_localizer(settings: Settings) -> str:
    """The localizer checkpoint the captioner trains on; ``PrerequisiteError`` (train it first) when missing."""
    from data_contracts.errors import PrerequisiteError

    path = settings.localizer_checkpoint
    if not path.is_file():
        raise PrerequisiteError("no trained localizer in this home", path=str(path), reason="run_order",
                                hint="train the localizer first: `petcap train localizer` (run order: localizer, "
                                     "captioner, promote, evaluate)")
    return str(path)


def dataset_version(settings: Settings) -> str:
    from tasks.tracking import dataset_version as version

    return version(settings)


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
class Step(Task):
    """A Prefect task that, under ``flows.common.plain_calls`` and outside a flow run (``petcap`` without a Prefect
    server), is a plain call of its step: no task run, no API server, no retries."""

    def __call__(self, *args, **kwargs):
        if calls_are_plain():
            return self.fn(*args, **kwargs)
        return super().__call__(*args, **kwargs)


# Every task with retries retries only what can pass on a retry (``retry_transient``).
def _io(fn, name: str, retries: int = IO_RETRIES, delays=None) -> Step:
    return Step(fn, name=name, retries=retries, retry_delay_seconds=delays or IO_DELAY_S,
                retry_condition_fn=retry_transient, cache_policy=NONE)


def _once(fn, name: str) -> Step:
    return Step(fn, name=name, cache_policy=NONE)


synthesize_cohort_task = _once(synthesize_cohort, "synthesize-cohort")
preview_task = _once(render_preview, "render-preview")
find_drops_task = _once(find_drops, "find-drops")
register_delivery_task = _once(register_delivery, "register-delivery")
ingest_task = _io(ingest_all, "ingest")
link_task = _io(link_dataset, "structure-and-link", LLM_RETRIES, LLM_DELAY_S)
extract_patches_task = _io(extract_patches, "extract-patches")
update_splits_task = _once(update_splits, "update-splits")
check_config_task = _once(check_config, "check-config")
require_splits_task = _once(require_splits, "require-splits")
require_localizer_task = _once(require_localizer, "require-localizer")
dataset_version_task = _once(dataset_version, "dataset-version")
train_localizer_task = _io(train_localizer, "train-localizer", 1, [30])
train_captioner_task = _io(train_captioner, "train-captioner", 1, [30])
start_training_run_task = _io(start_training_run, "start-training-run")
log_training_run_task = _io(log_training_run, "log-training-run")
register_candidate_task = _io(register_candidate, "register-candidate")
latest_version_task = _io(latest_version, "latest-version")
resolve_models_task = _io(resolve_models, "resolve-models")
champion_checkpoints_task = _io(champion_checkpoints, "champion-checkpoints")
predict_task = _once(predict, "predict")
evaluate_task = _io(evaluate, "evaluate")
evaluate_configs_task = _io(evaluate_configs, "evaluate-configs")
mark_cohort_ready_task = _once(mark_cohort_ready, "mark-cohort-ready")
save_seed_scores_task = _once(save_seed_scores, "save-seed-scores")
summarize_seeds_task = _once(summarize_seeds, "summarize-seeds")
promote_task = _io(promote, "promote")
caption_study_files_task = _io(caption_study_files, "caption-study-files")
export_and_push_task = _io(export_and_push, "dicom-sr-seg")
correct_lesion_task = _io(correct_lesion_files, "correct-lesion")
