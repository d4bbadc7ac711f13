"""``evaluate-captioner`` and ``promote-captioner``: score a trained captioner, and decide what is served.

evaluate: a registered version's (default: the champion's; or a checkpoint file's) predictions on a split
(``models.training.predict``) -> caption metrics, location and CT-finding accuracy per vendor and tracer,
the per-scanner report (``tasks.evaluate.run.evaluate_run``), logged to MLflow. promote: a candidate (default:
the newest registered version) against the ``champion`` alias on val with the per-vendor guard
(``tasks.promote.promote``); the alias moves only when the candidate wins.
"""

from __future__ import annotations

from prefect import flow

from flows.common import flow_settings, run_logger
from flows.task_wrappers import (
    champion_checkpoints_task,
    evaluate_task,
    latest_version_task,
    predict_task,
    promote_task,
    require_splits_task,
)


@flow(name="evaluate-captioner", log_prints=True)
def evaluate_captioner_flow(home: str | None = None, model_version: str | None = None,
                            checkpoint: str | None = None, split: str = "test") -> dict:
    """Predict ``split`` with a captioner (``checkpoint``, else registered ``model_version``, else the champion)
    and write the evaluation report; returns where it is and the overall metrics."""
    settings = flow_settings(home)
    log = run_logger()
    require_splits_task(settings, (split,))
    if checkpoint is None:  # the registered files, from the shared models folder
        found = champion_checkpoints_task(settings, model_version)
        checkpoint, model_version = found["captioner"], found["version"]
    predictions = predict_task(settings, checkpoint, split=split)
    log.info("predicted %d captions on %s", len(predictions), split)
    out = evaluate_task(settings, predictions, split=split)
    log.info("per-scanner evaluation report: %s", out["report"])
    return {"model_version": model_version, "split": split, "predictions": len(predictions), **out}


@flow(name="promote-captioner", log_prints=True)
def promote_captioner_flow(home: str | None = None, candidate_version: str | None = None) -> dict:
    """Promote registered version ``candidate_version`` (default: the newest) if it beats the champion on val."""
    settings = flow_settings(home)
    require_splits_task(settings, ("val",))
    candidate_version = candidate_version or latest_version_task(settings)
    decision = promote_task(settings, candidate_version)
    run_logger().info("promotion of version %s: %s (%s)", candidate_version,
                          "promoted" if decision.promoted else "refused", "; ".join(decision.reasons))
    return {"candidate_version": decision.candidate_version, "champion_version": decision.champion_version,
            "promoted": decision.promoted, "reasons": list(decision.reasons), "mlflow_run_id": decision.run_id}
