"""Captioner: shapes for every decoder, causality, prompts, decoding, learning, loss and checkpoints."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
import torch.nn.functional as F

from data_contracts import taxonomy
from data_contracts.caption import caption_text
from data_contracts.findings import CTFinding, Tracer, UptakeGrade
from data_contracts.records import PetFinding
from models.captioner import (
    CaptionerConfig,
    build_captioner,
    caption_loss,
    load_checkpoint,
    save_checkpoint,
    shift_captions,
)
from models.vocab import BOS, EOS, PAD, Vocab, location_texts

KINDS = ("lstm", "transformer", "xtransformer")
PATCH = (8, 8, 8)


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one intra-op thread is several times faster than two, above all on a busy CI box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _cfg(kind: str, vocab_size: int = 30, **over) -> CaptionerConfig:
    """A tiny model: 8³ patch, two CNN stages (4³ = 64 visual tokens), D = 32."""
    base = dict(
        decoder=kind,
        vocab_size=vocab_size,
        dim=32,
        heads=2,
        encoder_layers=1,
        decoder_layers=2,
        ff_mult=2,
        dropout=0.0,
        encoder_channels=(4, 8),
        patch_size=PATCH,
        prompt_len=6,
        max_caption_len=16,
    )
    return CaptionerConfig(**{**base, **over})


def _inputs(cfg: CaptionerConfig, B: int = 3, T: int = 10, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(B, cfg.in_channels, *cfg.patch_size, generator=g)
    prompt = torch.randint(4, cfg.vocab_size, (B, cfg.prompt_len), generator=g)
    prompt[:, 3:] = PAD
    caption = torch.randint(4, cfg.vocab_size, (B, T), generator=g)
    caption[:, 0] = BOS
    return image, prompt, caption


def _model(cfg: CaptionerConfig, seed: int = 0):
    torch.manual_seed(seed)
    return build_captioner(cfg).eval()


@pytest.mark.parametrize("kind", KINDS)
def test_shapes_and_generation_format(kind):
    cfg = _cfg(kind)
    model = _model(cfg)
    image, prompt, caption = _inputs(cfg)
    assert model.encoder(image).shape == (3, 64, 32)
    assert model(image, prompt, caption).shape == (3, 10, cfg.vocab_size)
    for beam in (1, 3):
        ids = model.generate(image, prompt, max_len=12, beam_size=beam)
        assert ids.shape == (3, 12) and ids.dtype == torch.long
        assert not (ids == BOS).any()
        for row in ids.tolist():  # words, then <eos>, then only <pad>
            if EOS in row:
                cut = row.index(EOS)
                assert PAD not in row[:cut] and set(row[cut + 1 :]) <= {PAD}
            else:
                assert PAD not in row


def test_three_channel_input_and_bad_shapes_are_named():
    cfg = _cfg("xtransformer", in_channels=3)
    model = _model(cfg)
    image, prompt, caption = _inputs(cfg)
    assert model(image, prompt, caption).shape == (3, 10, 30)
    with pytest.raises(ValueError, match=r"image must be B×3×8×8×8"):
        model(image[:, :2], prompt, caption)
    with pytest.raises(ValueError, match="prompt_ids must be B×6"):
        model(image, prompt[:, :4], caption)
    with pytest.raises(ValueError, match="divisible"):
        CaptionerConfig(patch_size=(8, 8, 12), encoder_channels=(4, 8, 16, 32))
    with pytest.raises(ValueError, match="decoder"):
        CaptionerConfig(decoder="gru")
    with pytest.raises(ValueError, match="vocab_size"):
        build_captioner(CaptionerConfig())


@pytest.mark.parametrize("kind", KINDS)
def test_causal_and_stepwise_decoding_matches_teacher_forcing(kind):
    cfg = _cfg(kind)
    model = _model(cfg)
    image, prompt, caption = _inputs(cfg)
    with torch.no_grad():
        logits = model(image, prompt, caption)
        changed = caption.clone()
        changed[:, 7] = (changed[:, 7] - 4 + 1) % (cfg.vocab_size - 4) + 4
        other = model(image, prompt, changed)
        torch.testing.assert_close(other[:, :7], logits[:, :7])
        assert not torch.allclose(other[:, 7:], logits[:, 7:])

        memory, state, steps = model.memory(image, prompt), None, []
        for t in range(1, caption.shape[1] + 1):
            step_logits, state = model.decoder.step(memory, caption[:, :t], state)
            steps.append(step_logits)
        torch.testing.assert_close(torch.stack(steps, 1), logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_prompt_matters_and_all_pad_prompt_equals_no_prompt(kind):
    cfg = _cfg(kind)
    model = _model(cfg)
    image, prompt, caption = _inputs(cfg)
    with torch.no_grad():
        with_prompt = model(image, prompt, caption)
        other_prompt = prompt.clone()
        other_prompt[:, 0] = (other_prompt[:, 0] - 4 + 1) % (cfg.vocab_size - 4) + 4
        assert (model(image, other_prompt, caption) - with_prompt).abs().amax() > 1e-3
        # padding slots are masked: what the pad positions would hold never matters
        no_prompt = model(image, None, caption)
        all_pad = model(image, torch.full_like(prompt, PAD), caption)
        torch.testing.assert_close(all_pad, no_prompt, atol=1e-5, rtol=1e-5)
        assert (with_prompt - no_prompt).abs().amax() > 1e-3

    # use_prompt=False: the prompt is ignored altogether (ablations B, B+W)
    ablated = _model(_cfg(kind, use_prompt=False))
    with torch.no_grad():
        torch.testing.assert_close(ablated(image, prompt, caption), ablated(image, None, caption))
    assert not any("prompt" in name for name, _ in ablated.named_parameters())


@pytest.mark.parametrize("kind", KINDS)
def test_beam_never_scores_below_greedy(kind):
    for seed in range(4):
        cfg = _cfg(kind, vocab_size=12)
        model = _model(cfg, seed)
        image, prompt, _ = _inputs(cfg, B=4, seed=seed)
        with torch.no_grad():
            greedy = model.generate(image, prompt, max_len=8)
            greedy_score = model.sequence_logprob(image, prompt, greedy)
            memory = model.memory(image, prompt)
            ids, score = model._greedy(memory, 8)
            assert torch.equal(ids, greedy)
            torch.testing.assert_close(score, greedy_score, atol=1e-4, rtol=1e-5)
            # beam of 1 is greedy
            ids1, score1 = model._beam(memory, 8, 1)
            assert torch.equal(ids1, greedy)
            for k in (2, 3):
                beam = model.generate(image, prompt, max_len=8, beam_size=k)
                beam_score = model.sequence_logprob(image, prompt, beam)
                assert torch.all(beam_score >= greedy_score - 1e-4), (seed, k)
                # the reported beam score is the model's own sequence log-probability
                plain_ids, plain_score = model._beam(memory, 8, k)
                torch.testing.assert_close(
                    plain_score, model.sequence_logprob(image, prompt, plain_ids), atol=1e-4, rtol=1e-5
                )


def test_wide_beam_finds_the_exhaustive_optimum():
    """With a beam wider than the number of live prefixes, beam search is exact: compare with brute force."""
    cfg = _cfg("xtransformer", vocab_size=7)  # 3 words + <eos>/<unk> can be generated
    max_len = 3
    choices = [t for t in range(cfg.vocab_size) if t not in (PAD, BOS)]  # 5 tokens
    for seed in range(2):
        model = _model(cfg, seed)
        image, prompt, _ = _inputs(cfg, B=2, seed=seed)
        seqs = []
        for length in range(1, max_len + 1):
            for body in itertools.product([t for t in choices if t != EOS], repeat=length - 1):
                last = [EOS] if length < max_len else choices
                seqs += [[*body, e] + [PAD] * (max_len - length) for e in last]
        with torch.no_grad():
            best = []
            for b in range(2):
                cand = torch.tensor(seqs)
                scores = model.sequence_logprob(image[b : b + 1].expand(len(seqs), -1, -1, -1, -1),
                                                prompt[b : b + 1].expand(len(seqs), -1), cand)  # fmt: skip
                best.append(scores.max())
            _, beam_score = model._beam(model.memory(image, prompt), max_len, k=25)
        torch.testing.assert_close(beam_score, torch.stack(best), atol=1e-4, rtol=1e-5)


def _eight_samples():
    """Eight canonical captions (the project's caption writer) over four locations, two findings each, with
    CGLP-style prompts naming the location and random patches: the prompt alone cannot tell a pair apart, so
    the patch has to."""
    locs = [loc for loc in taxonomy.locations()[::17][:4] for _ in range(2)]
    findings, tracers, grades = list(CTFinding), list(Tracer), list(UptakeGrade)
    captions = [
        caption_text(loc.id, findings[i % len(findings)], PetFinding(tracer=tracers[i % 2], grade=grades[i % 3]))
        for i, loc in enumerate(locs)
    ]
    assert len(set(captions)) == 8
    vocab = Vocab.build(captions, extra_texts=location_texts())
    g = torch.Generator().manual_seed(0)
    image = torch.rand(8, 2, *PATCH, generator=g)
    prompt = torch.tensor([vocab.encode(loc.name, 8, special=False) for loc in locs])
    ids = torch.tensor([vocab.encode(c, 24) for c in captions])
    return vocab, captions, image, prompt, ids


def _overfit(kind: str, max_steps: int) -> int:
    vocab, captions, image, prompt, ids = _eight_samples()
    cfg = _cfg(kind, vocab_size=len(vocab), dim=64, heads=4, encoder_channels=(8, 16), prompt_len=8,
               max_caption_len=24)  # fmt: skip
    torch.manual_seed(0)
    model = build_captioner(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    inputs, targets = shift_captions(ids)
    for step in range(1, max_steps + 1):
        model.train()
        loss = caption_loss(model(image, prompt, inputs), targets, label_smoothing=0.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            model.eval()
            decoded = [vocab.decode(row) for row in model.generate(image, prompt, max_len=23)]
            if decoded == [c.lower() for c in captions]:
                return step
    raise AssertionError(f"{kind} did not reproduce the 8 captions in {max_steps} steps; last: {decoded}")


@pytest.mark.parametrize("kind", ["xtransformer", "transformer"])
def test_model_overfits_eight_captions(kind):
    assert _overfit(kind, max_steps=200) <= 200


@pytest.mark.slow
def test_lstm_overfits_eight_captions():
    assert _overfit("lstm", max_steps=300) <= 300


def test_caption_loss_ignores_pad_and_smooths():
    V = 9
    logits = torch.randn(2, 5, V)
    targets = torch.tensor([[4, 5, EOS, PAD, PAD], [6, 7, 8, 5, EOS]])
    keep = targets != PAD
    logp = logits.log_softmax(-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)[keep].mean()
    torch.testing.assert_close(caption_loss(logits, targets, label_smoothing=0.0), nll)
    smooth = (1 - 0.1) * nll + 0.1 * (-logp.mean(-1)[keep].mean())
    torch.testing.assert_close(caption_loss(logits, targets, label_smoothing=0.1), smooth)
    # changing logits at <pad> targets changes nothing
    logits2 = logits.clone()
    logits2[0, 3:] = torch.randn(2, V) * 10
    torch.testing.assert_close(caption_loss(logits2, targets), caption_loss(logits, targets))
    inputs, tgt = shift_captions(torch.tensor([[BOS, 4, 5, EOS, PAD]]))
    assert inputs.tolist() == [[BOS, 4, 5, EOS]] and tgt.tolist() == [[4, 5, EOS, PAD]]


def test_default_prompt_length_fits_cglp_prompts():
    from models.cglp import DEFAULT_LENGTH

    assert CaptionerConfig().prompt_len == DEFAULT_LENGTH


def test_config_round_trips_through_json():
    cfg = _cfg("lstm", patch_size=[8, 8, 8])
    assert cfg.patch_size == (8, 8, 8) and cfg.grid == (4, 4, 4)
    again = CaptionerConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg
    with pytest.raises(ValueError, match="unknown"):
        CaptionerConfig.from_dict({**cfg.to_dict(), "depth": 3})


@pytest.mark.parametrize("kind", KINDS)
def test_checkpoint_round_trip(tmp_path, kind, monkeypatch):
    vocab = Vocab.build(["a b c d e f g h"], extra_texts=location_texts()[:3])
    cfg = _cfg(kind, vocab_size=len(vocab), norm="batch")
    model = build_captioner(cfg)
    image, prompt, caption = _inputs(cfg)
    model.train()
    model(image, prompt, caption)  # move the BatchNorm running statistics off their defaults
    model.eval()
    path = tmp_path / "ckpt" / "captioner.pt"
    extra = {"epoch": 3, "metrics": {"bleu4": 0.5}, "optimizer": {"step": torch.tensor(7)}}
    save_checkpoint(path, model, cfg, vocab, extra)
    assert [p.name for p in path.parent.iterdir()] == ["captioner.pt"]  # no temp file left behind

    loaded, cfg2, vocab2, extra2 = load_checkpoint(path)
    assert cfg2 == cfg and vocab2 == vocab and not loaded.training
    assert extra2["epoch"] == 3 and extra2["metrics"] == {"bleu4": 0.5} and extra2["optimizer"]["step"] == 7
    with torch.no_grad():
        assert torch.equal(loaded(image, prompt, caption), model(image, prompt, caption))
        beam = model.generate(image, prompt, 8, beam_size=2)
        assert torch.equal(loaded.generate(image, prompt, 8, beam_size=2), beam)

    import data_contracts.taxonomy as tax

    monkeypatch.setattr(tax, "TAXONOMY_VERSION", "9.9.9")
    with pytest.raises(ValueError, match="taxonomy"):
        load_checkpoint(path)
    assert load_checkpoint(path, allow_taxonomy_mismatch=True)[1] == cfg


def test_checkpoint_errors_name_the_file(tmp_path):
    vocab = Vocab.build(["a b"])
    cfg = _cfg("lstm", vocab_size=len(vocab))
    with pytest.raises(ValueError, match="vocab_size"):
        save_checkpoint(tmp_path / "x.pt", build_captioner(cfg), _cfg("lstm", vocab_size=99), vocab)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt"):
        load_checkpoint(bad)
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="other.pt"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")


def test_decoders_share_the_word_embedding_with_the_prompt():
    for kind in KINDS:
        model = _model(_cfg(kind))
        image, prompt, caption = _inputs(model.cfg)
        model.zero_grad()
        # only the prompt reads the embedding rows of tokens absent from the caption
        caption = torch.full_like(caption, 4)
        caption[:, 0] = BOS
        F.softplus(model(image, prompt, caption)).sum().backward()
        grad = model.decoder.embed_tokens.weight.grad
        used = set(prompt[prompt != PAD].tolist()) - {4, BOS}
        assert all(grad[t].abs().sum() > 0 for t in used), kind


@pytest.mark.parametrize("kind", KINDS)
def test_bf16_autocast_trains_and_decodes(kind):
    """Training runs under bf16 autocast on CUDA; CPU autocast exercises the same dtype paths here."""
    cfg = _cfg(kind)
    model = _model(cfg).train()
    image, prompt, caption = _inputs(cfg)
    inputs, targets = shift_captions(caption)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = caption_loss(model(image, prompt, inputs), targets)
        loss.backward()
        model.eval()
        ids = model.generate(image, prompt, max_len=8, beam_size=2)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert ids.shape == (3, 8) and ids.min() >= 0 and ids.max() < cfg.vocab_size


@pytest.mark.parametrize("kind", KINDS)
def test_banned_words_are_never_generated(kind):
    """``banned`` (B×V): a sample's caption never contains its banned words, greedy or beam; other samples and
    an empty ban decode as before."""
    cfg = _cfg(kind, vocab_size=20)
    model = _model(cfg, 5)
    image, prompt, _ = _inputs(cfg, B=2, seed=4)
    with torch.no_grad():
        for beam in (1, 3):
            free = model.generate(image, prompt, max_len=10, beam_size=beam)
            none = torch.zeros(2, cfg.vocab_size, dtype=torch.bool)
            assert torch.equal(model.generate(image, prompt, max_len=10, beam_size=beam, banned=none), free)
            banned = none.clone()
            words = free[0][free[0] > EOS]  # the words the free caption of sample 0 used
            assert len(words)
            banned[0, words] = True
            out = model.generate(image, prompt, max_len=10, beam_size=beam, banned=banned)
            assert not banned[0, out[0]].any() and not torch.equal(out[0], free[0])
            assert torch.equal(out[1], free[1])
        with pytest.raises(ValueError, match="banned must be"):
            model.generate(image, prompt, max_len=10, banned=torch.zeros(2, 3, dtype=torch.bool))


@pytest.mark.parametrize("kind", KINDS)
def test_constrained_decoding_starts_with_the_best_candidate(kind):
    """CGLP's location names as candidates: the caption starts with the one the model (+ prior) scores best."""
    cfg = _cfg(kind, vocab_size=20)
    model = _model(cfg, 3)
    image, prompt, _ = _inputs(cfg, B=3, seed=3)
    cands = [[[5, 6, 7], [8, 9]], [[10, 11]], []]  # two candidates, one, none (free decoding)
    with torch.no_grad():
        scores = {}
        for i, c in ((0, [5, 6, 7]), (0, [8, 9])):  # each candidate's own log-probability, by teacher forcing
            ids = torch.tensor([c])
            scores[tuple(c)] = float(model.sequence_logprob(image[i:i + 1], prompt[i:i + 1], ids))
        winner = max(scores, key=scores.get)
        for beam in (1, 3):
            out = model.generate(image, prompt, max_len=10, beam_size=beam, candidates=cands)
            assert out[0, : len(winner)].tolist() == list(winner)
            assert out[1, :2].tolist() == [10, 11]
            assert torch.equal(out[2], model.generate(image[2:], prompt[2:], max_len=10, beam_size=beam)[0])
        # a prior (the localizer's log-confidence) large enough overrides the model's preference
        loser = [c for c in scores if c != winner][0]
        gap = scores[winner] - scores[loser] + 1.0
        priors = [[0.0, gap] if loser == (8, 9) else [gap, 0.0], [0.0], []]
        out = model.generate(image, prompt, max_len=10, candidates=cands, candidate_priors=priors)
        assert out[0, : len(loser)].tolist() == list(loser)
