"""The CLIP localizer's text side (``models.localizer``): location names as token ids, and their encoders.

Own tokenizer (lower-case; words and single punctuation marks) and a vocabulary over every taxonomy term, saved in
the localizer's checkpoint. In training each sample's text is its location's canonical name, or with probability
``synonym_prob`` one of its terms drawn at random (report phrasing: "RUL", "T7 vertebra", ...); ambiguous terms
("S1": sacrum or liver segment I) are left out. At inference each category is its canonical name. Optionally a
local pretrained text model (``pretrained_text_model``: a folder; loaded through ``transformers`` when that is
installed, never downloaded) replaces the small Transformer.

Shapes: T phrases, L tokens, w text width.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from data_contracts import taxonomy
from data_contracts.taxonomy import AMBIGUOUS_TERMS

PAD, UNK = "<pad>", "<unk>"


# --------------------------------------------------------------------------------------------------- tokens
def tokenize(text: str) -> list[str]:
    """Lower-case words and single punctuation marks: "Station 2R (AP)" -> station 2r ( ap )."""
    return re.findall(r"\w+|[^\w\s]", text.lower())


def build_text_vocab() -> list[str]:
    """Specials, then every word of every taxonomy term, sorted (deterministic for one taxonomy version)."""
    words = {w for loc in taxonomy.locations() for term in loc.terms for w in tokenize(term)}
    return [PAD, UNK, *sorted(words)]


def training_terms() -> tuple[list[str], list[int]]:
    """All phrases a location's text may be drawn from, grouped per location, canonical name first.

    -> (terms, term_count per location in ``taxonomy.locations()`` order); ambiguous terms left out.
    """
    terms, counts = [], []
    for loc in taxonomy.locations():
        own = [loc.name] + [t for t in loc.synonyms if t.lower() not in AMBIGUOUS_TERMS]
        own = list(dict.fromkeys(own))
        terms += own
        counts.append(len(own))
    return terms, counts


# --------------------------------------------------------------------------------------------------- encoders
class TextEncoder(nn.Module):
    """Word-level Transformer over location phrases: (T, L) token ids -> (T, text_width), mean over real tokens.
    Its sizes come from ``LocalizerConfig`` (text_width, text_layers, text_heads, text_max_tokens, dropout), which
    holds their defaults."""

    def __init__(self, vocab: list[str], width: int, layers: int, heads: int, max_tokens: int, dropout: float):
        super().__init__()
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        if self.vocab[:2] != [PAD, UNK]:
            raise ValueError(f"text vocabulary must start with {PAD!r}, {UNK!r}")
        self.max_tokens = max_tokens
        self.width = width
        self.words = nn.Embedding(len(self.vocab), width, padding_idx=0)
        self.positions = nn.Parameter(torch.zeros(1, max_tokens, width))  # (1, L, w) learned positions
        nn.init.normal_(self.positions, std=0.02)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)

    def tokenize(self, phrases: list[str]) -> torch.Tensor:
        """Phrases -> (T, L) ids, <pad>=0 after the words, unknown words -> <unk>, cut at text_max_tokens."""
        if not phrases:
            raise ValueError("no phrases to tokenize")
        ids = [[self.index.get(w, 1) for w in tokenize(p)][: self.max_tokens] or [1] for p in phrases]
        out = torch.zeros(len(ids), max(map(len, ids)), dtype=torch.long)
        for row, seq in enumerate(ids):
            out[row, : len(seq)] = torch.tensor(seq)
        return out

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        real = tokens != 0  # (T, L)
        x = self.words(tokens) + self.positions[:, : tokens.shape[1]]  # (T, L, w)
        x = self.norm(self.blocks(x, src_key_padding_mask=~real))  # (T, L, w)
        real = real.unsqueeze(-1).to(x.dtype)
        return (x * real).sum(1) / real.sum(1).clamp(min=1.0)  # (T, w)


class PretrainedTextEncoder(nn.Module):
    """A local ``transformers`` model (folder) as the text encoder, mean-pooled; loaded offline only."""

    def __init__(self, path: str, max_tokens: int):
        super().__init__()
        try:
            import transformers
        except ImportError as e:
            raise ImportError(
                f"LocalizerConfig.pretrained_text_model is set ({path!r}) but the 'transformers' package is not "
                "installed; install it, or set pretrained_text_model=None to train the small text encoder"
            ) from e
        if not Path(path).is_dir():
            raise FileNotFoundError(f"pretrained text model folder {path!r} does not exist (nothing is downloaded)")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = transformers.AutoModel.from_pretrained(path, local_files_only=True)
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.max_tokens = max_tokens
        self.width = self.model.config.hidden_size

    def tokenize(self, phrases: list[str]) -> torch.Tensor:
        enc = self.tokenizer(list(phrases), padding=True, truncation=True, max_length=self.max_tokens,
                             return_tensors="pt")
        return enc["input_ids"]  # (T, L)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        mask = (tokens != self.pad_id).long()
        x = self.model(input_ids=tokens, attention_mask=mask).last_hidden_state  # (T, L, w)
        m = mask.unsqueeze(-1).to(x.dtype)
        return (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (T, w)
