"""Training end to end on a tiny cohort made by the project's own chain (synth -> ingest -> link -> patches ->
splits): localizer training and its float32 top-5 cache, captioner training on the cache with DWS/CGLP, rerun
idempotence, and ``predict``'s table.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from data_contracts import taxonomy
from models.captioner import load_checkpoint
from models.cglp import cglp_prompt
from models.inference import InferenceParams, captioner_input
from models.localizer import load_localizer
from models.training import data
from models.training.captioner import predict, train_captioner
from models.training.configs import MethodConfig
from models.training.localizer import (
    cache_path,
    file_hash,
    guidance_for,
    top5_cache,
)
from tests.conftest import CAPTIONER

@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_inputs_resize_crop_and_normalise(cohort):
    df = data.samples(cohort)
    rows = df["row"].to_numpy()[:3]
    from models.localizer import LocalizerConfig
    x = data.localizer_inputs(cohort, rows, LocalizerConfig(patch_size=(12, 12, 12)))
    assert x.shape == (3, 3, 12, 12, 12) and x.dtype == torch.float16
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(x[:, 2].amax(dim=(1, 2, 3)).min()) > 0  # each lesion's mask survives the area resize
    raw = data.captioner_raw(cohort, rows, (16, 16, 16))
    from tasks.patches.store import read_patches
    full = torch.from_numpy(np.asarray(read_patches(cohort, rows, "captioner"), dtype=np.float32))
    assert torch.equal(raw, full[:, :, 2:18, 2:18, 2:18])  # centre crop of 20^3
    with pytest.raises(ValueError, match="smaller than the configured"):
        data.captioner_raw(cohort, rows, (24, 24, 24))
    # DWS: confident bone top-1 -> bone window; not confident -> soft tissue (the same HU value maps differently)
    bone = taxonomy.index_of("vertebra_t7")
    params = InferenceParams.from_settings(cohort)
    img = captioner_input(raw[:2], torch.tensor([bone, bone]), torch.tensor([0.95, 0.94], dtype=torch.float32),
                          params, MethodConfig(dws=True, mask_channel=False))
    assert img.dtype == torch.float16  # the one rounding policy: model inputs are float16
    hu, img = raw[:2, 0], img.float()
    assert torch.allclose(img[0, 0], ((hu[0] - (800 - 1300)) / 2600).clamp(0, 1), atol=1e-3)
    assert torch.allclose(img[1, 0], ((hu[1] - (40 - 175)) / 350).clamp(0, 1), atol=1e-3)
    assert torch.allclose(img[:, 1], (raw[:2, 1] / cohort.pet_suv_max).clamp(0, 1), atol=1e-3)


def test_augmentation_is_random_rotation_and_scaling_in_training_only():
    from models.training.configs import AugmentConfig
    x = torch.zeros(2, 16, 16, 16)
    x[:, 4:12, 6:10, 2:14] = 1.0
    aug = data.Augment(AugmentConfig(rotate_deg=20, scale=0.2, prob=1.0), seed=0)
    a, b = aug(x), aug(x)
    assert a.shape == x.shape and not torch.allclose(a, x) and not torch.allclose(a, b)
    assert data.Augment(AugmentConfig(enabled=False))(x) is x


def test_localizer_trains_and_caches_float32_top5(trained):
    settings, loc, _ = trained
    assert loc.epochs == 2 and np.isfinite(loc.train_loss) and loc.samples_per_s > 0
    assert {"top1", "top5"} <= set(loc.metrics) and 0 <= loc.metrics["top1"] <= loc.metrics["top5"] <= 1
    ckpt = Path(loc.checkpoint)
    model = load_localizer(ckpt)
    assert model.cfg.patch_size == (16, 16, 16)
    extra = torch.load(ckpt, weights_only=True)["extra"]
    assert extra["train_state"]["epoch"] == 2 and extra["train_config"]["loop"]["epochs"] == 2
    # the position prior, fitted after training on the training lesions (this tiny val split: naive-Bayes weights)
    assert model.cfg.position_prior and bool(model.position_prior.fitted)
    assert int(model.position_prior.counts.sum()) == loc.train_samples
    assert extra["position_prior"] == loc.extra["position_prior"]
    assert extra["position_prior"]["train_samples"] == loc.train_samples

    table = pq.read_table(cache_path(settings))
    assert str(table.schema.field("top_conf").type) == "list<element: float>"  # float32, never float64
    cache = table.to_pandas()
    samples = data.samples(settings)
    assert set(cache["localizer"]) == {file_hash(ckpt)}
    assert sorted(cache["sample_id"]) == sorted(samples["sample_id"])
    conf = np.stack(cache["top_conf"].to_list())
    assert conf.dtype == np.float32 and conf.shape == (len(samples), 5)
    assert np.all(np.diff(conf, axis=1) <= 0) and np.all(conf.sum(1) <= 1.0 + 1e-6)
    # the cache holds exactly what the frozen model answers
    row = samples.iloc[:4]
    g = guidance_for(model.cfg, settings, row)
    detail = g["detail"].float() if "detail" in g else None
    ids, c = model.localize(data.localizer_inputs(settings, row["row"].to_numpy(), model.cfg).float(),
                            position=g.get("position"), detail=detail)
    cached = cache.set_index("sample_id").loc[row["sample_id"]]
    assert np.array_equal(np.stack(cached["top_ids"].to_list()), ids.numpy())
    assert np.allclose(np.stack(cached["top_conf"].to_list()), c.numpy(), atol=1e-6)
    # a second call reuses the cache (nothing recomputed, file unchanged)
    before = cache_path(settings).stat().st_mtime_ns
    assert len(top5_cache(settings, ckpt)) == len(samples)
    assert cache_path(settings).stat().st_mtime_ns == before


def test_captioner_trains_on_the_cache_and_records_its_localizer(trained):
    _, loc, cap = trained
    assert cap.epochs == 2 and np.isfinite(cap.train_loss) and 0 <= cap.metrics["bleu4"] <= 1
    _, cfg, vocab, extra = load_checkpoint(cap.checkpoint)
    assert extra["localizer"] == file_hash(Path(loc.checkpoint))
    assert extra["train_config"]["method"] == {"dws": True, "cglp": True, "beam_size": 2, "mask_channel": False,
                                               "tracer_token": True, "constrain_location": True}
    assert cfg.use_prompt and cfg.in_channels == 2 and cfg.vocab_size == len(vocab)
    assert ";" in vocab and all(w in vocab for w in ("lymph", "node", "vertebral"))  # CGLP words have ids
    assert [h["lr"] for h in extra["train_state"]["history"]] == pytest.approx([1e-3, 1e-4])


def test_rerun_of_a_finished_config_resumes_instead_of_retraining(trained):
    settings, _, cap = trained
    before = load_checkpoint(cap.checkpoint)[0].state_dict()
    again = train_captioner(settings, "b_w_p", CAPTIONER, progress=False)
    assert again.epochs == 2 and again.samples_per_s == 0.0  # nothing trained: the run was complete
    after = load_checkpoint(again.checkpoint)[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_predict_one_row_per_sample_with_the_guidance_it_used(trained):
    settings, _, cap = trained
    df = predict(settings, cap.checkpoint, split="test")
    test = data.samples(settings, "test")
    assert list(df["sample_id"]) == list(test["sample_id"]) and len(df) > 0
    assert {"patient_id", "study_id", "vendor", "tracer", "location_id", "ct_finding", "reference", "generated",
            "top_ids", "top_conf", "window", "prompt"} <= set(df.columns)
    assert df["generated"].map(lambda s: isinstance(s, str)).all()
    for _, r in df.iterrows():
        conf = np.asarray(r["top_conf"])
        assert conf.dtype == np.float32 and len(r["top_ids"]) == 5
        loc = taxonomy.get(r["top_ids"][0])
        expected = loc.window.value if conf[0] >= np.float32(settings.dws_threshold) else "soft_tissue"
        assert r["window"] == expected
        words = [w for w in cglp_prompt(r["top_ids"], conf, settings.cglp_threshold) if w != "<pad>"]
        assert r["prompt"] == " ".join([r["tracer"].lower(), *words])  # the tracer token, then CGLP
    all_rows = predict(settings, cap.checkpoint, split=None)
    assert len(all_rows) == len(data.samples(settings))
    assert isinstance(all_rows, pd.DataFrame)


def test_generate_captions_never_names_another_tracer_than_the_prompts():
    """A decoder that would write "fdg" at every step (its output bias says so) still never does in a PSMA
    study's caption: ``tracer_bans`` from the prompt's tracer word, in greedy and beam decoding."""
    from models.captioner import CaptionerConfig, build_captioner
    from models.cglp import cglp_prompt_ids, prompt_texts
    from models.inference import generate_captions
    from models.vocab import Vocab, tokenize

    vocab = Vocab.build(["T7 vertebral body, osteolytic destruction with increased FDG uptake"],
                        extra_texts=prompt_texts())
    cfg = CaptionerConfig(vocab_size=len(vocab), patch_size=(8, 8, 8), encoder_channels=(4, 8), dim=32, heads=2,
                          encoder_layers=1, decoder_layers=1, max_caption_len=8, prompt_len=31)
    torch.manual_seed(0)
    model = build_captioner(cfg).eval()
    with torch.no_grad():
        model.decoder.decoder.out.bias[vocab.stoi["fdg"]] = 100.0  # the X-Transformer's word classifier
    top = torch.tensor([[taxonomy.index_of("vertebra_t7")] * 5] * 2)
    conf = torch.tensor([[0.99] * 5] * 2)
    prompts = cglp_prompt_ids(top, conf, vocab, length=cfg.prompt_len, tracers=["FDG", "PSMA"])
    images = torch.rand(2, cfg.in_channels, *cfg.patch_size)
    for beam in (1, 2):
        fdg, psma = generate_captions(model, vocab, images, prompts, beam_size=beam, method=MethodConfig())
        assert "fdg" in tokenize(fdg) and "fdg" not in tokenize(psma)
        off = generate_captions(model, vocab, images, prompts, beam_size=beam,
                                method=MethodConfig(tracer_token=False))  # no ban without the tracer token
        assert "fdg" in tokenize(off[1])


def test_evaluation_reports_the_captioner_next_to_the_trivial_baseline(trained):
    """``evaluate`` (the evaluate-captioner flow's task) scores the location prior on the same lesions: each
    lesion's caption is the most frequent training caption of its predicted location and tracer."""
    from flows.task_wrappers import evaluate
    from tasks.evaluate.run import location_prior

    settings, _, cap = trained
    df = predict(settings, cap.checkpoint, split="test")
    train = data.samples(settings, "train")
    # a 2-epoch localizer's top-1 is near arbitrary: point the first lesion at a location that training holds
    # for its tracer, so at least one lesion checks the most-frequent-caption rule
    same = train[train["tracer"].astype(str) == str(df["tracer"].iloc[0])]
    df.loc[df.index[0], "top1_location"] = same["location_id"].iloc[0]
    prior = location_prior(settings, df)
    assert prior.drop(columns="generated").equals(df.drop(columns="generated"))  # same lesions, same localizer
    counts = train.groupby(["location_id", "tracer"])["caption"].value_counts()
    seen = 0
    for (loc, tracer, caption) in zip(df["top1_location"], df["tracer"].astype(str), prior["generated"]):
        assert caption in set(train["caption"])
        if (loc, tracer) in counts.index.droplevel(2):  # a pair seen in training: its most frequent caption
            own = counts.loc[(loc, tracer)]
            assert own.get(caption, 0) == own.max()
            seen += 1
    assert seen > 0
    out = evaluate(settings, df, split="test")
    assert out["baseline"] is not None and 0 <= out["baseline"]["bleu4"] <= 1 and 0 <= out["overall"]["bleu4"] <= 1
    summary = (Path(out["report"]).parent / "summary.md").read_text()
    assert "the trivial baseline (Location prior" in summary
