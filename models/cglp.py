"""Confidence Guided Location Prompts (CGLP, paper section 2.2): the localizer's answer as caption prompt words.

Rule: if the top-1 confidence is strictly greater than the threshold (``Settings.cglp_threshold``, 0.95: the paper's
"exceeds 95%"), the prompt is the top-1 location's canonical name only; otherwise the names of top-1, top-2 and
top-3 joined by the separator ``;``. Words are the captioner vocabulary's tokens (``models.vocab.tokenize``:
lower-case, punctuation split off), then ``<pad>``-ed (or cut at the tail) to exactly ``length`` tokens, so every
sample's prompt has the same length. The captioner embeds these ids with its decoder's word embedding and
concatenates them with the visual tokens.

Separator: ``;`` rather than a ``<sep>`` special, because it is one token of the captioner's tokenizer (which splits
"<sep>" into "<", "sep", ">"), never occurs in captions (so it cannot be confused with caption punctuation), and
decodes readably ("t7 vertebral body; t8 vertebral body; right 7th rib"). Build the captioner vocabulary with
``Vocab.build(captions, extra_texts=prompt_texts())`` so every prompt token, separator included, has its own id.

DWS (``models.dws``) uses ">=" at its 0.95 and CGLP ">" at its own, as the paper words them; both compare in the
confidence's own precision (a float32 0.95 counts as 0.95).

``enabled=False`` gives an all-``<pad>`` prompt of the same length (the ablation without P: same shapes, and the
captioner masks pad prompt tokens, so no location information). ``DEFAULT_LENGTH`` fits the three longest
canonical names and two separators, so a taxonomy prompt is never cut at the default.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

from data_contracts import taxonomy
from data_contracts.findings import Tracer
from data_contracts.settings import Settings
from models.dws import location_of, top1_reaches
from models.vocab import PAD as PAD_ID
from models.vocab import SPECIALS, UNK, Vocab, location_texts, tokenize

PAD = SPECIALS[PAD_ID]  # "<pad>"
SEP = ";"  # between the names of top-1, top-2, top-3
DEFAULT_THRESHOLD: float = Settings.model_fields["cglp_threshold"].default  # 0.95; callers pass the setting
DEFAULT_COUNTS: tuple[int, int] = Settings.model_fields["cglp_prompt_locations"].default  # (1, 3) locations


def location_words(location: str | int) -> list[str]:
    """A location (string id or class index) as caption tokens: "left upper lobe" -> [left, upper, lobe]."""
    return tokenize(location_of(location).name)


def prompt_texts() -> list[str]:
    """Extra texts for the captioner vocabulary: every location name, the separator and every tracer."""
    return [*location_texts(), SEP, *(t.value for t in Tracer)]


def _default_length() -> int:
    longest = sorted((len(location_words(loc.id)) for loc in taxonomy.locations()), reverse=True)
    n = DEFAULT_COUNTS[1]
    return sum(longest[:n]) + (n - 1)


DEFAULT_LENGTH: int = _default_length()  # 30 with the taxonomy 1.0.0 names


def cglp_prompt(top_ids: Sequence[Any] | torch.Tensor, top_conf: Sequence[float] | torch.Tensor,
                threshold: float = DEFAULT_THRESHOLD, length: int = DEFAULT_LENGTH, enabled: bool = True,
                counts: tuple[int, int] = DEFAULT_COUNTS) -> list[str]:
    """One sample's prompt words, exactly ``length`` of them.

    top_ids: the localizer's top-k locations, best first (string ids or class indices), k >= counts[1] when not
    confident; top_conf: their confidences (only the first, top-1, is read). counts: locations when confident / not.
    """
    if length < 1:
        raise ValueError(f"prompt length must be >= 1, got {length}")
    if not enabled:
        return [PAD] * length
    top_ids = top_ids.tolist() if isinstance(top_ids, torch.Tensor) else list(top_ids)
    n = counts[0] if top1_reaches(top_conf, threshold, strict=True) else counts[1]
    if len(top_ids) < n:
        raise ValueError(f"CGLP needs the top-{n} locations, got {len(top_ids)}")
    words: list[str] = []
    for rank, location in enumerate(top_ids[:n]):
        if rank:
            words.append(SEP)
        words += location_words(location)
    return (words + [PAD] * length)[:length]


def context_words(tracer: str) -> list[str]:
    """The study-context words in front of the prompt: the tracer as the captions write it ("FDG" -> [fdg]).

    The tracer is a header fact (PET RadiopharmaceuticalInformationSequence / the manifest), not something the
    captioner should have to guess from the uptake pattern, so every configuration (also B without CGLP) gets it.
    """
    return tokenize(str(getattr(tracer, "value", tracer)))


def cglp_prompt_ids(top_ids: torch.Tensor, top_conf: torch.Tensor,
                    vocab: Vocab | Callable[[list[str]], Sequence[int]], threshold: float = DEFAULT_THRESHOLD,
                    length: int = DEFAULT_LENGTH, enabled: bool = True,
                    counts: tuple[int, int] = DEFAULT_COUNTS, tracers: Sequence[str] | None = None) -> torch.Tensor:
    """Batched: top_ids (B, k), top_conf (B, k) -> (B, length) long prompt ids for the captioner.

    ``vocab``: the captioner's ``Vocab`` (unknown words -> ``<unk>``), or any callable mapping a word list to ids.
    ``tracers`` (B,): when given, each prompt starts with ``context_words(tracer)`` and the CGLP words fill the
    rest of ``length``.
    """
    if len(top_ids) != len(top_conf):
        raise ValueError(f"top_ids has {len(top_ids)} rows, top_conf {len(top_conf)}")
    if tracers is not None and len(tracers) != len(top_ids):
        raise ValueError(f"tracers has {len(tracers)} rows, top_ids {len(top_ids)}")
    encode = vocab if callable(vocab) else (lambda words: [vocab.stoi.get(w, UNK) for w in words])
    rows = []
    for i, (ids, conf) in enumerate(zip(top_ids, top_conf, strict=True)):
        head = context_words(tracers[i]) if tracers is not None else []
        words = head + cglp_prompt(ids, conf, threshold, length - len(head), enabled, counts)
        encoded = list(encode(words))
        if len(encoded) != length:
            raise ValueError(f"encode returned {len(encoded)} ids for {length} prompt words")
        rows.append(encoded)
    return torch.tensor(rows, dtype=torch.long).reshape(len(rows), length)  # (B, P)


def tracer_bans(prompt_ids: torch.Tensor, vocab: Vocab) -> torch.Tensor:
    """(B, P) prompts that start with the study's tracer word (``tracer_token``) -> (B, V) bool: the other tracers'
    words, which that sample's caption may not contain (``Captioner.generate``'s ``banned``). The tracer is a header
    fact, so "FDG uptake" in a PSMA study is never right; with few training studies of one tracer a decoder
    otherwise falls back to the frequent one. A prompt whose first word is no tracer bans nothing."""
    banned = torch.zeros(len(prompt_ids), len(vocab), dtype=torch.bool)
    for tracer in Tracer:
        own = context_words(tracer)
        if own[0] not in vocab.stoi:
            continue
        others = {vocab.stoi[w] for t in Tracer if t != tracer for w in context_words(t)
                  if w in vocab.stoi and w not in own}
        rows = prompt_ids[:, 0].cpu() == vocab.stoi[own[0]]  # (B,) prompts of this tracer
        banned[rows.nonzero().flatten()[:, None], sorted(others)] = True
    return banned


def prompt_candidates(prompt_ids: torch.Tensor, vocab: Vocab, tracer_token: bool,
                      end: str = ",") -> list[list[list[int]]]:
    """The location names of each CGLP prompt (B, P) as caption starts: per sample, the ids of every name in the
    prompt followed by ``end`` (captions read "<location>, <finding> ..."), for ``Captioner.generate``'s
    constrained decoding. ``tracer_token``: the prompts start with the tracer word, which is skipped. An
    all-``<pad>`` prompt (CGLP off) gives no candidates."""
    sep, pad, comma = vocab.stoi[SEP], PAD_ID, vocab.stoi.get(end, UNK)
    out = []
    for row in prompt_ids.tolist():
        words = row[1:] if tracer_token else row
        names, current = [], []
        for t in words + [sep]:
            if t == sep or t == pad:
                if current:
                    names.append(current + [comma])
                current = []
            else:
                current.append(t)
        out.append(names)
    return out
