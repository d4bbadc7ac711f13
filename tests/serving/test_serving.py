"""Serving on the session's tiny trained models: every inference entry point gives the same captions and
confidences on one study; the method parameters come from the checkpoints, never from the environment; a
lesion-free study is answered; ``petcap caption`` shares the model files and runs without a Prefect server;
the registered MLflow model serves from a process that cannot import the checkout."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import torch

from data_contracts.settings import Settings
from models.inference import CaptionPipeline, InferenceParams
from models.training import data
from models.training.captioner import predict
from serving.models_cache import load_pipeline
from serving.pyfunc import PetcapCaptionModel, register_candidate
from serving.models_cache import models_dir
from serving.study import caption_stored_study, caption_study_files
from tasks.evaluate.metrics import corpus_bleu4
from tasks.ingest import open_study
from tasks.ingest.pseudonym import study_pseudonym

REPO = Path(__file__).resolve().parents[2]
PETCAP = str(Path(sys.executable).with_name("petcap"))


def study_folder(settings: Settings, study_id: str) -> Path:
    """The raw folder of a study of the cohort, found by its pseudonym."""
    for folder in (settings.raw_dir / "studies").iterdir():
        if study_pseudonym(folder.name, settings.pseudonym_key) == study_id:
            return folder
    raise LookupError(study_id)


@pytest.fixture(scope="module")
def one_study(trained):
    """The trained models' predictions and the study with the most linked lesions."""
    settings, loc, cap = trained
    pred = predict(settings, cap.checkpoint, split=None)
    pred = pred.merge(data.samples(settings)[["sample_id", "instance"]], on="sample_id")
    study_id = pred["study_id"].value_counts().index[0]
    return settings, loc, cap, pred[pred["study_id"] == study_id], study_folder(settings, study_id)


@pytest.fixture(scope="module")
def registered(trained, tmp_path_factory):
    settings, loc, cap = trained
    home = tmp_path_factory.mktemp("serve-home")
    served = settings.model_copy(update={"home": home})
    return served, register_candidate(served, loc.checkpoint, cap.checkpoint)


def test_every_entry_point_gives_the_same_captions_and_confidences(one_study, tmp_path):
    from benchmarks.train import infer_captions

    settings, loc, cap, pred, folder = one_study
    assert len(pred) >= 1
    # caption-study (petcap caption): a private re-ingestion of the raw folder, patches cut in memory
    served = caption_study_files(folder, tmp_path / "out", settings, loc.checkpoint, cap.checkpoint)
    by_instance = {les.instance: les for les in served.captions.lesions}
    # the MLflow model's code, on the raw folder
    model = PetcapCaptionModel()
    model.load_context(SimpleNamespace(artifacts={"localizer": loc.checkpoint, "captioner": cap.checkpoint}))
    py = model.predict(None, pd.DataFrame({"study": [str(folder)], "study_id": [""], "lesions": [""]}))
    py = {int(r["lesion"]): r for r in py.to_dict("records")}
    # the benchmark's timed function, on the same patches
    pipeline = load_pipeline(loc.checkpoint, cap.checkpoint)
    stored = caption_stored_study(str(tmp_path / "out" / "volumes.zarr"), served.captions.study_id, settings,
                                  pipeline)
    stack = lambda kind: torch.from_numpy(np.stack([stored.patches[les.instance][kind]  # noqa: E731
                                                     for les in stored.lesions]).astype(np.float32))
    geometry = open_study(str(tmp_path / "out" / "volumes.zarr"), served.captions.study_id).geometry
    positions = torch.tensor(np.stack([geometry.scan_position(np.asarray(les.centroid_mm)) for les in stored.lesions]),
                             dtype=torch.float32)
    bench = {les.instance: a for les, a in zip(stored.lesions, infer_captions(
        pipeline, stack("localizer"), stack("captioner"), positions, [served.captions.tracer] * len(stored.lesions)))}

    for r in pred.to_dict("records"):  # predict: the patch store and the localizer's cached top-5
        s, p, b = by_instance[r["instance"]], py[r["instance"]], bench[r["instance"]]
        assert r["generated"] == s.caption == p["caption"] == b.caption
        assert [x["location_id"] for x in s.top5] == list(r["top_ids"]) == p["top_ids"].split(";")
        assert float(r["top_conf"][0]) == p["top1_confidence"] == b.top_conf[0]
        assert s.top5[0]["confidence"] == round(float(r["top_conf"][0]), 6)
        assert r["window"] == s.window == p["window"] == b.window
        assert r["prompt"] == s.prompt == p["prompt"] == b.prompt
    # training validation: greedy captions of the val split through the same path, scored as training scored them
    val = predict(settings, cap.checkpoint, split="val", beam_size=1)
    assert corpus_bleu4(val["reference"].tolist(), val["generated"].tolist()) == pytest.approx(cap.metrics["bleu4"],
                                                                                          abs=1e-12)


def test_method_parameters_come_from_the_checkpoint_not_the_environment(one_study, tmp_path, monkeypatch):
    settings, loc, cap, _, folder = one_study
    pipeline = CaptionPipeline.load(loc.checkpoint, cap.checkpoint)
    assert pipeline.params == InferenceParams.from_settings(settings)
    assert pipeline.localizer.cfg.pet_suv_max == settings.pet_suv_max
    before = caption_study_files(folder, tmp_path / "a", settings, loc.checkpoint, cap.checkpoint)
    for name, value in (("PETCAP_CGLP_THRESHOLD", "0.0"), ("PETCAP_DWS_THRESHOLD", "0.0"),
                        ("PETCAP_PET_SUV_MAX", "1.0"), ("PETCAP_CGLP_PROMPT_LOCATIONS", "[2, 2]")):
        monkeypatch.setenv(name, value)
    env_settings = Settings(home=settings.home, raw_dir=settings.raw_dir)
    assert env_settings.cglp_threshold == 0.0 and env_settings.pet_suv_max == 1.0
    after = caption_study_files(folder, tmp_path / "b", env_settings, loc.checkpoint, cap.checkpoint)
    assert [les.caption for les in after.captions.lesions] == [les.caption for les in before.captions.lesions]
    assert after.captions.lesions == before.captions.lesions


def test_a_registered_model_keeps_its_captions_when_the_threshold_changes(registered, one_study, monkeypatch):
    import mlflow

    from tasks.tracking import configure

    settings, version = registered
    folder = one_study[4]
    configure(settings)
    uri = f"models:/{settings.tracking.registered_model}/{version}"
    request = pd.DataFrame({"study": [str(folder)], "study_id": [""], "lesions": [""]})
    model = mlflow.pyfunc.load_model(uri)
    before = model.predict(request)
    assert (before["status"] == "captioned").all() and len(before) >= 1
    # a threshold that changes the CGLP prompt of at least one lesion, were it used (top-1 > threshold: top-1 only)
    trained = model.unwrap_python_model().pipeline.params
    flip = 0.0 if (before["top1_confidence"] <= trained.cglp_threshold).any() else 1.0
    monkeypatch.setenv("PETCAP_CGLP_THRESHOLD", str(flip))
    monkeypatch.setenv("PETCAP_DWS_THRESHOLD", str(flip))
    assert Settings().cglp_threshold == flip
    after = mlflow.pyfunc.load_model(uri).predict(request)
    pd.testing.assert_frame_equal(before, after)
    # the control: the same model with that threshold in its parameters answers otherwise
    model.unwrap_python_model().pipeline.params = dataclasses.replace(trained, cglp_threshold=flip)
    changed = model.predict(request)
    assert (changed["prompt"] != before["prompt"]).any()


def test_petcap_caption_shares_the_model_files_and_answers_a_lesion_free_study(registered, one_study, tmp_path):
    from flows.cli import main

    settings, version = registered
    folder = one_study[4]
    outs = [tmp_path / f"out{i}" for i in range(10)]
    before = set(settings.home.rglob("*.pt"))
    for out in outs:  # ten calls (in one process: the CLI's own code path, without a flow server)
        assert main(["--home", str(settings.home), "caption", str(folder), "--out", str(out),
                     "--model-version", version, "--no-flow-server"]) == 0
    copies = set(settings.home.rglob("*.pt")) - before
    assert sorted(p.name for p in copies) == ["captioner.pt", "localizer.pt"]  # downloaded once, shared
    assert {p.parent for p in copies} == {models_dir(settings) / f"v{version}"}
    assert not [p for out in outs for p in out.rglob("*.pt")]  # no model copy in any output folder
    answers = [json.loads((out / "captions.json").read_text()) for out in outs]
    assert all(a["lesions"] == answers[0]["lesions"] and a["models"]["version"] == version for a in answers)

    clean = tmp_path / "clean"  # a normal, lesion-free scan: exit 0, a "no lesions" answer
    import shutil

    shutil.copytree(folder, clean)
    mask = sitk.ReadImage(str(clean / "lesions.nii.gz"))
    empty = sitk.Image(mask.GetSize(), mask.GetPixelID())
    empty.CopyInformation(mask)
    sitk.WriteImage(empty, str(clean / "lesions.nii.gz"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API")}
    env["PYTHONPATH"] = str(REPO)
    t0 = time.perf_counter()
    proc = subprocess.run([PETCAP, "--home", str(settings.home), "caption", str(clean), "--out",
                           str(tmp_path / "clean-out"), "--model-version", version], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "no lesions" in proc.stdout and time.perf_counter() - t0 < 120
    answer = json.loads((tmp_path / "clean-out" / "captions.json").read_text())
    assert answer["status"] == "no lesions" and answer["lesions"] == []
    assert (tmp_path / "clean-out" / "report.png").is_file()


SERVE_ALONE = r"""
import importlib.util, json, sys
# the checkout's sources go; the environment's packages stay, also where the venv lies inside the checkout (CI)
sys.path[:] = [p for p in sys.path if p and (p.startswith(sys.prefix) or not p.startswith(REPO))]
editable = lambda f: "editable" in (getattr(f, "__name__", "") + type(f).__name__ + getattr(f, "__module__", "")).lower()
sys.meta_path[:] = [f for f in sys.meta_path if not editable(f)]
sys.path_hooks[:] = [h for h in sys.path_hooks if not editable(h)]
sys.path_importer_cache.clear()
for pkg in ("models", "tasks", "serving", "data_contracts", "flows"):
    assert importlib.util.find_spec(pkg) is None, f"{pkg} is importable from the checkout"
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(MODEL)
import models
assert not models.__file__.startswith(REPO), models.__file__
out = model.predict(pd.DataFrame({"study": [STUDY], "study_id": [""], "lesions": [""]}))
print(json.dumps({"models": models.__file__, "rows": out.to_dict("records")}))
"""


def test_the_registered_model_serves_from_a_process_that_cannot_import_the_checkout(registered, one_study,
                                                                                   tmp_path):
    import mlflow

    from tasks.tracking import configure

    settings, version = registered
    folder, pred = one_study[4], one_study[3]
    configure(settings)
    local = mlflow.artifacts.download_artifacts(f"models:/{settings.tracking.registered_model}/{version}",
                                                dst_path=str(tmp_path / "model"))
    script = SERVE_ALONE.replace("REPO", repr(str(REPO))).replace("MODEL", repr(local)).replace(
        "STUDY", repr(str(folder)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",) and not k.startswith("PETCAP_")}
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["models"].startswith(local)
    captions = {r["lesion"]: r["caption"] for r in out["rows"]}
    for r in pred.to_dict("records"):
        assert captions[r["instance"]] == r["generated"]
