"""Word-level vocabulary of the captioner: tokenizer, ids, and the JSON form stored in checkpoints.

Captions are short and formulaic ("T7 vertebral body, osteolytic destruction with increased FDG uptake"), so
a word vocabulary built from the training captions is all the captioner needs. The CGLP location prompts are
embedded with the same word embedding, so the vocabulary is usually built with every taxonomy location name
as extra text (``location_texts()``): a prompt then never hits ``<unk>`` even for a location that no training
caption mentions.

Tokenization lower-cases and splits punctuation into tokens of their own; words keep digits and letters
together ("t7", "2r", "1st") and decimals stay whole ("2.5"). Decoding joins tokens back with the inverse
spacing rules, so ``decode(encode(text))`` equals ``normalize(text)`` for any text whose words are known:

    "Right upper paratracheal lymph node (station 2R)" -> "right upper paratracheal lymph node (station 2r)"
    "ground-glass opacity" -> tokens "ground" "-" "glass" "opacity" -> "ground-glass opacity"
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>", "<unk>")  # ids 0..3, in this order

_TOKEN = re.compile(r"\w+(?:\.\d+)?|[^\w\s]")  # a word (with an optional decimal part) or one punctuation mark
_NO_SPACE_BEFORE = frozenset(",.;:)%]")
_NO_SPACE_AFTER = frozenset("([")
_JOINERS = frozenset("-/")  # no space on either side: "ground-glass", "para-aortic", "t7/t8"


def tokenize(text: str) -> list[str]:
    """Lower-cased word and punctuation tokens of ``text``."""
    return _TOKEN.findall(text.lower())


def detokenize(tokens: Iterable[str]) -> str:
    """Join tokens with the spacing rules that invert ``tokenize`` on normalised text."""
    out: list[str] = []
    prev = ""
    for tok in tokens:
        glue = (
            not out
            or tok in _NO_SPACE_BEFORE
            or tok in _JOINERS
            or prev in _JOINERS
            or prev in _NO_SPACE_AFTER
        )
        out.append(tok if glue else " " + tok)
        prev = tok
    return "".join(out)


def normalize(text: str) -> str:
    """The canonical form a caption takes after a round trip through the vocabulary."""
    return detokenize(tokenize(text))


def location_texts() -> list[str]:
    """Canonical names of every taxonomy location: the extra text that keeps CGLP prompts free of ``<unk>``."""
    from data_contracts import taxonomy

    return [loc.name for loc in taxonomy.locations()]


class Vocab:
    """Token <-> id mapping with ``<pad>``=0, ``<bos>``=1, ``<eos>``=2, ``<unk>``=3, then words."""

    def __init__(self, tokens: Sequence[str]):
        tokens = list(tokens)
        if tuple(tokens[: len(SPECIALS)]) != SPECIALS:
            raise ValueError(f"vocabulary must start with the special tokens {SPECIALS}, got {tokens[:4]}")
        if len(set(tokens)) != len(tokens):
            dup = sorted(t for t, n in Counter(tokens).items() if n > 1)
            raise ValueError(f"vocabulary has duplicate tokens: {dup[:10]}")
        self.itos: list[str] = tokens
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(tokens)}

    # ---- construction -------------------------------------------------------------------------------------
    @classmethod
    def build(cls, texts: Iterable[str], extra_texts: Iterable[str] = (), min_count: int = 1) -> Vocab:
        """Words of ``texts`` seen at least ``min_count`` times, plus every word of ``extra_texts``.

        Order is deterministic (most frequent first, ties alphabetical), so the same captions always give
        the same ids.
        """
        counts = Counter(tok for text in texts for tok in tokenize(text))
        keep = {tok for tok, n in counts.items() if n >= min_count}
        for text in extra_texts:
            for tok in tokenize(text):
                keep.add(tok)
                counts[tok] += 0  # make sure it has an entry for ordering
        words = sorted((t for t in keep if t not in SPECIALS), key=lambda t: (-counts[t], t))
        return cls(list(SPECIALS) + words)

    def to_dict(self) -> dict:
        """JSON-serialisable form (stored inside checkpoints)."""
        return {"format": "petcap.vocab", "version": 1, "tokens": list(self.itos)}

    @classmethod
    def from_dict(cls, data: dict) -> Vocab:
        if data.get("format") != "petcap.vocab" or "tokens" not in data:
            raise ValueError(f"not a petcap vocabulary: keys {sorted(data)}")
        return cls(data["tokens"])

    # ---- mapping ------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.itos)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def unknown_words(self, text: str) -> list[str]:
        """Tokens of ``text`` that would become ``<unk>``."""
        return [t for t in tokenize(text) if t not in self.stoi]

    def encode(self, text: str, max_len: int, special: bool = True) -> list[int]:
        """Exactly ``max_len`` ids: ``[<bos>, words..., <eos>, <pad>...]``.

        Words beyond the length are dropped (``<eos>`` is always kept when ``special``). ``special=False`` gives
        just the words, ``<pad>``-padded: the form of a CGLP prompt.
        """
        room = max_len - 2 if special else max_len
        if room < 0:
            raise ValueError(f"max_len {max_len} leaves no room for <bos>/<eos>")
        ids = [self.stoi.get(tok, UNK) for tok in tokenize(text)][:room]
        if special:
            ids = [BOS, *ids, EOS]
        return ids + [PAD] * (max_len - len(ids))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``: stops at ``<eos>``, skips ``<pad>``/``<bos>``; ids out of range read ``<unk>``."""
        words = []
        for i in ids:
            i = int(i)
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            words.append(self.itos[i] if 0 <= i < len(self.itos) else SPECIALS[UNK])
        return detokenize(words)
