"""MLflow tracking: params, per-vendor/tracer metrics, lineage, the one registered pyfunc model, no PHI."""

from dataclasses import dataclass, field
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import torch

from data_contracts.settings import EvalSettings, Settings
from models.captioner import CaptionerConfig, build_captioner, save_checkpoint
from models.cglp import DEFAULT_LENGTH, prompt_texts
from models.localizer import LocalizerConfig, build_localizer, save_localizer
from models.vocab import Vocab
from tasks.deliveries import log_sha256, register_delivery
from tasks.evaluate.run import evaluate_run
from tasks.tracking import (
    TrackingError,
    configure,
    experiment_name,
    flatten_params,
    lineage_tags,
    log_evaluation,
    log_training_run,
    version_checkpoints,
)
from serving.pyfunc import register_candidate
from tests.tasks.evaluate.fakes import config_predictions, fake_patches, make_lesions

PLANTED_NAME = "Zwanziger^Hildegard"
PLANTED_ID = "MRN-7734921"


@dataclass
class FakeTrainResult:  # the fields of models.training.loop.TrainResult that logging reads
    model: str
    config: str
    checkpoint: str
    epochs: int
    train_loss: float
    val_loss: float | None
    metrics: dict = field(default_factory=dict)
    seconds: float = 1.0
    samples_per_s: float = 10.0
    extra: dict = field(default_factory=dict)


def tiny_checkpoints(folder: Path) -> tuple[Path, Path]:
    torch.manual_seed(0)
    loc = build_localizer(LocalizerConfig(patch_size=(16, 16, 16), encoder_channels=(8, 16, 16, 32), text_width=32,
                                          text_layers=1, text_heads=2, embed_dim=64, dropout=0.0, position_width=8,
                                          detail_size=(8, 8, 8), detail_channels=(4, 4, 8, 8)))
    save_localizer(loc, folder / "localizer.pt")
    vocab = Vocab.build(["right 7th rib, osteolytic destruction with increased FDG uptake"],
                        extra_texts=prompt_texts())
    cfg = CaptionerConfig(vocab_size=len(vocab), dim=32, heads=2, encoder_layers=1, decoder_layers=1, ff_mult=2,
                          dropout=0.0, encoder_channels=(4, 8), patch_size=(8, 8, 8), max_caption_len=12,
                          prompt_len=DEFAULT_LENGTH + 1)
    save_checkpoint(folder / "captioner.pt", build_captioner(cfg), cfg, vocab,
                    extra={"train_config": {"method": {"dws": True, "cglp": True, "beam_size": 1,
                                                       "tracer_token": True}}})
    return folder / "localizer.pt", folder / "captioner.pt"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    """A whole cycle on a sqlite store: training run, evaluation (names planted in the input), registration."""
    home = tmp_path_factory.mktemp("mlflow-home")
    settings = Settings(home=home, evaluation=EvalSettings(bootstrap_samples=100, example_panels=2))
    # a raw manifest that carries the planted identity: only its hash may reach MLflow
    settings.raw.manifest.parent.mkdir(parents=True)
    settings.raw.manifest.write_text(
        "study_key,patient_id,vendor,tracer,ct_path,pet_path,lesions_path,anatomy_path,report_path\n"
        f"st1,{PLANTED_ID},GE,FDG,s/ct.nii.gz,s/pet.nii.gz,s/lesions.nii.gz,,reports/{PLANTED_NAME}.txt\n")
    register_delivery(settings)
    loc, cap = tiny_checkpoints(home)
    config = {"model": {"dim": 32, "decoder": "xtransformer"}, "loop": {"lr": 1e-3, "epochs": 2},
              "method": {"dws": True, "cglp": True}}
    result = FakeTrainResult("captioner", "demo", str(cap), 2, 0.5, 0.6, {"bleu4": 0.41},
                             extra={"history": [{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}]})
    train_run = log_training_run(settings, "train-captioner", config, result, run_name="demo",
                                 tags={"lineage.dataset_version": "0123456789abcdef"})
    lesions = make_lesions(24, seed=4)
    preds = {k: v for k, v in config_predictions(lesions).items() if k in ("B", "B+W+P")}
    for df in preds.values():  # identities that must never leave the table
        df["patient_name"] = PLANTED_NAME
        df["raw_patient_id"] = PLANTED_ID
    evaluation = evaluate_run(settings, preds, out_dir=home / "report", patch_loader=fake_patches)
    eval_run = log_evaluation(settings, evaluation, split="test", config=config)
    version = register_candidate(settings, loc, cap, run_id=train_run)
    return settings, train_run, eval_run, version, evaluation


def test_training_run_has_config_metrics_lineage_and_checkpoint(tracked):
    settings, train_run, *_ = tracked
    client = configure(settings)
    run = client.get_run(train_run)
    assert run.data.params["loop.lr"] == "0.001" and run.data.params["method.dws"] == "True"
    assert run.data.metrics["val/bleu4"] == pytest.approx(0.41) and run.data.metrics["train_loss"] == 0.5
    assert [m.step for m in client.get_metric_history(train_run, "epoch/train_loss")] == [1, 2]
    assert run.data.tags["lineage.delivery_log_sha256"] == log_sha256(settings) != "none"
    assert lineage_tags(settings)["lineage.delivery_log_sha256"] == log_sha256(settings)
    assert run.data.tags["lineage.dataset_version"] == "0123456789abcdef"  # the version training read
    assert lineage_tags(settings)["lineage.dataset_version"] == "none"  # no patches in this home
    assert run.data.tags["lineage.split_version"] == "none"
    exp = client.get_experiment(run.info.experiment_id)
    assert exp.name == experiment_name(settings, "train-captioner") == "petcap/train-captioner"
    assert [a.path for a in client.list_artifacts(train_run, "checkpoints")] == ["checkpoints/captioner.pt"]
    assert settings.tracking_uri.startswith("sqlite:///") and (settings.home / "mlflow.db").is_file()


def test_evaluation_metrics_per_vendor_and_tracer(tracked):
    settings, _, eval_run, _, evaluation = tracked
    client = configure(settings)
    children = client.search_runs([client.get_run(eval_run).info.experiment_id],
                                  f"tags.mlflow.parentRunId = '{eval_run}'")
    by_name = {r.data.tags["petcap.config"]: r.data.metrics for r in children}
    assert set(by_name) == {"B", "B+W+P"}
    m = by_name["B+W+P"]
    assert m["bleu4"] == pytest.approx(evaluation.configs["B+W+P"].overall["bleu4"])
    assert m["bleu4/siemens"] == pytest.approx(evaluation.configs["B+W+P"].by_vendor.loc["siemens", "bleu4"])
    assert {"bleu4/ge", "bleu4/united_imaging", "bleu4/fdg", "bleu4/psma", "localization/siemens"} <= set(m)
    assert "spice" not in m
    arts = {a.path for a in client.list_artifacts(eval_run, "report")}
    assert {"report/report.html", "report/summary.md", "report/figures"} <= arts


def test_one_registered_model_with_signature_code_and_pinned_requirements(tracked):
    settings, train_run, _, version, _ = tracked
    configure(settings)
    model = mlflow.pyfunc.load_model(f"models:/{settings.tracking.registered_model}/{version}")
    sig = model.metadata.signature
    assert sig.inputs.input_names() == ["study", "study_id", "lesions", "vendor", "tracer"]
    assert [c.name for c in sig.outputs.inputs][:4] == ["study", "study_id", "lesion", "caption"]
    # a request that cannot be read is answered in its own row, not by an exception
    out = model.predict(pd.DataFrame({"study": [str(settings.home / "no-such-study")], "study_id": [""],
                                      "lesions": [""]}))
    assert len(out) == 1 and out["status"][0].startswith("error: ") and "no-such-study" in out["status"][0]
    local = Path(mlflow.artifacts.download_artifacts(
        f"models:/{settings.tracking.registered_model}/{version}", dst_path=str(settings.home / "ml")))
    assert {p.name for p in (local / "code").iterdir()} >= {"data_contracts", "tasks", "models", "serving"}
    reqs = (local / "requirements.txt").read_text().split()
    assert any(r.startswith("torch==") for r in reqs) and all("==" in r for r in reqs if not r.startswith("-"))
    assert (local / "input_example.json").is_file()
    paths = version_checkpoints(settings, version, settings.home / "dl")
    assert paths["captioner"].read_bytes() == (settings.home / "captioner.pt").read_bytes()
    mv = configure(settings).get_model_version(settings.tracking.registered_model, version)
    assert mv.run_id == train_run and mv.tags["lineage.split_version"] == "none"


def test_no_patient_name_or_raw_id_anywhere_in_mlflow(tracked):
    settings, *_ = tracked
    client = configure(settings)
    texts = []
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id]):
            texts += [*run.data.params.items(), *run.data.tags.items(), *run.data.metrics.keys()]
    for mv in client.search_model_versions(f"name = '{settings.tracking.registered_model}'"):
        texts += list(mv.tags.items())
    blob = repr(texts)
    assert "lineage.delivery_log_sha256" in blob and "bleu4/siemens" in blob  # the scan saw real content
    files = [p for p in (settings.home / "mlruns").rglob("*") if p.is_file()]
    assert any(p.name == "report.html" for p in files) and any(p.suffix == ".png" for p in files)
    for needle in (PLANTED_NAME, PLANTED_ID, "Zwanziger", "7734921"):
        assert needle not in blob
        assert needle.encode() not in (settings.home / "mlflow.db").read_bytes()
        for p in files:
            assert needle.encode() not in p.read_bytes(), p


def test_config_keys_naming_patients_are_refused():
    assert flatten_params({"a": {"b": [1, 2]}, "c": None}) == {"a.b": "[1, 2]", "c": "None"}
    with pytest.raises(TrackingError, match="patient"):
        flatten_params({"data": {"patient_name": "x"}})
    assert "llm.api_key" in flatten_params(Settings()) and "EMPTY" not in flatten_params(Settings())["llm.api_key"]


def test_tracking_and_evaluation_settings(tmp_path, monkeypatch):
    s = Settings(home=tmp_path)
    assert s.tracking_uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db" == s.registry_uri
    assert s.artifact_location == (tmp_path / "mlruns").resolve().as_uri()
    assert s.reports_dir == tmp_path / "reports" and s.evaluation.spice_jar_dir is None
    monkeypatch.setenv("PETCAP_TRACKING__URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("PETCAP_TRACKING__PROMOTION_VENDOR_MARGIN", "0.02")
    monkeypatch.setenv("PETCAP_EVALUATION__SPICE_JAR_DIR", str(tmp_path))
    s = Settings(home=tmp_path)
    assert s.tracking_uri == s.registry_uri == "http://mlflow.internal:5000"
    assert s.tracking.promotion_vendor_margin == 0.02 and s.evaluation.spice_jar_dir == tmp_path


def test_epochs_reach_mlflow_while_the_run_is_on(tmp_path):
    from tasks.tracking import epoch_metrics, start_training_run

    settings = Settings(home=tmp_path)
    run_id = start_training_run(settings, "train-captioner", {"loop": {"epochs": 2}}, run_name="live")
    on_epoch = epoch_metrics(settings, run_id)
    on_epoch({"epoch": 1, "train_loss": 0.9, "val_bleu4": 0.1, "seconds": 3.0})
    client = configure(settings)
    assert client.get_run(run_id).info.status == "RUNNING"
    assert [(m.step, m.value) for m in client.get_metric_history(run_id, "epoch/train_loss")] == [(1, 0.9)]
    on_epoch({"epoch": 2, "train_loss": 0.5, "val_bleu4": 0.2, "seconds": 3.0})
    result = FakeTrainResult("captioner", "demo", str(tiny_checkpoints(tmp_path)[1]), 2, 0.5, 0.6, {"bleu4": 0.2},
                             extra={"history": [{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5}]})
    assert log_training_run(settings, "train-captioner", {"loop": {"epochs": 2}}, result, run_id=run_id) == run_id
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params["loop.epochs"] == "2"
    assert [m.value for m in client.get_metric_history(run_id, "epoch/train_loss")] == [0.9, 0.5]  # not twice
