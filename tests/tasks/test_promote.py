"""The promotion gate both ways: better -> champion; better overall but a vendor regresses -> refused."""

from pathlib import Path

import pytest

from data_contracts.settings import EvalSettings, Settings, TrackingSettings
from tasks.promote import gate, promote
from serving.pyfunc import register_candidate
from tasks.tracking import configure
from tests.tasks.evaluate.fakes import make_lesions, make_predictions

# Validation captions of each "model" (its checkpoint file names the quality): location right w.p. p_loc.
QUALITY = {
    "first": {"p_loc": 0.5, "p_ct": 0.5},
    "better": {"p_loc": 0.85, "p_ct": 0.85},
    "ge_regresses": {"p_loc": 0.99, "p_ct": 0.99, "vendor_p_loc": {"GE": 0.2}},
}


@pytest.fixture(scope="module")
def lesions():
    return make_lesions(36, seed=7)


@pytest.fixture
def registry(tmp_path, lesions):
    settings = Settings(home=tmp_path, tracking=TrackingSettings(promotion_vendor_margin=0.01),
                        evaluation=EvalSettings(bootstrap_samples=100))
    calls = []

    def predict_fn(s, checkpoints: dict[str, Path]):
        kind = checkpoints["captioner"].read_text()
        calls.append(kind)
        return make_predictions(lesions, seed=1, **QUALITY[kind])

    def register(kind: str) -> str:
        folder = tmp_path / kind
        folder.mkdir()
        (folder / "localizer.pt").write_text("localizer")
        (folder / "captioner.pt").write_text(kind)
        return register_candidate(settings, folder / "localizer.pt", folder / "captioner.pt")

    return settings, register, predict_fn, calls


def _champion(settings) -> str:
    client = configure(settings)
    return str(client.get_model_version_by_alias(settings.tracking.registered_model, "champion").version)


def test_first_then_better_is_promoted(registry):
    settings, register, predict_fn, calls = registry
    v1 = register("first")
    d1 = promote(settings, v1, predict_fn)
    assert d1.promoted and d1.champion_version is None and _champion(settings) == v1
    v2 = register("better")
    d2 = promote(settings, v2, predict_fn)
    assert calls == ["first", "better", "first"]  # the champion is re-scored on the same validation lesions
    assert d2.promoted and d2.champion_version == v1 and _champion(settings) == v2
    assert d2.candidate_metrics["bleu4"] > d2.champion_metrics["bleu4"]
    assert any(r.startswith("BLEU-4 improves") for r in d2.reasons)
    client = configure(settings)
    run = client.get_run(d2.run_id)
    assert run.data.tags["petcap.decision"] == "promoted" and run.data.params["split"] == "val"
    assert run.data.metrics["candidate/bleu4"] == pytest.approx(d2.candidate_metrics["bleu4"])
    assert "decision.json" in {a.path for a in client.list_artifacts(d2.run_id)}
    assert client.get_model_version(settings.tracking.registered_model, v2).tags["promotion"].startswith("promoted")


def test_better_overall_but_vendor_regresses_is_refused(registry):
    settings, register, predict_fn, _ = registry
    v1 = register("better")
    assert promote(settings, v1, predict_fn).promoted
    v2 = register("ge_regresses")
    d = promote(settings, v2, predict_fn)
    cand, champ = d.candidate_metrics, d.champion_metrics
    assert cand["bleu4"] > champ["bleu4"]  # better overall ...
    assert champ["bleu4/ge"] - cand["bleu4/ge"] > 0.01  # ... but GE regresses beyond the margin
    assert not d.promoted and _champion(settings) == v1  # alias unchanged
    assert any("vendor ge" in r and "beyond margin" in r for r in d.reasons)
    run = configure(settings).get_run(d.run_id)
    assert run.data.tags["petcap.decision"] == "refused" and run.data.metrics["promoted"] == 0.0


def test_gate_rule_on_numbers():
    champ = {"bleu4": 0.40, "bleu4/ge": 0.40, "bleu4/siemens": 0.40}
    ok, reasons = gate({"bleu4": 0.41, "bleu4/ge": 0.395, "bleu4/siemens": 0.42}, champ, ["ge", "siemens"], 0.01)
    assert ok and len(reasons) == 3  # a 0.005 drop is within the margin
    ok, _ = gate({"bleu4": 0.41, "bleu4/ge": 0.38, "bleu4/siemens": 0.45}, champ, ["ge", "siemens"], 0.01)
    assert not ok
    ok, reasons = gate({"bleu4": 0.40, "bleu4/ge": 0.5}, champ, ["ge"], 0.01)
    assert not ok and "does not improve" in reasons[0]
