"""CLIP lesion localizer (paper section 2.1): large-FOV PET/CT patch <-> anatomical location names.

Stage 1 of the pipeline. A 3D CNN embeds the large-FOV patch (channels: CT in a wide window, PET, lesion mask; all
in [0, 1]; e.g. 3 x 64^3 voxels at 4 mm); a small word-level Transformer embeds the location's name (or one of its
synonyms from ``data_contracts.taxonomy``); both are projected to a shared d and compared by cosine similarity over
a learned temperature (Eq. 1). Training uses the symmetric contrastive loss of Eq. 2-4; inference scores a patch
against the text embeddings of ALL taxonomy categories and returns the top-5 locations with softmax confidences,
which drive CGLP (``models.cglp``) and DWS (``models.dws``) in stage 2.

Same-location samples in one batch. In-batch CLIP treats every off-diagonal pair as a negative, but two lesions of
the same location are each other's positives. We MASK those pairs: for row i the softmax denominator runs over
{i} and the columns j whose location differs from i's, in both directions (image->text and text->image).
Each positive pair thus keeps its own term with only true negatives competing, and when all locations in the batch
differ the mask is empty and the loss is exactly Eq. 2-4. (Soft targets spread over same-location columns were the
alternative; they leave positives in the denominator and give a loss floor of log k, so masking was chosen.)

Text. Own tokenizer (lower-case; words and single punctuation marks) and a vocabulary over every taxonomy term,
saved in the checkpoint. In training each sample's text is its location's canonical name, or with probability
``synonym_prob`` one of its terms drawn at random (report phrasing: "RUL", "T7 vertebra", ...); ambiguous terms
("S1": sacrum or liver segment I) are left out. At inference each category is its canonical name. Optionally a
local pretrained text model (``pretrained_text_model``: a folder; loaded through ``transformers`` when that is
installed, never downloaded) replaces the small Transformer.

Shapes: B batch, C=3 channels, (D, H, W) patch voxels, d shared embedding, T phrases, L tokens, K=134 categories.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from monai.networks.nets import ResNet
from monai.transforms import ScaleIntensityRange
from monai.utils import convert_to_tensor
from torch import nn

from data_contracts import taxonomy
from data_contracts.atomic import atomic_open
from data_contracts.taxonomy import AMBIGUOUS_TERMS, TAXONOMY_VERSION
from models.dws import NormalizePET

CHECKPOINT_KIND = "petcap.clip_localizer"
CHECKPOINT_FORMAT = 1
PAD, UNK = "<pad>", "<unk>"


# --------------------------------------------------------------------------------------------------- text tokens
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


# --------------------------------------------------------------------------------------------------- config
@dataclass
class LocalizerConfig:
    patch_size: tuple[int, int, int] = (64, 64, 64)  # (D, H, W) voxels of the large-FOV patch (4 mm: 256 mm)
    in_channels: int = 3  # CT (wide window), PET (SUV range), lesion mask
    ct_window_hu: tuple[float, float] = (-1000.0, 1500.0)  # wide window of the localizer's CT channel -> [0, 1]
    # image encoder: MONAI ResNet, basic blocks; stem conv 7^3 stride 2 + max-pool, then 4 stages (strides 1,2,2,2)
    encoder_channels: tuple[int, ...] = (16, 32, 64, 128)
    encoder_layers: tuple[int, ...] = (1, 1, 1, 1)
    # text encoder: word embeddings + learned positions + Transformer encoder, mean-pooled over real tokens
    text_width: int = 128
    text_layers: int = 2
    text_heads: int = 4
    text_max_tokens: int = 24
    dropout: float = 0.1
    pretrained_text_model: str | None = None  # local folder of a transformers model; None: the small encoder
    # shared space and temperature
    embed_dim: int = 128  # d
    init_temperature: float = 0.07  # tau at init (CLIP)
    max_logit_scale: float = 100.0  # 1/tau clamped at this (CLIP)
    synonym_prob: float = 0.5  # training: a random term of the location instead of its canonical name

    def __post_init__(self):
        self.patch_size = tuple(int(s) for s in self.patch_size)
        self.ct_window_hu = tuple(float(v) for v in self.ct_window_hu)
        self.encoder_channels = tuple(int(c) for c in self.encoder_channels)
        self.encoder_layers = tuple(int(n) for n in self.encoder_layers)
        if len(self.patch_size) != 3 or min(self.patch_size) < 8:
            raise ValueError(f"patch_size must be three sizes >= 8, got {self.patch_size}")
        if len(self.encoder_channels) != len(self.encoder_layers):
            raise ValueError("encoder_channels and encoder_layers need one entry per stage")
        if self.text_width % self.text_heads:
            raise ValueError(f"text_width {self.text_width} not divisible by text_heads {self.text_heads}")
        if not (0 < self.init_temperature and 1 / self.init_temperature <= self.max_logit_scale):
            raise ValueError("need 0 < init_temperature and 1/init_temperature <= max_logit_scale")
        if not 0.0 <= self.synonym_prob <= 1.0:
            raise ValueError(f"synonym_prob must lie in [0, 1], got {self.synonym_prob}")


# --------------------------------------------------------------------------------------------------- encoders
class ImageEncoder(nn.Module):
    """(B, C, D, H, W) in [0, 1] -> (B, feature width): MONAI 3D ResNet, global average pooled, no classifier."""

    def __init__(self, cfg: LocalizerConfig):
        super().__init__()
        self.net = ResNet(
            "basic", list(cfg.encoder_layers), list(cfg.encoder_channels), spatial_dims=3,
            n_input_channels=cfg.in_channels, conv1_t_size=7, conv1_t_stride=2, feed_forward=False,
        )
        self.width = cfg.encoder_channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, width)


class TextEncoder(nn.Module):
    """Word-level Transformer over location phrases: (T, L) token ids -> (T, text_width), mean over real tokens."""

    def __init__(self, cfg: LocalizerConfig, vocab: list[str]):
        super().__init__()
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        if self.vocab[:2] != [PAD, UNK]:
            raise ValueError(f"text vocabulary must start with {PAD!r}, {UNK!r}")
        self.max_tokens = cfg.text_max_tokens
        self.width = cfg.text_width
        self.words = nn.Embedding(len(self.vocab), cfg.text_width, padding_idx=0)
        self.positions = nn.Parameter(torch.zeros(1, cfg.text_max_tokens, cfg.text_width))
        nn.init.normal_(self.positions, std=0.02)
        layer = nn.TransformerEncoderLayer(cfg.text_width, cfg.text_heads, 4 * cfg.text_width, cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, cfg.text_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.text_width)

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


# --------------------------------------------------------------------------------------------------- loss
def clip_loss(image_emb: torch.Tensor, text_emb: torch.Tensor, logit_scale: torch.Tensor | float,
              locations: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric contrastive loss, Eq. 2-4, with same-location pairs masked out of the denominators.

    image_emb, text_emb (N, d) (normalised here: sim is the cosine of Eq. 1); logit_scale = 1/tau;
    locations (N,) class ids, or None for plain Eq. 2-4. -> scalar.
    """
    v, t = F.normalize(image_emb, dim=-1), F.normalize(text_emb, dim=-1)
    logits = logit_scale * v @ t.T  # (N, N): [i, j] = sim(v_i, t_j) / tau
    if locations is not None:
        same = locations[:, None] == locations[None, :]  # (N, N) symmetric
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    target = torch.arange(len(logits), device=logits.device)
    loss_image = F.cross_entropy(logits, target)  # Eq. 3: row i over texts j
    loss_text = F.cross_entropy(logits.T, target)  # Eq. 4: sim(t_i, v_j) = logits[j, i]
    return (loss_image + loss_text) / 2  # Eq. 2


# --------------------------------------------------------------------------------------------------- model
class CLIPLocalizer(nn.Module):
    def __init__(self, cfg: LocalizerConfig, text_vocab: list[str] | None = None):
        super().__init__()
        self.cfg = cfg
        self.image_encoder = ImageEncoder(cfg)
        if cfg.pretrained_text_model:
            self.text_encoder = PretrainedTextEncoder(cfg.pretrained_text_model, cfg.text_max_tokens)
            self.text_vocab: list[str] = []
        else:
            self.text_vocab = list(text_vocab) if text_vocab is not None else build_text_vocab()
            self.text_encoder = TextEncoder(cfg, self.text_vocab)
        self.image_proj = nn.Linear(self.image_encoder.width, cfg.embed_dim, bias=False)
        self.text_proj = nn.Linear(self.text_encoder.width, cfg.embed_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / cfg.init_temperature)))  # log(1/tau)

        # Every training phrase, tokenized once; location k's phrases are rows term_start[k] : +term_count[k],
        # its canonical name first. Derived from the taxonomy and the vocabulary, so not saved in state_dict.
        terms, counts = training_terms()
        counts_t = torch.tensor(counts)
        self.register_buffer("term_tokens", self.text_encoder.tokenize(terms), persistent=False)  # (n_terms, L)
        self.register_buffer("term_count", counts_t, persistent=False)  # (K,)
        self.register_buffer("term_start", torch.cumsum(counts_t, 0) - counts_t, persistent=False)  # (K,)
        self._category_cache: torch.Tensor | None = None

    @property
    def num_categories(self) -> int:
        return len(self.term_count)

    def scale(self) -> torch.Tensor:
        """1/tau, clamped like CLIP (at most max_logit_scale)."""
        return self.logit_scale.clamp(max=math.log(self.cfg.max_logit_scale)).exp()

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) -> (B, d), unit length."""
        expected = (self.cfg.in_channels, *self.cfg.patch_size)
        if image.dim() != 5 or tuple(image.shape[1:]) != expected:
            raise ValueError(f"localizer expects (B, {', '.join(map(str, expected))}) patches, "
                             f"got {tuple(image.shape)}")
        return F.normalize(self.image_proj(self.image_encoder(image)), dim=-1)

    def encode_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(T, L) token ids -> (T, d), unit length."""
        return F.normalize(self.text_proj(self.text_encoder(tokens)), dim=-1)

    def encode_text(self, phrases: list[str]) -> torch.Tensor:
        """Free-text location phrases -> (T, d), unit length."""
        return self.encode_tokens(self.text_encoder.tokenize(phrases).to(self.logit_scale.device))

    def sample_terms(self, locations: torch.Tensor) -> torch.Tensor:
        """(B,) class ids -> (B,) term rows: the canonical name, or w.p. synonym_prob a random term of the location."""
        start, count = self.term_start[locations], self.term_count[locations]
        offset = (torch.rand(locations.shape, device=locations.device) * count).long().clamp(max=count - 1)
        use_synonym = torch.rand(locations.shape, device=locations.device) < self.cfg.synonym_prob
        return start + torch.where(use_synonym, offset, torch.zeros_like(offset))

    def forward(self, image: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
        """Loss of a batch: image (B, C, D, H, W), locations (B,) class ids -> scalar (Eq. 2-4, masked).

        Training draws each sample's text (name or synonym); eval uses canonical names (deterministic val loss).
        """
        v = self.encode_image(image)  # (B, d)
        terms = self.sample_terms(locations) if self.training else self.term_start[locations]
        t = self.encode_tokens(self.term_tokens[terms])  # (B, d): each sample's own location text
        return clip_loss(v, t, self.scale(), locations)

    def train(self, mode: bool = True):
        self._category_cache = None  # weights may change from here on
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self._category_cache = None
        super()._load_from_state_dict(*args, **kwargs)

    def _apply(self, fn, *args, **kwargs):  # .to(), .cuda(), .half(): the cache would be stale
        self._category_cache = None
        return super()._apply(fn, *args, **kwargs)

    def category_embeddings(self) -> torch.Tensor:
        """(K, d) text embeddings of every category's canonical name; cached while in eval mode."""
        if self._category_cache is not None and not self.training:
            return self._category_cache
        with torch.no_grad():
            emb = self.encode_tokens(self.term_tokens[self.term_start])
        if not self.training:
            self._category_cache = emb
        return emb

    @torch.no_grad()
    def probabilities(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) -> (B, K) softmax over all categories of cos-sim / tau (call ``eval()`` first)."""
        logits = self.scale() * self.encode_image(image) @ self.category_embeddings().T  # (B, K)
        return logits.float().softmax(dim=-1)

    @torch.no_grad()
    def localize(self, image: torch.Tensor, k: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, D, H, W) -> top-k class ids (B, k) long (index into ``taxonomy.locations()``; ``location_ids``
        turns them into string ids) and their confidences (B, k), descending."""
        conf, ids = self.probabilities(image).topk(k, dim=-1)
        return ids, conf


def location_ids(class_ids: torch.Tensor) -> list[list[str]]:
    """(B, k) class indices -> the taxonomy's string ids, row by row."""
    locs = taxonomy.locations()
    return [[locs[i].id for i in row] for row in class_ids.tolist()]


# --------------------------------------------------------------------------------------------------- input
def localizer_patch(ct_hu: torch.Tensor, pet_suv: torch.Tensor, lesion_mask: torch.Tensor,
                    cfg: LocalizerConfig, suv_max: float) -> torch.Tensor:
    """One large-FOV patch's model input: (D, H, W) CT in HU, PET in SUV, lesion mask -> (3, D, H, W) in [0, 1].

    CT through the wide window ``cfg.ct_window_hu``, PET over [0, suv_max] (``Settings.pet_suv_max``), both
    clipped (MONAI ``ScaleIntensityRange``); the mask as 0/1.
    """
    lo, hi = cfg.ct_window_hu
    ct = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)(ct_hu)
    pet = NormalizePET(suv_max)(pet_suv)
    channels = [convert_to_tensor(c, dtype=torch.float32, track_meta=False) for c in (ct, pet, lesion_mask)]
    channels[2] = (channels[2] > 0).float()
    return torch.stack(channels)  # (3, D, H, W), a plain tensor


# --------------------------------------------------------------------------------------------------- build / io
def build_localizer(cfg: LocalizerConfig | None = None, text_vocab: list[str] | None = None) -> CLIPLocalizer:
    return CLIPLocalizer(cfg or LocalizerConfig(), text_vocab)


def save_localizer(model: CLIPLocalizer, path: str | Path, extra: dict | None = None) -> Path:
    """Self-describing checkpoint (config, taxonomy version and ids, text vocabulary, weights), written atomically
    (temporary file in the same folder, then rename). ``extra``: anything else JSON-like (epoch, metrics)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "kind": CHECKPOINT_KIND,
        "format": CHECKPOINT_FORMAT,
        "config": asdict(model.cfg),
        "taxonomy_version": TAXONOMY_VERSION,
        "taxonomy_ids": [loc.id for loc in taxonomy.locations()],
        "text_vocab": model.text_vocab,
        "state_dict": model.state_dict(),
        "extra": extra or {},
    }
    with atomic_open(path) as f:
        torch.save(payload, f)
    return path


def load_localizer(path: str | Path, map_location: str | torch.device = "cpu") -> CLIPLocalizer:
    """A localizer from ``save_localizer``'s file, in eval mode; refuses another taxonomy or a foreign file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"localizer checkpoint {path} does not exist")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: not a readable torch checkpoint ({e})") from e
    kind = payload.get("kind") if isinstance(payload, dict) else type(payload).__name__
    if kind != CHECKPOINT_KIND:
        raise ValueError(f"{path}: not a CLIP localizer checkpoint (found {kind!r})")
    if payload["format"] != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {payload['format']}, this code reads {CHECKPOINT_FORMAT}")
    ids = [loc.id for loc in taxonomy.locations()]
    if payload["taxonomy_version"] != TAXONOMY_VERSION or payload["taxonomy_ids"] != ids:
        raise ValueError(f"{path}: trained on taxonomy {payload['taxonomy_version']}, this code has "
                         f"{TAXONOMY_VERSION} (categories differ); retrain the localizer")
    model = CLIPLocalizer(LocalizerConfig(**payload["config"]), payload["text_vocab"] or None)
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location).eval()

