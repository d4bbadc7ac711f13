"""The caption metric of training validation: BLEU-4.

BLEU-4 is pycocoevalcap's ``Bleu(4)`` (corpus level, the COCO caption evaluation) over captions tokenized by the
captioner's own tokenizer (lower-case, punctuation split off) instead of the Java PTB tokenizer, so it runs
without Java. The full evaluation suite (METEOR, ROUGE-L, CIDEr, per-vendor tables) is the evaluation stage's.
"""

from __future__ import annotations

from pycocoevalcap.bleu.bleu import Bleu

from models.vocab import tokenize


def _text(caption: str) -> str:
    return " ".join(tokenize(caption)) or "<empty>"


def bleu4(references: list[str], hypotheses: list[str]) -> float:
    """Corpus BLEU-4 of one hypothesis against one reference per sample."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(references)} references, {len(hypotheses)} hypotheses")
    if not references:
        return float("nan")
    refs = {i: [_text(r)] for i, r in enumerate(references)}
    hyps = {i: [_text(h)] for i, h in enumerate(hypotheses)}
    scores, _ = Bleu(4).compute_score(refs, hyps, verbose=0)
    return float(scores[3])
