"""Promotion (stage 9): does a registered candidate take the ``champion`` alias?

Both versions caption the VALIDATION split (the same lesions, so the comparison is paired); the candidate
gets the alias only if
  1. its BLEU-4 (pycocoevalcap corpus score) is higher than the champion's, and
  2. no vendor's BLEU-4 falls below the champion's by more than ``tracking.promotion_vendor_margin``
     (a gain overall must not hide a scanner that got worse).
With no champion yet, the candidate is promoted. The decision, its reasons and both versions' metrics are
logged to a run of the ``promote`` experiment and tagged on the candidate version; the alias moves only on
promotion.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from mlflow.exceptions import MlflowException

from data_contracts.settings import Settings
from tasks.evaluate.run import evaluate_config, paired_predictions
from tasks.tracking import (
    configure,
    experiment_id,
    lineage_tags,
    log_metrics,
    require_version,
    version_checkpoints,
)

# (settings, {"localizer": path, "captioner": path}) -> validation predictions (``predict``'s table)
PredictFn = Callable[[Settings, dict[str, Path]], pd.DataFrame]


@dataclass
class PromotionDecision:
    promoted: bool
    candidate_version: str
    champion_version: str | None
    reasons: list[str]
    candidate_metrics: dict[str, float] = field(default_factory=dict)  # bleu4, bleu4/<vendor>
    champion_metrics: dict[str, float] = field(default_factory=dict)
    run_id: str | None = None


def _bleu4(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if k == "bleu4" or k.startswith("bleu4/")}


def gate(candidate: dict[str, float], champion: dict[str, float], vendors: list[str], margin: float
         ) -> tuple[bool, list[str]]:
    """The rule on BLEU-4 overall and per vendor (``bleu4``, ``bleu4/<vendor slug>``). -> (promote, reasons)."""
    reasons, ok = [], True
    c, h = candidate["bleu4"], champion["bleu4"]
    if c > h:
        reasons.append(f"BLEU-4 improves: {c:.4f} > champion {h:.4f}")
    else:
        ok = False
        reasons.append(f"BLEU-4 does not improve: {c:.4f} <= champion {h:.4f}")
    for v in vendors:
        cv, hv = candidate.get(f"bleu4/{v}"), champion.get(f"bleu4/{v}")
        if cv is None or hv is None:
            continue
        if hv - cv > margin:
            ok = False
            reasons.append(f"vendor {v}: BLEU-4 drops {hv - cv:.4f} ({hv:.4f} -> {cv:.4f}), beyond margin {margin:g}")
        else:
            reasons.append(f"vendor {v}: BLEU-4 {hv:.4f} -> {cv:.4f}, within margin {margin:g}")
    return ok, reasons


def _champion(settings: Settings, client) -> str | None:
    try:
        return str(client.get_model_version_by_alias(settings.tracking.registered_model,
                                                     settings.tracking.champion_alias).version)
    except MlflowException:
        return None


def promote(settings: Settings, candidate_version: str | int, predict_fn: PredictFn) -> PromotionDecision:
    """Compare candidate and champion on the validation split; move the alias if the gate passes.

    ``predict_fn`` captions the validation split with a version's checkpoints (the flow passes
    ``models.training.captioner.predict(settings, captioner, split="val")``: this stage imports no model code).
    """
    client = configure(settings)
    name, alias = settings.tracking.registered_model, settings.tracking.champion_alias
    candidate_version = str(candidate_version)
    require_version(settings, candidate_version, client)  # PrerequisiteError listing the versions
    champion = _champion(settings, client)
    margin = settings.tracking.promotion_vendor_margin

    with tempfile.TemporaryDirectory(prefix="petcap-promote-") as tmp:
        versions = [candidate_version] + ([champion] if champion and champion != candidate_version else [])
        preds = {v: predict_fn(settings, version_checkpoints(settings, v, Path(tmp) / v)) for v in versions}
    paired = paired_predictions(preds)  # the same validation lesions for both
    metrics = {v: _bleu4(evaluate_config(v, df, settings).flat_metrics()) for v, df in paired.items()}
    cand = metrics[candidate_version]
    vendors = sorted(k.split("/", 1)[1] for k in cand if "/" in k
                     and k.split("/", 1)[1] in {"siemens", "ge", "united_imaging"})
    if champion is None:
        promoted, reasons, champ = True, ["no version holds the champion alias yet"], {}
    elif champion == candidate_version:
        promoted, reasons, champ = False, [f"version {candidate_version} already holds the champion alias"], cand
    else:
        champ = metrics[champion]
        promoted, reasons = gate(cand, champ, vendors, margin)
    if promoted:
        client.set_registered_model_alias(name, alias, candidate_version)

    run = client.create_run(experiment_id(settings, "promote"), run_name=f"promote-v{candidate_version}",
                            tags={**lineage_tags(settings), "petcap.flow": "promote",
                                  "petcap.decision": "promoted" if promoted else "refused",
                                  "petcap.candidate_version": candidate_version,
                                  "petcap.champion_version": champion or "none"})
    rid = run.info.run_id
    client.log_param(rid, "vendor_margin", str(margin))
    client.log_param(rid, "split", "val")
    log_metrics(client, rid, {**{f"candidate/{k}": v for k, v in cand.items()},
                               **{f"champion/{k}": v for k, v in champ.items()}, "promoted": float(promoted)})
    client.log_text(rid, json.dumps({"promoted": promoted, "candidate_version": candidate_version,
                                     "champion_version": champion, "reasons": reasons,
                                     "candidate": cand, "champion": champ}, indent=2), "decision.json")
    client.set_terminated(rid)
    client.set_model_version_tag(name, candidate_version, "promotion",
                                 ("promoted: " if promoted else "refused: ") + "; ".join(reasons)[:4000])
    return PromotionDecision(promoted, candidate_version, champion, reasons, cand, champ, rid)
