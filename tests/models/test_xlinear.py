"""X-Linear attention block, X-Transformer refiner and decoder: values, masks, gradients, causality."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from models.decoders import Memory
from models.xlinear import CELU_ALPHA, XLinearAttention, XLinearDecoder, XLinearEncoder

B, Q, N, D, H = 3, 2, 7, 16, 4


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These tensors are tiny: one intra-op thread is several times faster than two, above all on a busy CI box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _block() -> XLinearAttention:
    return XLinearAttention(D, H, dropout=0.0).eval()


def _by_hand(block: XLinearAttention, query, keys, values, allowed):
    """The block's formula written out per head with einsum, independent of its implementation."""

    def proj(p, x):
        y = F.celu(x @ p.linear.weight.T + p.linear.bias, alpha=CELU_ALPHA)
        g = y.view(*y.shape[:-1], H, D // H)  # GroupNorm with one group per head
        g = (g - g.mean(-1, keepdim=True)) / torch.sqrt(g.var(-1, unbiased=False, keepdim=True) + p.norm.eps)
        return g.reshape(y.shape) * p.norm.weight + p.norm.bias

    d = D // H
    q = proj(block.q_proj, query).view(B, Q, H, d)
    v1 = proj(block.v1_proj, query).view(B, Q, H, d)
    k = proj(block.k_proj, keys).view(B, N, H, d)
    v2 = proj(block.v2_proj, values).view(B, N, H, d)
    lin_e, lin_s, lin_c = block.embed[0], block.spatial, block.channel
    e = torch.relu(torch.einsum("bqhc,bnhc,ec->bhqne", q, k, lin_e.weight) + lin_e.bias)  # B×H×Q×N×d/2
    logit = torch.einsum("bhqne,e->bhqn", e, lin_s.weight[0]) + lin_s.bias
    logit = logit.masked_fill(~allowed[:, None], float("-inf"))
    attn = logit.softmax(-1)
    w = allowed[:, None, :, :, None].float()
    gate = torch.sigmoid(((e * w).sum(3) / w.sum(3)) @ lin_c.weight.T + lin_c.bias)  # B×H×Q×d
    out = v1.transpose(1, 2) * torch.einsum("bhqn,bnhc->bhqc", attn, v2) * gate
    return out.transpose(1, 2).reshape(B, Q, D), attn


def test_block_shape_and_value_match_the_formula():
    block = _block()
    query, keys, values = torch.randn(B, Q, D), torch.randn(B, N, D), torch.randn(B, N, D)
    mask = torch.ones(B, 1, N, dtype=torch.bool)
    mask[0, 0, 4:] = False
    out, attn = block(query, keys, values, mask, return_attention=True)
    assert out.shape == (B, Q, D) and attn.shape == (B, H, Q, N)
    expected_out, expected_attn = _by_hand(block, query, keys, values, mask.expand(B, Q, N))
    torch.testing.assert_close(attn, expected_attn, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
    # the query-side value makes it bilinear: scaling that projection's GroupNorm scales the output
    with torch.no_grad():
        block.v1_proj.norm.weight.mul_(2.0)
        block.v1_proj.norm.bias.mul_(2.0)
    torch.testing.assert_close(block(query, keys, values, mask), 2.0 * out, atol=1e-5, rtol=1e-5)


def test_gradients_reach_all_four_projections_and_both_attentions():
    block = XLinearAttention(D, H, dropout=0.0)
    query, keys = torch.randn(B, Q, D), torch.randn(B, N, D)
    block(query, keys, keys).pow(2).sum().backward()
    for name in ("q_proj", "v1_proj", "k_proj", "v2_proj"):
        grad = getattr(block, name).linear.weight.grad
        assert grad is not None and grad.abs().sum() > 0, name
    for module in (block.channel, block.spatial, block.embed[0]):
        assert module.weight.grad is not None and module.weight.grad.abs().sum() > 0


def test_masked_positions_get_exactly_zero_attention_and_do_not_matter():
    block = _block()
    query, keys = torch.randn(B, Q, D), torch.randn(B, N, D)
    mask = torch.rand(B, 1, N) > 0.4
    mask[:, :, 0] = True  # at least one key each
    out, attn = block(query, keys, keys, mask, return_attention=True)
    masked = ~mask.expand(B, Q, N).unsqueeze(1).expand_as(attn)
    assert masked.any()
    assert torch.all(attn[masked] == 0.0)
    torch.testing.assert_close(attn.sum(-1), torch.ones(B, H, Q))
    # whatever sits at masked positions, the output is the same (spatial and channel attention both masked)
    noisy = torch.where(mask.transpose(1, 2), keys, torch.randn_like(keys) * 100)
    torch.testing.assert_close(block(query, noisy, noisy, mask), out)


def test_causal_mask_zeroes_the_future():
    block = _block()
    T = 5
    x = torch.randn(B, T, D)
    causal = torch.ones(T, T, dtype=torch.bool).tril().unsqueeze(0)
    _, attn = block(x, x, x, causal, return_attention=True)
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    assert torch.all(attn[:, :, future] == 0.0) and torch.all(attn[:, :, ~future] > 0.0)


def test_refiner_ignores_masked_tokens_and_fuses_layer_globals():
    enc = XLinearEncoder(D, H, layers=2, ff_mult=2, dropout=0.0).eval()
    x = torch.randn(B, N, D)
    mask = torch.ones(B, N, dtype=torch.bool)
    mask[:, 5:] = False
    mem = enc(x, mask)
    assert mem.feats.shape == (B, N, D) and mem.pooled.shape == (B, D) and torch.equal(mem.mask, mask)
    noisy = x.clone()
    noisy[:, 5:] = torch.randn(B, 2, D) * 50
    other = enc(noisy, mask)
    torch.testing.assert_close(other.pooled, mem.pooled)
    torch.testing.assert_close(other.feats[:, :5], mem.feats[:, :5])
    assert enc.fuse_globals[0].in_features == 3 * D  # mean-pooled global + one per layer


def test_decoder_is_causal_and_stepwise_decoding_matches_teacher_forcing():
    V, T = 20, 9
    dec = XLinearDecoder(V, D, H, layers=3, ff_mult=2, dropout=0.0, max_len=16).eval()
    mem = Memory(torch.randn(B, N, D), torch.ones(B, N, dtype=torch.bool), torch.randn(B, D))
    mem.mask[1, 3:] = False
    tokens = torch.randint(4, V, (B, T))
    logits = dec(mem, tokens)
    assert logits.shape == (B, T, V)

    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 1 - 4) % (V - 4) + 4
    other = dec(mem, changed)
    torch.testing.assert_close(other[:, :6], logits[:, :6])
    assert not torch.allclose(other[:, 6], logits[:, 6])

    state, steps = None, []
    for t in range(1, T + 1):
        step_logits, state = dec.step(mem, tokens[:, :t], state)
        steps.append(step_logits)
    assert state["words"].shape == (B, 3, T, D)
    torch.testing.assert_close(torch.stack(steps, 1), logits, atol=1e-5, rtol=1e-5)

    with pytest.raises(ValueError, match="position table"):
        dec(mem, torch.randint(4, V, (B, 17)))
