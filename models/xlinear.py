"""X-Linear attention and the X-Transformer (Pan et al., "X-Linear Attention Networks for Image Captioning",
CVPR 2020): the captioning backbone the paper builds on (its baseline "B").

X-Linear attention replaces the dot product of ordinary attention by low-rank bilinear pooling: query and key
are projected and multiplied elementwise, so every channel of their joint representation is a second-order
interaction. From that joint representation come two attentions:

- spatial: a softmax over the N key positions (which tokens to read), and
- channel: squeeze-excitation over the mean joint representation (which channels to keep),

and the output is (query-side value) ⊙ (attended value) ⊙ (channel gate), the query-side value making the
whole thing bilinear in query and values too.

The X-Transformer uses the block twice:

- ``XLinearEncoder`` (refiner): only the mean-pooled global feature queries the tokens; each layer updates the
  global vector, then every token from [global ; token]; the globals of all layers are fused into one.
- ``XLinearDecoder``: per word, a query mixing the global feature with the running mean of the words so far;
  each layer does causal X-Linear self-attention over the words, then X-Linear cross-attention over the refined
  memory; the outputs of all layers are concatenated, gated (GLU) and projected to the vocabulary.

Decoding is incremental (``step``): the decoder is causal and position-wise apart from its self-attention, so
each layer's word states are cached and only the new word is computed; the memory's key/value projections are
computed once per caption. ``forward`` (teacher forcing) and ``step`` give the same logits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from models.decoders import Memory, masked_mean, sinusoidal_positions
from models.vocab import PAD

CELU_ALPHA = 1.3  # the reference implementation's activation for the bilinear projections


class _Projection(nn.Module):
    """Linear -> CELU(1.3) -> GroupNorm with one group per head, on the last axis of any B×…×D tensor."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        self.norm = nn.GroupNorm(heads, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.celu(self.linear(x), alpha=CELU_ALPHA)
        return self.norm(y.reshape(-1, y.shape[-1])).view_as(y)  # GroupNorm wants channels on axis 1


class XLinearAttention(nn.Module):
    """One multi-head X-Linear attention block.

    query B×Q×D attends over keys/values B×N×D; ``mask`` (bool, True = may attend) broadcasts to B×Q×N:
    B×1×N for key padding, 1×T×T (or B×T×T) for a causal mask. Every query needs at least one allowed key.
    """

    def __init__(self, dim: int, heads: int, dropout: float = 0.1):
        super().__init__()
        if dim % heads or (dim // heads) % 2:
            raise ValueError(f"dim {dim} must split into {heads} heads of even size")
        self.heads, self.head_dim = heads, dim // heads
        d = self.head_dim
        self.q_proj = _Projection(dim, heads)  # query, multiplied with the keys
        self.v1_proj = _Projection(dim, heads)  # query-side value, multiplied with the output
        self.k_proj = _Projection(dim, heads)
        self.v2_proj = _Projection(dim, heads)
        self.embed = nn.Sequential(nn.Linear(d, d // 2), nn.ReLU(), nn.Dropout(dropout))  # shared by heads
        self.spatial = nn.Linear(d // 2, 1)
        self.channel = nn.Linear(d // 2, d)

    def project_kv(self, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Key and value projections B×N×D each; computed once when the same memory is read every step."""
        return self.k_proj(keys), self.v2_proj(values)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        values: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ):
        return self.attend(query, self.project_kv(keys, values), mask, return_attention)

    def attend(
        self,
        query: torch.Tensor,
        kv: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None = None,
        return_attention: bool = False,
    ):
        """X-Linear attention of query B×Q×D over projected (keys, values) from ``project_kv``."""
        B, Q, D = query.shape
        N, H, d = kv[0].shape[1], self.heads, self.head_dim

        def heads(x: torch.Tensor) -> torch.Tensor:  # B×L×D -> B×H×L×d
            return x.view(B, -1, H, d).transpose(1, 2)

        q = heads(self.q_proj(query))  # B×H×Q×d
        v1 = heads(self.v1_proj(query))  # B×H×Q×d
        k, v2 = heads(kv[0]), heads(kv[1])  # B×H×N×d each

        joint = q.unsqueeze(3) * k.unsqueeze(2)  # B×H×Q×N×d  low-rank bilinear query-key representation
        joint = self.embed(joint)  # B×H×Q×N×d/2

        # spatial attention: which of the N positions each query reads
        logits = self.spatial(joint).squeeze(-1)  # B×H×Q×N
        allowed = None
        if mask is not None:
            allowed = mask.to(torch.bool).expand(B, Q, N).unsqueeze(1)  # B×1×Q×N
            logits = logits.masked_fill(~allowed, float("-inf"))
        attn = logits.softmax(dim=-1)  # B×H×Q×N, exactly 0 where masked

        # channel attention (squeeze-excitation): mean joint representation over allowed positions
        if allowed is None:
            squeezed = joint.mean(dim=3)  # B×H×Q×d/2
        else:
            w = allowed.to(joint.dtype).unsqueeze(-1)  # B×1×Q×N×1
            squeezed = (joint * w).sum(3) / w.sum(3).clamp_min(1.0)  # B×H×Q×d/2
        gate = torch.sigmoid(self.channel(squeezed))  # B×H×Q×d

        out = v1 * (attn @ v2) * gate  # B×H×Q×d
        out = out.transpose(1, 2).reshape(B, Q, D)  # heads concatenated
        return (out, attn) if return_attention else out


class _FeedForward(nn.Module):
    """Position-wise FFN with residual and LayerNorm: LN(x + W2 relu(W1 x))."""

    def __init__(self, dim: int, ff_mult: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, ff_mult * dim),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(ff_mult * dim, dim),
            nn.Dropout(dropout),
        )
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.net(x))


class _Fuse(nn.Module):
    """Update states x from a context c: LN(x + ReLU(Linear([c ; x]))) — the 'bifeature' step."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.linear = nn.Linear(2 * dim, dim)
        self.drop = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, c: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x + self.drop(F.relu(self.linear(torch.cat([c.expand_as(x), x], dim=-1)))))


class XLinearEncoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float):
        super().__init__()
        self.attn = XLinearAttention(dim, heads, dropout)
        self.drop = nn.Dropout(dropout)
        self.fuse = _Fuse(dim, dropout)
        self.ff = _FeedForward(dim, ff_mult, dropout)

    def forward(self, g: torch.Tensor, x: torch.Tensor, mask: torch.Tensor):
        # g B×1×D global query, x B×N×D tokens, mask B×1×N
        g = self.drop(self.attn(g, x, x, mask))  # B×1×D  the global vector, re-read from the tokens
        x = self.ff(self.fuse(g, x))  # B×N×D     every token updated from [global ; token]
        return g, x


class XLinearEncoder(nn.Module):
    """The X-Transformer refiner: tokens B×N×D, mask B×N -> Memory(refined tokens, mask, fused global)."""

    def __init__(self, dim: int, heads: int, layers: int, ff_mult: int, dropout: float):
        super().__init__()
        self.layers = nn.ModuleList(XLinearEncoderLayer(dim, heads, ff_mult, dropout) for _ in range(layers))
        self.fuse_globals = nn.Sequential(nn.Linear((layers + 1) * dim, dim), nn.LayerNorm(dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> Memory:
        g = masked_mean(x, mask).unsqueeze(1)  # B×1×D  mean-pooled global feature
        key_mask = mask.unsqueeze(1)  # B×1×N
        globals_ = [g]
        for layer in self.layers:
            g, x = layer(g, x, key_mask)
            globals_.append(g)
        pooled = self.fuse_globals(torch.cat(globals_, dim=-1)).squeeze(1)  # B×(L+1)D -> B×D
        return Memory(x, mask, pooled)


class XLinearDecoderLayer(nn.Module):
    def __init__(self, dim: int, heads: int, ff_mult: int, dropout: float, last: bool):
        super().__init__()
        self.self_attn = XLinearAttention(dim, heads, dropout)
        self.norm_self = nn.LayerNorm(dim)
        self.cross_attn = XLinearAttention(dim, heads, dropout)
        self.norm_cross = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)
        # the last layer's word states are never read again, so it has no update for them
        self.fuse = None if last else _Fuse(dim, dropout)
        self.ff = None if last else _FeedForward(dim, ff_mult, dropout)

    def forward(self, q, x, words, self_mask, memory: Memory, memory_kv):
        """q B×T×D per-word queries, x B×T×D their word states, words B×S×D all word states so far (S = T in
        training; the cached prefix plus the new word when decoding step by step), self_mask B×T×S or None,
        memory_kv the cross-attention's projected memory."""
        h = self.norm_self(x + self.drop(self.self_attn(q, words, words, self_mask)))  # B×T×D
        mem_mask = memory.mask.unsqueeze(1)  # B×1×N
        g = self.norm_cross(h + self.drop(self.cross_attn.attend(h, memory_kv, mem_mask)))  # B×T×D
        if self.fuse is not None:
            x = self.ff(self.fuse(g, x))  # B×T×D  word states updated from [layer output ; word]
        return g, x


class XLinearDecoder(nn.Module):
    """The X-Transformer decoder: Memory + tokens B×T (from <bos>) -> logits B×T×V, causal in T.

    ``forward`` scores a whole sequence (training); ``step`` adds one word at a time with a cache of the word
    states each layer reads and the memory projections, for greedy and beam decoding.
    """

    def __init__(self, vocab_size: int, dim: int, heads: int, layers: int, ff_mult: int, dropout: float, max_len: int):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, dim, padding_idx=PAD)
        self.scale = math.sqrt(dim)
        self.register_buffer("positions", sinusoidal_positions(max_len, dim), persistent=False)  # L×D
        self.norm_words = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

        def mix() -> nn.Module:
            return nn.Sequential(nn.Linear(dim, dim), nn.CELU(CELU_ALPHA), nn.LayerNorm(dim))

        self.mix_global, self.mix_words = mix(), mix()
        self.layers = nn.ModuleList(
            XLinearDecoderLayer(dim, heads, ff_mult, dropout, last=i == layers - 1) for i in range(layers)
        )
        self.fuse_layers = nn.Sequential(
            nn.Linear((layers + 1) * dim, 2 * dim), nn.GLU(dim=-1), nn.LayerNorm(dim), nn.Dropout(dropout)
        )
        self.out = nn.Linear(dim, vocab_size)

    def _embed(self, tokens: torch.Tensor, start: int) -> torch.Tensor:
        """Word embedding ×√D + position, LayerNorm, dropout: tokens B×T at positions start.. -> B×T×D."""
        T = tokens.shape[1]
        if start + T > self.positions.shape[0]:
            raise ValueError(f"caption length {start + T} exceeds the position table ({self.positions.shape[0]})")
        x = self.embed_tokens(tokens) * self.scale + self.positions[start : start + T]
        return self.drop(self.norm_words(x))

    def _query(self, memory: Memory, running_mean: torch.Tensor) -> torch.Tensor:
        """Initial per-word query B×T×D: global feature ⊙ running mean of the words up to each position."""
        return self.drop(self.mix_global(memory.pooled).unsqueeze(1) * self.mix_words(running_mean))

    def _logits(self, outputs: list[torch.Tensor]) -> torch.Tensor:
        h = self.fuse_layers(torch.cat(outputs, dim=-1))  # B×T×(L+1)D -> GLU -> B×T×D
        return self.out(h)  # B×T×V

    def forward(self, memory: Memory, tokens: torch.Tensor) -> torch.Tensor:
        B, T = tokens.shape
        x = self._embed(tokens, 0)  # B×T×D
        counts = torch.arange(1, T + 1, device=x.device, dtype=x.dtype).view(1, T, 1)
        q = self._query(memory, x.cumsum(dim=1) / counts)  # B×T×D

        causal = torch.ones(T, T, dtype=torch.bool, device=x.device).tril().unsqueeze(0)  # 1×T×T
        outputs = [q]
        for layer in self.layers:
            kv = layer.cross_attn.project_kv(memory.feats, memory.feats)
            q, x = layer(q, x, x, causal, memory, kv)
            outputs.append(q)
        return self._logits(outputs)

    def step(self, memory: Memory, tokens: torch.Tensor, state: dict | None):
        """Next-word logits B×V for prefix tokens B×t, of which only the last is new; returns (logits, state).

        ``state`` holds batch-first tensors only (beam search reorders them with ``index_select``):
        words B×L×(t-1)×D (each layer's input word states so far), sum B×D (running sum of word embeddings),
        mem_k / mem_v B×L×N×D (each layer's projected memory).
        """
        B, t = tokens.shape
        if state is None:
            kvs = [layer.cross_attn.project_kv(memory.feats, memory.feats) for layer in self.layers]
            state = {
                "words": memory.feats.new_zeros(B, len(self.layers), 0, memory.feats.shape[-1]),
                "sum": memory.feats.new_zeros(B, memory.feats.shape[-1]),
                "mem_k": torch.stack([k for k, _ in kvs], dim=1),
                "mem_v": torch.stack([v for _, v in kvs], dim=1),
            }
        x = self._embed(tokens[:, -1:], t - 1)  # B×1×D
        total = state["sum"] + x[:, 0]  # B×D
        q = self._query(memory, (total / t).unsqueeze(1))  # B×1×D
        outputs, words = [q], []
        for i, layer in enumerate(self.layers):
            context = torch.cat([state["words"][:, i], x], dim=1)  # B×t×D, all words so far may be read
            words.append(context)
            q, x = layer(q, x, context, None, memory, (state["mem_k"][:, i], state["mem_v"][:, i]))
            outputs.append(q)
        state = {**state, "words": torch.stack(words, dim=1), "sum": total}
        return self._logits(outputs)[:, 0], state


class XTransformer(nn.Module):
    """Refiner + decoder behind the decoders' shared interface (``encode`` then ``forward``)."""

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
        self.encoder = XLinearEncoder(dim, heads, encoder_layers, ff_mult, dropout)
        self.decoder = XLinearDecoder(vocab_size, dim, heads, decoder_layers, ff_mult, dropout, max_len)

    @property
    def embed_tokens(self) -> nn.Embedding:
        return self.decoder.embed_tokens

    def encode(self, feats: torch.Tensor, mask: torch.Tensor) -> Memory:
        return self.encoder(feats, mask)

    def forward(self, memory: Memory, tokens: torch.Tensor) -> torch.Tensor:
        return self.decoder(memory, tokens)

    def step(self, memory: Memory, tokens: torch.Tensor, state: dict | None):
        return self.decoder.step(memory, tokens, state)
