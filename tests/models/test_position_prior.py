"""Position prior: the shrunk Gaussians against a hand computation, unseen locations, the fusion weights, and the
localizer carrying a fitted prior through its checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from data_contracts import taxonomy
from models.localizer import (
    LocalizerConfig,
    build_localizer,
    load_localizer,
    save_localizer,
)
from models.position_prior import MIN_VAL, PositionPrior, prior_groups

K = len(taxonomy.locations())


def test_groups_follow_the_taxonomy():
    groups = prior_groups()
    assert len(groups) == K
    assert groups[taxonomy.index_of("vertebra_t7")] == "vertebra"
    assert groups[taxonomy.index_of("rib_7_l")] == "rib"
    assert groups[taxonomy.index_of("femur_l")] == "bone"
    assert groups[taxonomy.index_of("liver_s8")] == "organ"
    assert groups[taxonomy.index_of("lung_rul")] == "lung"
    assert sum(g == "vertebra" for g in groups) == 24 and sum(g == "rib" for g in groups) == 24


def _outer_sum(r: torch.Tensor) -> torch.Tensor:
    return sum(torch.outer(v, v) for v in r)


def test_gaussians_equal_a_hand_computation():
    groups = ["a", "a", "a", "b"]
    p = torch.tensor([[0.10, 0.20, 0.30], [0.12, 0.20, 0.34],  # class 0: two lesions
                      [0.50, 0.60, 0.70], [0.50, 0.61, 0.71], [0.52, 0.60, 0.75],  # class 1: three
                      [0.90, 0.90, 0.90]], dtype=torch.float64)  # class 3 (group b): one lesion; class 2: none
    y = torch.tensor([0, 0, 1, 1, 1, 3])
    prior = PositionPrior(groups, shrinkage=2.0).fit(p, y)
    eye = 1e-6 * torch.eye(3, dtype=torch.float64)
    m0, m1 = p[:2].mean(0), p[2:5].mean(0)
    s0, s1 = _outer_sum(p[:2] - m0), _outer_sum(p[2:5] - m1)
    pooled = (s0 + s1) / ((2 - 1) + (3 - 1))  # group a's within-location covariance
    assert torch.allclose(prior.mean[:2].double(), torch.stack([m0, m1]), atol=1e-7)
    assert torch.allclose(prior.cov[0].double(), (s0 + 2 * pooled) / (1 + 2) + eye, atol=1e-9)
    assert torch.allclose(prior.cov[1].double(), (s1 + 2 * pooled) / (2 + 2) + eye, atol=1e-9)
    # class 2 is unseen: its group's lesions' mean and spread plus the pooled covariance
    members = p[:5]
    spread = _outer_sum(members - members.mean(0)) / 5
    assert torch.allclose(prior.mean[2].double(), members.mean(0), atol=1e-7)
    assert torch.allclose(prior.cov[2].double(), spread + pooled + eye, atol=1e-9)
    # group b has one lesion, no within-location degrees of freedom: pooled = all lesions' covariance
    everyone = _outer_sum(p - p.mean(0)) / len(p)
    assert torch.allclose(prior.cov[3].double(), everyone + eye, atol=1e-9)
    assert prior.counts.tolist() == [2, 3, 0, 1] and bool(prior.fitted)

    ll = prior.log_likelihood(m0[None].float())
    c0 = prior.cov[0].double()
    hand = -0.5 * (torch.logdet(c0).item() + 3 * math.log(2 * math.pi))  # at the mean: no Mahalanobis term
    assert ll.shape == (1, 4) and ll[0, 0].item() == pytest.approx(hand, rel=1e-4)
    x = torch.tensor([0.11, 0.21, 0.33], dtype=torch.float64)
    d = x - prior.mean[1].double()
    hand1 = -0.5 * (d @ torch.linalg.solve(prior.cov[1].double(), d) + torch.logdet(prior.cov[1].double())
                    + 3 * math.log(2 * math.pi))
    assert prior.log_likelihood(x[None].float())[0, 1].item() == pytest.approx(hand1.item(), rel=1e-4)
    assert ll.argmax().item() == 0


def test_fuse_is_identity_until_fitted_then_weighted():
    prior = PositionPrior(["a", "a"])
    logits, pos = torch.tensor([[2.0, 1.0]]), torch.tensor([[0.9, 0.9, 0.9]])
    assert torch.equal(prior.fuse(logits, pos), logits)
    prior.fit(torch.tensor([[0.1, 0.1, 0.1], [0.12, 0.1, 0.1], [0.9, 0.9, 0.9], [0.9, 0.92, 0.9]]),
              torch.tensor([0, 0, 1, 1]))
    prior.weights.copy_(torch.tensor([0.5, 2.0]))
    fused = prior.fuse(logits, pos)
    assert torch.allclose(fused, 0.5 * logits + 2.0 * prior.log_likelihood(pos))
    assert fused.argmax().item() == 1  # the position overrules the image here


def _clusters(n: int, g: torch.Generator):
    """Four locations at four z levels 0.02 apart; x, y noise; the z decides."""
    y = torch.randint(0, 4, (n,), generator=g)
    pos = torch.rand(n, 3, generator=g) * 0.2 + 0.4
    pos[:, 2] = 0.5 + 0.02 * y + 0.008 * torch.randn(n, generator=g)  # classes overlap a little
    return pos, y


def test_fusion_weights_follow_which_source_is_informative():
    g = torch.Generator().manual_seed(0)
    prior = PositionPrior(["vertebra"] * 4).fit(*_clusters(60, g))
    pos, y = _clusters(80, g)
    noise = torch.randn(80, 4, generator=g)  # logits that know nothing
    fit = prior.fit_weights(noise, pos, y)
    assert fit["fitted_on_val"] and fit["b"] > 10 * fit["a"], fit
    assert fit["val_nll_fused"] < fit["val_nll_clip"]
    assert (prior.fuse(noise, pos).argmax(1) == y).float().mean() > 0.7

    sharp = 3.0 * torch.nn.functional.one_hot(y, 4).float() + torch.randn(80, 4, generator=g)  # a useless position
    prior2 = PositionPrior(["vertebra"] * 4).fit(torch.rand(60, 3, generator=g), torch.randint(0, 4, (60,), generator=g))
    fit2 = prior2.fit_weights(sharp, torch.rand(80, 3, generator=g), y)
    assert fit2["a"] > 10 * fit2["b"], fit2


def test_too_few_validation_lesions_give_naive_bayes_weights():
    g = torch.Generator().manual_seed(1)
    prior = PositionPrior(["vertebra"] * 4).fit(*_clusters(40, g))
    pos, y = _clusters(MIN_VAL - 1, g)
    fit = prior.fit_weights(torch.randn(len(y), 4, generator=g), pos, y)
    assert not fit["fitted_on_val"] and prior.weights.tolist() == [1.0, 1.0]
    with pytest.raises(RuntimeError, match="fit the Gaussians"):
        PositionPrior(["a"]).fit_weights(torch.zeros(1, 1), torch.zeros(1, 3), torch.zeros(1, dtype=torch.long))


def test_localizer_fuses_a_fitted_prior_and_keeps_it_in_its_checkpoint(tmp_path):
    cfg = LocalizerConfig(patch_size=(16, 16, 16), encoder_channels=(8, 8, 8, 8), text_width=32, text_layers=1,
                          text_heads=2, embed_dim=32, position_prior=True)
    assert cfg.uses_position and not LocalizerConfig().uses_position
    torch.manual_seed(0)
    m = build_localizer(cfg).eval()
    x, pos = torch.rand(3, 3, 16, 16, 16), torch.rand(3, 3)
    before = m.probabilities(x, position=pos)
    assert torch.allclose(before, m.probabilities(x))  # unfitted: the plain CLIP softmax, no position needed
    t7 = taxonomy.index_of("vertebra_t7")
    m.position_prior.fit(torch.tensor([[0.5, 0.5, 0.72], [0.5, 0.5, 0.73], [0.5, 0.5, 0.74], [0.5, 0.5, 0.2]]),
                         torch.tensor([t7, t7, t7, 0]))
    m.position_prior.weights.copy_(torch.tensor([1e-3, 1.0]))  # an untrained image encoder: let the position speak
    near_t7 = torch.tensor([[0.5, 0.5, 0.73]] * 3)
    after = m.probabilities(x, position=near_t7)
    assert (after.argmax(1) == t7).all() and not torch.allclose(after, before)
    with pytest.raises(ValueError, match="position prior: pass position"):
        m.probabilities(x)
    assert torch.allclose(m.logits(x, position=near_t7, fuse=False).softmax(-1), before, atol=1e-6)

    path = save_localizer(m, tmp_path / "loc.pt")
    back = load_localizer(path)
    assert bool(back.position_prior.fitted)
    assert torch.allclose(back.probabilities(x, position=near_t7), after, atol=1e-6)
