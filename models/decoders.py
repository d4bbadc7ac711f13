"""Caption decoders the captioner can be built with, and the interface they share.

Every decoder is a pair of steps, so the captioner (``models/captioner.py``) can swap them by config:

    memory = decoder.encode(feats, mask)            # feats B×N×D visual + prompt tokens, mask B×N (True = real)
    logits = decoder(memory, tokens)                # tokens B×T (from <bos>) -> B×T×V, causal in T (training)
    logits, state = decoder.step(memory, prefix, state)  # prefix B×t -> next-word logits B×V (decoding)

and owns ``decoder.embed_tokens`` (V×D), the word embedding the CGLP prompt tokens are embedded with.
``state`` starts as None and is a dict of batch-first tensors, so beam search can reorder it row-wise.

This file holds the shared ``Memory`` and the two baselines of the paper's Table 1:

- ``LSTMDecoder`` — CNN-LSTM: an attention LSTM (Show, Attend and Tell style) over the memory tokens, state
  initialised from the pooled memory.
- ``TransformerDecoder`` — vanilla Transformer: a ``torch.nn.TransformerEncoder`` refines the memory, a
  ``torch.nn.TransformerDecoder`` writes the caption.

The X-Transformer (the paper's backbone) lives in ``models/xlinear.py``.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import nn

from models.vocab import PAD


class Memory(NamedTuple):
    """What a decoder attends to, batch first (so beam search can repeat/reorder every field alike)."""

    feats: torch.Tensor  # B×N×D refined tokens
    mask: torch.Tensor  # B×N bool, True = real token (pad prompt tokens are False)
    pooled: torch.Tensor  # B×D global feature

    def index_select(self, index: torch.Tensor) -> Memory:
        return Memory(*(t.index_select(0, index) for t in self))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of x (B×N×D) over the N positions where mask (B×N) is True -> B×D."""
    w = mask.to(x.dtype).unsqueeze(-1)  # B×N×1
    return (x * w).sum(1) / w.sum(1).clamp_min(1.0)


def sinusoidal_positions(max_len: int, dim: int) -> torch.Tensor:
    """The Transformer's fixed sine/cosine position table, max_len×dim."""
    pos = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)  # L×1
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # D/2
    table = torch.zeros(max_len, dim)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return table


class LSTMDecoder(nn.Module):
    """Attention LSTM: at each step attend over the memory with the last hidden state, then update the LSTM."""

    def __init__(self, vocab_size: int, dim: int, heads: int, layers: int, dropout: float):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.init_h = nn.Linear(dim, layers * dim)
        self.init_c = nn.Linear(dim, layers * dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        # layer 0 reads [word ; attended context], layers above read the hidden state below
        self.cells = nn.ModuleList(nn.LSTMCell(2 * dim if i == 0 else dim, dim) for i in range(layers))
        self.drop = nn.Dropout(dropout)
        self.out = nn.Linear(2 * dim, vocab_size)
        self.layers, self.dim = layers, dim

    def encode(self, feats: torch.Tensor, mask: torch.Tensor) -> Memory:
        # no refiner: the LSTM attends to the tokens as the captioner made them
        return Memory(feats, mask, masked_mean(feats, mask))

    def _start(self, memory: Memory) -> dict:
        B = memory.pooled.shape[0]
        h = torch.tanh(self.init_h(memory.pooled)).view(B, self.layers, self.dim)  # B×L×D
        c = torch.tanh(self.init_c(memory.pooled)).view(B, self.layers, self.dim)  # B×L×D
        return {"h": h, "c": c}

    def _advance(self, memory: Memory, word: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """One time step: word B×D (embedded) -> output features B×2D and the new state."""
        h, c = list(state["h"].unbind(1)), list(state["c"].unbind(1))  # L × (B×D)
        ctx, _ = self.attn(h[-1].unsqueeze(1), memory.feats, memory.feats, key_padding_mask=~memory.mask)
        ctx = ctx.squeeze(1)  # B×D  memory read with the last hidden state
        x = torch.cat([word, ctx], dim=-1)  # B×2D
        for i, cell in enumerate(self.cells):
            h[i], c[i] = cell(x, (h[i], c[i]))
            x = self.drop(h[i])
        return torch.cat([x, ctx], dim=-1), {"h": torch.stack(h, 1), "c": torch.stack(c, 1)}

    def forward(self, memory: Memory, tokens: torch.Tensor) -> torch.Tensor:
        words = self.drop(self.embed_tokens(tokens))  # B×T×D
        state, outs = self._start(memory), []
        for t in range(tokens.shape[1]):  # teacher forcing, one word at a time (causal by construction)
            out, state = self._advance(memory, words[:, t], state)
            outs.append(out)
        return self.out(torch.stack(outs, dim=1))  # B×T×V

    def step(self, memory: Memory, tokens: torch.Tensor, state: dict | None):
        state = self._start(memory) if state is None else state
        out, state = self._advance(memory, self.drop(self.embed_tokens(tokens[:, -1])), state)
        return self.out(out), state  # B×V


class TransformerDecoder(nn.Module):
    """Vanilla Transformer captioner head: pre-LN encoder over the memory, pre-LN causal decoder."""

    def __init__(
        self,
        vocab_size: int,
        dim: int,
        heads: int,
        encoder_layers: int,
        decoder_layers: int,
        ff_mult: int,
        dropout: float,
        max_len: int,
    ):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.register_buffer("positions", sinusoidal_positions(max_len, dim), persistent=False)  # L×D
        self.scale = math.sqrt(dim)
        self.drop = nn.Dropout(dropout)

        def layer(cls):
            return cls(dim, heads, ff_mult * dim, dropout, batch_first=True, norm_first=True)

        self.encoder = nn.TransformerEncoder(
            layer(nn.TransformerEncoderLayer), encoder_layers, norm=nn.LayerNorm(dim), enable_nested_tensor=False
        )
        self.decoder = nn.TransformerDecoder(layer(nn.TransformerDecoderLayer), decoder_layers, norm=nn.LayerNorm(dim))
        self.out = nn.Linear(dim, vocab_size)

    def encode(self, feats: torch.Tensor, mask: torch.Tensor) -> Memory:
        feats = self.encoder(feats, src_key_padding_mask=~mask)  # B×N×D
        return Memory(feats, mask, masked_mean(feats, mask))

    def forward(self, memory: Memory, tokens: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        if T > self.positions.shape[0]:
            raise ValueError(f"caption length {T} exceeds the position table ({self.positions.shape[0]})")
        x = self.drop(self.embed_tokens(tokens) * self.scale + self.positions[:T])  # B×T×D
        causal = nn.Transformer.generate_square_subsequent_mask(T, device=tokens.device)  # T×T, -inf above diag
        x = self.decoder(
            x, memory.feats, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=~memory.mask
        )  # B×T×D
        return self.out(x)  # B×T×V

    def step(self, memory: Memory, tokens: torch.Tensor, state: dict | None):
        # torch's TransformerDecoder keeps no key/value cache: the prefix is recomputed (cheap for ~20 words)
        return self(memory, tokens)[:, -1], {}
