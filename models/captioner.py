"""The lesion captioner of stage 2: small-FOV patch + CGLP location prompt -> caption.

    image B×C×D×H×W ──3D CNN──> visual tokens B×N×D ─┐
    prompt_ids B×P ──decoder word embedding──> B×P×D ─┴─ concat, pad prompt tokens masked -> B×(N+P)×D
    memory ──decoder.encode (refiner)──> decoder(memory, caption so far) -> next-word logits

The decoder is chosen by config: ``xtransformer`` (the paper's backbone, ``models/xlinear.py``), or the
baselines ``transformer`` and ``lstm`` (``models/decoders.py``). The prompt is embedded with the decoder's own
word embedding, as the paper does ("the word-embedded prompt is concatenated with the image features"); an
all-``<pad>`` prompt is masked out entirely, so it gives exactly the model without a prompt (ablation "B").

Conventions: ``caption_ids`` are ``Vocab.encode`` rows ``[<bos>, words..., <eos>, <pad>...]``; train with
``inputs, targets = shift_captions(ids)`` and ``caption_loss(model(image, prompt, inputs), targets)``.
``generate`` returns words (no ``<bos>``) up to and including ``<eos>``, ``<pad>`` after.

Checkpoints (``save_checkpoint``/``load_checkpoint``) carry the config, the vocabulary and the taxonomy version,
so a file alone rebuilds the model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution, ResidualUnit
from torch import nn

from data_contracts.atomic import atomic_open
from models.decoders import LSTMDecoder, Memory, TransformerDecoder
from models.vocab import BOS, EOS, PAD, SPECIALS, Vocab
from models.xlinear import XTransformer

DecoderKind = Literal["lstm", "transformer", "xtransformer"]
CHECKPOINT_FORMAT = "petcap.captioner"


@dataclass
class CaptionerConfig:
    """Everything that shapes the captioner; stored in checkpoints (``to_dict``) and set from named configs.

    The defaults are sized for CPU work (D 128, 2 + 2 layers, a 32³ patch -> 64 visual tokens); the paper-scale
    X-Transformer is D 768, 8 heads, 6 + 6 layers.
    """

    decoder: DecoderKind = "xtransformer"
    vocab_size: int = 0  # len(vocab); must be set before building
    in_channels: int = 2  # CT (windowed to [0,1]) and PET ([0,1]); 3 with a lesion-mask channel
    patch_size: tuple[int, int, int] = (32, 32, 32)  # D×H×W voxels of the small-FOV patch
    encoder_channels: tuple[int, ...] = (16, 32, 64, 128)  # stem, then one residual stage per further entry
    encoder_strides: tuple[int, ...] | None = None  # stem's, then each stage's; None: (1, 2, 2, ...); (2, 2, 2, 1): 4³
    # for a 32³ patch at ~1/8 of the CPU cost (the stem's full-resolution conv dominates; measured 0.34 vs 2.6 s
    # forward + backward for 16 patches)
    norm: str = "batch"  # CNN normalisation (MONAI name); batch keeps absolute intensity (uptake grade) visible
    dim: int = 128  # D, token / model width
    heads: int = 4
    encoder_layers: int = 2  # refiner layers over the memory (unused by lstm)
    decoder_layers: int = 2
    ff_mult: int = 4
    dropout: float = 0.1
    prompt_len: int = 30  # P, CGLP prompt tokens, <pad>-padded (models.cglp.DEFAULT_LENGTH: 3 names + 2 ";")
    use_prompt: bool = True  # False: prompt ignored (ablations B and B+W)
    max_caption_len: int = 40  # longest token sequence the decoder accepts (<bos> included)
    label_smoothing: float = 0.1

    def __post_init__(self):
        self.patch_size = tuple(int(s) for s in self.patch_size)
        self.encoder_channels = tuple(int(c) for c in self.encoder_channels)
        if self.encoder_strides is None:
            self.encoder_strides = (1,) + (2,) * (len(self.encoder_channels) - 1)
        self.encoder_strides = tuple(int(c) for c in self.encoder_strides)
        if len(self.encoder_strides) != len(self.encoder_channels) or min(self.encoder_strides) < 1:
            raise ValueError(f"encoder_strides {self.encoder_strides} needs one stride >= 1 per encoder_channels entry")
        if self.decoder not in ("lstm", "transformer", "xtransformer"):
            raise ValueError(f"decoder must be lstm | transformer | xtransformer, got {self.decoder!r}")
        stride = math.prod(self.encoder_strides)
        if len(self.patch_size) != 3 or any(s % stride for s in self.patch_size):
            raise ValueError(f"patch_size {self.patch_size} must be 3 sizes divisible by {stride}")
        if self.dim % self.heads:
            raise ValueError(f"dim {self.dim} is not divisible by heads {self.heads}")

    @property
    def grid(self) -> tuple[int, int, int]:
        """Visual token grid: the patch downsampled by the CNN's strides."""
        stride = math.prod(self.encoder_strides)
        return tuple(s // stride for s in self.patch_size)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict) -> CaptionerConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown captioner config keys: {unknown}")
        return cls(**data)


class VolumeEncoder(nn.Module):
    """3D CNN (MONAI blocks) over the small-FOV patch -> visual tokens with learned positions.

    image B×C×D×H×W -> stem conv -> residual stages (``encoder_strides``) -> B×c×d×h×w -> B×N×D,
    N = d·h·w (4×4×4 = 64 for a 32³ patch and a total stride of 8).
    """

    def __init__(self, cfg: CaptionerConfig):
        super().__init__()
        ch = cfg.encoder_channels
        st = cfg.encoder_strides
        blocks: list[nn.Module] = [Convolution(3, cfg.in_channels, ch[0], strides=st[0], norm=cfg.norm)]
        for c_in, c_out, stride in zip(ch[:-1], ch[1:], st[1:]):
            blocks.append(ResidualUnit(3, c_in, c_out, strides=stride, subunits=2, norm=cfg.norm))
        self.cnn = nn.Sequential(*blocks)
        n_tokens = cfg.grid[0] * cfg.grid[1] * cfg.grid[2]
        self.proj = nn.Linear(ch[-1], cfg.dim)
        self.positions = nn.Parameter(torch.randn(n_tokens, cfg.dim) * 0.02)  # N×D
        self.norm = nn.LayerNorm(cfg.dim)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        f = self.cnn(image)  # B×c×d×h×w
        f = f.flatten(2).transpose(1, 2)  # B×N×c
        return self.drop(self.norm(self.proj(f) + self.positions))  # B×N×D


class Captioner(nn.Module):
    """3D CNN encoder + CGLP prompt tokens + a decoder of the configured kind (see the module docstring)."""

    def __init__(self, cfg: CaptionerConfig):
        super().__init__()
        if cfg.vocab_size <= len(SPECIALS):
            raise ValueError(f"vocab_size {cfg.vocab_size} is not set (use len(vocab))")
        self.cfg = cfg
        self.encoder = VolumeEncoder(cfg)
        common = dict(vocab_size=cfg.vocab_size, dim=cfg.dim, heads=cfg.heads, dropout=cfg.dropout)
        if cfg.decoder == "lstm":
            self.decoder = LSTMDecoder(layers=cfg.decoder_layers, **common)
        else:
            decoder_cls = XTransformer if cfg.decoder == "xtransformer" else TransformerDecoder
            self.decoder = decoder_cls(
                encoder_layers=cfg.encoder_layers,
                decoder_layers=cfg.decoder_layers,
                ff_mult=cfg.ff_mult,
                max_len=cfg.max_caption_len,
                **common,
            )
        if cfg.use_prompt:
            self.prompt_positions = nn.Parameter(torch.randn(cfg.prompt_len, cfg.dim) * 0.02)  # P×D
            self.prompt_norm = nn.LayerNorm(cfg.dim)

    # ---- encoding -----------------------------------------------------------------------------------------
    def memory(self, image: torch.Tensor, prompt_ids: torch.Tensor | None) -> Memory:
        """Visual tokens (+ prompt tokens) refined by the decoder's encoder: what every decoding step reads."""
        cfg = self.cfg
        if image.dim() != 5 or image.shape[1] != cfg.in_channels or tuple(image.shape[2:]) != cfg.patch_size:
            raise ValueError(
                f"image must be B×{cfg.in_channels}×{'×'.join(map(str, cfg.patch_size))}, got {tuple(image.shape)}"
            )
        feats = self.encoder(image)  # B×N×D
        mask = torch.ones(feats.shape[:2], dtype=torch.bool, device=feats.device)  # B×N
        if cfg.use_prompt and prompt_ids is not None:
            if prompt_ids.shape != (image.shape[0], cfg.prompt_len):
                raise ValueError(f"prompt_ids must be B×{cfg.prompt_len}, got {tuple(prompt_ids.shape)}")
            prompt = self.decoder.embed_tokens(prompt_ids) + self.prompt_positions  # B×P×D
            feats = torch.cat([feats, self.prompt_norm(prompt)], dim=1)  # B×(N+P)×D
            mask = torch.cat([mask, prompt_ids != PAD], dim=1)  # B×(N+P), pad prompt tokens masked out
        return self.decoder.encode(feats, mask)

    def forward(self, image: torch.Tensor, prompt_ids: torch.Tensor | None, caption_ids: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: caption_ids B×T (from <bos>) -> logits B×T×V; logits[:, t] predicts token t+1."""
        return self.decoder(self.memory(image, prompt_ids), caption_ids)

    # ---- decoding -----------------------------------------------------------------------------------------
    def _next_logprobs(self, memory: Memory, prefix: torch.Tensor, state: dict | None):
        """Log-probabilities B×V of the token after prefix B×t, and the decoder's new state.

        <pad> and <bos> are never generated (set to -inf after normalisation, so scores stay the model's own
        log-probabilities and match ``sequence_logprob``).
        """
        logits, state = self.decoder.step(memory, prefix, state)
        logp = F.log_softmax(logits.float(), dim=-1)  # B×V
        logp[:, PAD] = float("-inf")
        logp[:, BOS] = float("-inf")
        return logp, state

    @torch.no_grad()
    def generate(
        self,
        image: torch.Tensor,
        prompt_ids: torch.Tensor | None = None,
        max_len: int | None = None,
        beam_size: int = 1,
        candidates: list[list[list[int]]] | None = None,
        candidate_priors: list[list[float]] | None = None,
        banned: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Caption token ids B×max_len (words, <eos>, then <pad>); greedy when beam_size is 1.

        ``candidates`` (constrained decoding, Anderson et al. 2017): per sample, token sequences one of which the
        caption must start with (CGLP's location names, each with its comma). The model scores each by teacher
        forcing (plus its ``candidate_priors`` entry, e.g. the log of the localizer's confidence in it), the best
        is forced as the caption's start, and decoding continues freely from it; a sample with no candidates
        decodes freely. ``banned`` B×V bool: words a sample's caption may not contain (e.g. another tracer's name
        than the study's, ``models.cglp.tracer_bans``).
        Call ``model.eval()`` first. Scores are summed log-probabilities without length penalty; a caption that
        reaches max_len without <eos> is cut there. With beam_size > 1 the greedy caption is decoded too and
        kept wherever it scores higher: plain beam search can prune the greedy path and end below it (measured
        on small random models: up to 4 % of captions), and the greedy pass costs only 1/beam_size extra.
        """
        max_len = max_len or self.cfg.max_caption_len
        if max_len > self.cfg.max_caption_len:
            raise ValueError(f"max_len {max_len} exceeds the model's max_caption_len {self.cfg.max_caption_len}")
        memory = self.memory(image, prompt_ids)
        forced = (self._choose(memory, candidates, max_len, candidate_priors)
                  if candidates is not None else None)  # B×F or None
        if banned is not None and tuple(banned.shape) != (image.shape[0], self.cfg.vocab_size):
            raise ValueError(f"banned must be B×V = {image.shape[0]}×{self.cfg.vocab_size}, "
                             f"got {tuple(banned.shape)}")
        ids, scores = self._greedy(memory, max_len, forced, banned)
        if beam_size > 1:
            beam_ids, beam_scores = self._beam(memory, max_len, beam_size, forced, banned)
            ids = torch.where((beam_scores >= scores).unsqueeze(1), beam_ids, ids)
        return ids

    def _choose(self, memory: Memory, candidates: list[list[list[int]]], max_len: int,
                priors: list[list[float]] | None = None) -> torch.Tensor:
        """The best-scoring candidate start of each sample (teacher forcing + prior) -> B×F ids, <pad>-padded."""
        B = memory.feats.shape[0]
        device = memory.feats.device
        if len(candidates) != B:
            raise ValueError(f"{len(candidates)} candidate lists for {B} samples")
        rows = [(i, c[: max_len - 1], priors[i][j] if priors is not None else 0.0)
                for i, cands in enumerate(candidates) for j, c in enumerate(cands) if c]
        forced = torch.full((B, max(1, max((len(c) for _, c, _ in rows), default=1))), PAD, dtype=torch.long,
                            device=device)
        if not rows:
            return forced
        L = max(len(c) for _, c, _ in rows)
        seqs = torch.full((len(rows), L), PAD, dtype=torch.long, device=device)  # R×L candidate ids
        for r, (_, c, _) in enumerate(rows):
            seqs[r, : len(c)] = torch.tensor(c, device=device)
        inputs = torch.cat([torch.full_like(seqs[:, :1], BOS), seqs[:, :-1]], dim=1)  # R×L
        owner = torch.tensor([i for i, _, _ in rows], device=device)  # R
        logp = F.log_softmax(self.decoder(memory.index_select(owner), inputs).float(), dim=-1)  # R×L×V
        score = logp.gather(-1, seqs.unsqueeze(-1)).squeeze(-1).masked_fill(seqs == PAD, 0.0).sum(-1)  # R
        score = score + torch.tensor([p for _, _, p in rows], device=device)
        best = torch.full((B,), float("-inf"), device=device)
        for r, (i, c, _) in enumerate(rows):
            if score[r] > best[i]:
                best[i] = score[r]
                forced[i] = PAD
                forced[i, : len(c)] = seqs[r, : len(c)]
        return forced

    @staticmethod
    def _force(logp: torch.Tensor, forced: torch.Tensor | None, t: int, per_sample: int,
               banned_rows: torch.Tensor | None = None) -> torch.Tensor:
        """Rows whose sample has a forced token at step t may only take it (at its own log-probability); no row
        takes its ``banned_rows`` words (rows×V: the sample's ban, one row per beam)."""
        if banned_rows is not None:
            logp = logp.masked_fill(banned_rows, float("-inf"))
        if forced is None or t >= forced.shape[1]:
            return logp
        tok = forced[:, t].repeat_interleave(per_sample)  # rows
        only = torch.full_like(logp, float("-inf")).scatter(1, tok.unsqueeze(1), logp.gather(1, tok.unsqueeze(1)))
        return torch.where((tok != PAD).unsqueeze(1), only, logp)

    def _greedy(self, memory: Memory, max_len: int, forced: torch.Tensor | None = None,
                banned: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy captions B×max_len and their summed log-probabilities B (``forced``: B×F start ids or None)."""
        B = memory.feats.shape[0]
        device = memory.feats.device
        prefix = torch.full((B, 1), BOS, dtype=torch.long, device=device)  # B×1
        done = torch.zeros(B, dtype=torch.bool, device=device)
        scores = torch.zeros(B, device=device)
        state = None
        for t in range(max_len):
            logp, state = self._next_logprobs(memory, prefix, state)
            logp = self._force(logp, forced, t, 1, banned)
            best, tok = logp.max(-1)  # B, B
            scores += best.masked_fill(done, 0.0)
            tok = tok.masked_fill(done, PAD)
            prefix = torch.cat([prefix, tok.unsqueeze(1)], dim=1)  # B×(t+1)
            done |= tok == EOS
            if done.all():
                break
        return F.pad(prefix[:, 1:], (0, max_len - (prefix.shape[1] - 1)), value=PAD), scores  # B×max_len, B

    def _beam(self, memory: Memory, max_len: int, k: int, forced: torch.Tensor | None = None,
              banned: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Beam-search captions B×max_len (best of k beams) and their summed log-probabilities B."""
        B = memory.feats.shape[0]
        device = memory.feats.device
        memory = memory.index_select(torch.arange(B, device=device).repeat_interleave(k))  # (B·k) rows
        prefix = torch.full((B, k, 1), BOS, dtype=torch.long, device=device)  # B×k×t
        scores = torch.full((B, k), float("-inf"), device=device)
        scores[:, 0] = 0.0  # one live beam at the start, so the k beams do not duplicate it
        done = torch.zeros(B, k, dtype=torch.bool, device=device)
        state = None
        banned_rows = banned.repeat_interleave(k, dim=0) if banned is not None else None  # (B·k)×V
        for t in range(max_len):
            logp, state = self._next_logprobs(memory, prefix.view(B * k, -1), state)  # (B·k)×V
            logp = self._force(logp, forced, t, k, banned_rows)
            V = logp.shape[-1]
            logp = logp.view(B, k, V)
            # a finished beam may only continue with <pad> at no cost, so it keeps its score
            finished_row = torch.full((V,), float("-inf"), device=device)
            finished_row[PAD] = 0.0
            logp = torch.where(done.unsqueeze(-1), finished_row, logp)
            cand = (scores.unsqueeze(-1) + logp).view(B, k * V)  # B×(k·V)
            scores, flat = cand.topk(k, dim=-1)  # B×k
            beam, tok = flat // V, flat % V  # B×k each: which beam each survivor extends, with which word
            prefix = torch.cat([prefix.gather(1, beam.unsqueeze(-1).expand(-1, -1, t + 1)), tok.unsqueeze(-1)], -1)
            done = done.gather(1, beam) | (tok == EOS)
            rows = (beam + torch.arange(B, device=device).unsqueeze(1) * k).view(-1)  # B·k rows of the state
            state = {name: value.index_select(0, rows) for name, value in state.items()}
            if done.all():
                break
        best_score, best = scores.max(-1)  # B
        ids = prefix[torch.arange(B, device=device), best, 1:]  # B×t
        return F.pad(ids, (0, max_len - ids.shape[1]), value=PAD), best_score

    def sequence_logprob(self, image: torch.Tensor, prompt_ids: torch.Tensor | None, ids: torch.Tensor):
        """Summed log-probability B of generated ids B×L (as ``generate`` returns them), by teacher forcing."""
        inputs = torch.cat([torch.full_like(ids[:, :1], BOS), ids[:, :-1]], dim=1)  # B×L
        logp = F.log_softmax(self(image, prompt_ids, inputs).float(), dim=-1)  # B×L×V
        tok = logp.gather(-1, ids.unsqueeze(-1)).squeeze(-1)  # B×L
        return tok.masked_fill(ids == PAD, 0.0).sum(-1)


def build_captioner(cfg: CaptionerConfig) -> Captioner:
    return Captioner(cfg)


# ---- training helpers ---------------------------------------------------------------------------------------
def shift_captions(caption_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Teacher forcing pair from ``Vocab.encode`` rows B×T: inputs B×(T-1) (from <bos>), targets B×(T-1)."""
    return caption_ids[:, :-1], caption_ids[:, 1:]


def caption_loss(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.1) -> torch.Tensor:
    """Label-smoothed cross-entropy of logits B×T×V against targets B×T; ``<pad>`` targets are ignored and the
    mean is over the remaining words. Smoothing spreads its mass over the whole vocabulary (torch's rule)."""
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        targets.reshape(-1),
        ignore_index=PAD,
        label_smoothing=label_smoothing,
    )


# ---- checkpoints --------------------------------------------------------------------------------------------
def save_checkpoint(
    path: str | Path, model: Captioner, cfg: CaptionerConfig, vocab: Vocab, extra: dict | None = None
) -> None:
    """Write a self-describing checkpoint atomically (temp file in the same folder, then rename).

    ``extra`` holds anything the trainer needs to resume (optimizer/scheduler state, epoch, metrics); it must
    be made of tensors, numbers, strings, lists and dicts.
    """
    from data_contracts.taxonomy import TAXONOMY_VERSION

    if cfg.vocab_size != len(vocab):
        raise ValueError(f"config vocab_size {cfg.vocab_size} != len(vocab) {len(vocab)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": 1,
        "config": cfg.to_dict(),
        "vocab": vocab.to_dict(),
        "taxonomy_version": TAXONOMY_VERSION,
        "state_dict": model.state_dict(),
        "extra": extra or {},
    }
    with atomic_open(path) as f:
        torch.save(payload, f)


def load_checkpoint(
    path: str | Path, map_location: str | torch.device = "cpu", allow_taxonomy_mismatch: bool = False
) -> tuple[Captioner, CaptionerConfig, Vocab, dict]:
    """Rebuild (model in eval mode, config, vocabulary, extra) from a ``save_checkpoint`` file."""
    from data_contracts.taxonomy import TAXONOMY_VERSION

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"captioner checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated file, not a torch file, unexpected objects
        raise ValueError(f"captioner checkpoint {path} cannot be read: {e}") from e
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a petcap captioner checkpoint")
    if payload["taxonomy_version"] != TAXONOMY_VERSION and not allow_taxonomy_mismatch:
        raise ValueError(
            f"{path} was trained with taxonomy {payload['taxonomy_version']}, this code has {TAXONOMY_VERSION}"
        )
    cfg = CaptionerConfig.from_dict(payload["config"])
    vocab = Vocab.from_dict(payload["vocab"])
    model = build_captioner(cfg)
    model.load_state_dict(payload["state_dict"])
    model.to(map_location).eval()
    return model, cfg, vocab, payload["extra"]
