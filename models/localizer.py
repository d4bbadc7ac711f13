"""CLIP lesion localizer (paper section 2.1): large-FOV PET/CT patch <-> anatomical location names.

Stage 1 of the pipeline. A 3D CNN embeds the large-FOV patch (channels: CT in a wide window, PET, lesion mask; all
in [0, 1]; e.g. 3 x 64^3 voxels at 4 mm); a small word-level Transformer embeds the location's name (or one of its
synonyms from ``data_contracts.taxonomy``); both are projected to a shared d and compared by cosine similarity over
a learned temperature (Eq. 1). Training uses the symmetric contrastive loss of Eq. 2-4; inference scores a patch
against the text embeddings of ALL taxonomy categories and returns the top-5 locations with softmax confidences,
which drive CGLP (``models.cglp``) and DWS (``models.dws``) in stage 2.

Scan position (our addition, ``position_width`` > 0; off by default = the paper's encoder). A 38 cm patch at 12 mm
voxels shows a vertebra but not which one, a rib but not always which side; radiologists count from the scan's
ends. The lesion centroid's place in the scanned box, (x, y, z) in [0, 1] (``Geometry.scan_position``: physical
LPS, so axis flips of DICOM vs NIfTI storage do not matter), goes through a small MLP and is concatenated with the
pooled image feature before the projection. Levels lie ~0.015 apart in z (measured over 200 synthetic patients: T8
at 0.733 +- 0.003 of the scan's height, T6 at 0.760), so the MLP sees Fourier features of the position.

Position prior (``position_prior``; off by default). The network above still memorises training vertebrae by their
image; ``models.position_prior`` adds a per-location Gaussian of the scan position, fitted in closed form after
training, fused with the logits at inference (weights fitted on the val split). See that module.

All-category term (``category_loss_weight`` > 0; off by default). In-batch negatives are ~16 random locations, so
neighbours that must be told apart at inference (T7 / T8, right / left 7th rib) rarely meet in a batch and get
almost no gradient; with 134 categories and a few hundred lesions that was measured to cap top-1 near 2/3. The
extra term is Eq. 3 with its denominator over all K category names (what ``probabilities`` computes at inference):
-log softmax_k(sim(v_i, t_k) / tau)[y_i], added with this weight to the symmetric in-batch loss.

Same-location samples in one batch. In-batch CLIP treats every off-diagonal pair as a negative, but two lesions of
the same location are each other's positives. We MASK those pairs: for row i the softmax denominator runs over
{i} and the columns j whose location differs from i's, in both directions (image->text and text->image).
Each positive pair thus keeps its own term with only true negatives competing, and when all locations in the batch
differ the mask is empty and the loss is exactly Eq. 2-4. (Soft targets spread over same-location columns were the
alternative; they leave positives in the denominator and give a loss floor of log k, so masking was chosen.)

Text: the tokenizer, vocabulary, training phrases and text encoders are in ``models.localizer_text``.

Shapes: B batch, C=3 channels, (D, H, W) patch voxels, d shared embedding, T phrases, L tokens, K=134 categories.
"""

from __future__ import annotations

import math
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
from data_contracts.taxonomy import TAXONOMY_VERSION
from models.dws import NormalizePET
from models.localizer_text import (
    PretrainedTextEncoder,
    TextEncoder,
    build_text_vocab,
    training_terms,
)
from models.position_prior import PositionPrior, prior_groups

CHECKPOINT_KIND = "petcap.clip_localizer"
CHECKPOINT_FORMAT = 1


# --------------------------------------------------------------------------------------------------- config
@dataclass
class LocalizerConfig:
    patch_size: tuple[int, int, int] = (64, 64, 64)  # (D, H, W) voxels of the large-FOV patch (4 mm: 256 mm)
    in_channels: int = 3  # CT (wide window), PET (SUV range), lesion mask
    ct_window_hu: tuple[float, float] = (-1000.0, 1500.0)  # wide window of the localizer's CT channel -> [0, 1]
    # PET SUV range of the PET channel -> [0, 1]; training sets it from ``Settings.pet_suv_max``, so the checkpoint
    # carries it and serving never reads it from the environment (files from before it: 15, the old default)
    pet_suv_max: float = 15.0
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
    # scan position: the lesion centroid's place in the scanned box, (x, y, z) in [0, 1] (``Geometry.scan_position``)
    # through a small MLP, concatenated with the pooled image feature before the projection. 0: image only (the
    # paper's encoder). Global context a 38 cm patch lacks: which rib / vertebral level, which side.
    position_width: int = 0
    position_frequencies: int = 8  # Fourier features sin/cos(2^k pi p), k < this: vertebral levels lie ~0.015 apart
    # weight of an extra image->text term over ALL categories' canonical names (the inference task; see the module
    # docstring); 0: the paper's in-batch loss only
    category_loss_weight: float = 0.0
    # detail stream: the small-FOV (captioner) patch, same channels, area-resized to this size, through a second
    # small CNN whose pooled feature joins the large-FOV one; None: large FOV only (the paper). It shows what
    # tissue the lesion sits in (rib cortex or lung, node or bone) where the large FOV's 12 mm voxels cannot.
    detail_size: tuple[int, int, int] | None = None
    detail_channels: tuple[int, ...] = (8, 16, 32, 64)  # four stages (MONAI ResNet)
    # position prior (``models.position_prior``): a Gaussian of the scan position per location, fitted on the
    # training lesions after training, fused with the logits (weights fitted on the val split); False: the paper
    position_prior: bool = False
    prior_shrinkage: float = 3.0  # pseudo-lesions pulling a location's variance towards its group's

    @property
    def uses_position(self) -> bool:
        """Whether the model takes each lesion's scan position (as an input and / or through the prior)."""
        return bool(self.position_width) or self.position_prior

    def __post_init__(self):
        self.patch_size = tuple(int(s) for s in self.patch_size)
        self.ct_window_hu = tuple(float(v) for v in self.ct_window_hu)
        self.encoder_channels = tuple(int(c) for c in self.encoder_channels)
        self.encoder_layers = tuple(int(n) for n in self.encoder_layers)
        self.detail_channels = tuple(int(c) for c in self.detail_channels)
        if self.detail_size is not None:
            self.detail_size = tuple(int(s) for s in self.detail_size)
            if len(self.detail_size) != 3 or min(self.detail_size) < 8:
                raise ValueError(f"detail_size must be three sizes >= 8 (or None), got {self.detail_size}")
        if len(self.patch_size) != 3 or min(self.patch_size) < 8:
            raise ValueError(f"patch_size must be three sizes >= 8, got {self.patch_size}")
        if len(self.encoder_channels) != len(self.encoder_layers):
            raise ValueError("encoder_channels and encoder_layers need one entry per stage")
        if self.text_width % self.text_heads:
            raise ValueError(f"text_width {self.text_width} not divisible by text_heads {self.text_heads}")
        if not (0 < self.init_temperature and 1 / self.init_temperature <= self.max_logit_scale):
            raise ValueError("need 0 < init_temperature and 1/init_temperature <= max_logit_scale")
        if self.position_width < 0:
            raise ValueError(f"position_width must be >= 0, got {self.position_width}")
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


class DetailEncoder(nn.Module):
    """(B, C, d, h, w) small-FOV patch in [0, 1] -> (B, width): MONAI 3D ResNet, 3^3 stem at stride 2 without
    max-pool (the patch is small already), stages at strides 1, 2, 2, 2, global average pooled."""

    def __init__(self, cfg: LocalizerConfig):
        super().__init__()
        self.net = ResNet(
            "basic", [1] * len(cfg.detail_channels), list(cfg.detail_channels), spatial_dims=3,
            n_input_channels=cfg.in_channels, conv1_t_size=3, conv1_t_stride=2, no_max_pool=True,
            feed_forward=False,
        )
        self.width = cfg.detail_channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, width)


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
            self.text_encoder = TextEncoder(self.text_vocab, cfg.text_width, cfg.text_layers, cfg.text_heads,
                                            cfg.text_max_tokens, cfg.dropout)
        pw = cfg.position_width
        n_pos = 3 * (1 + 2 * cfg.position_frequencies)  # p, then sin and cos per frequency and axis
        self.position_mlp = (nn.Sequential(nn.Linear(n_pos, pw), nn.GELU(), nn.Linear(pw, pw)) if pw else None)
        self.register_buffer("position_freqs", math.pi * 2.0 ** torch.arange(cfg.position_frequencies).float(),
                             persistent=False)  # (F,)
        self.detail_encoder = DetailEncoder(cfg) if cfg.detail_size is not None else None
        dw = self.detail_encoder.width if self.detail_encoder is not None else 0
        self.image_proj = nn.Linear(self.image_encoder.width + pw + dw, cfg.embed_dim, bias=False)
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
        self.position_prior = PositionPrior(prior_groups(), cfg.prior_shrinkage) if cfg.position_prior else None

    @property
    def num_categories(self) -> int:
        return len(self.term_count)

    def scale(self) -> torch.Tensor:
        """1/tau, clamped like CLIP (at most max_logit_scale)."""
        return self.logit_scale.clamp(max=math.log(self.cfg.max_logit_scale)).exp()

    def encode_image(self, image: torch.Tensor, position: torch.Tensor | None = None,
                     detail: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, D, H, W) [+ scan position (B, 3) in [0, 1]] [+ detail patch (B, C, *detail_size)] -> (B, d),
        unit length."""
        expected = (self.cfg.in_channels, *self.cfg.patch_size)
        if image.dim() != 5 or tuple(image.shape[1:]) != expected:
            raise ValueError(f"localizer expects (B, {', '.join(map(str, expected))}) patches, "
                             f"got {tuple(image.shape)}")
        feats = self.image_encoder(image)  # (B, width)
        if self.position_mlp is not None:
            _check_position(position, len(image), "uses the scan position")
            feats = torch.cat([feats, self.position_mlp(self.fourier(position.to(feats.dtype)))], dim=-1)  # (B, w+pw)
        if self.detail_encoder is not None:
            want = (len(image), self.cfg.in_channels, *self.cfg.detail_size)
            if detail is None or tuple(detail.shape) != want:
                got = None if detail is None else tuple(detail.shape)
                raise ValueError(f"this localizer has a detail stream: pass detail {want}, got {got}")
            feats = torch.cat([feats, self.detail_encoder(detail)], dim=-1)  # (B, width + pw + dw)
        return F.normalize(self.image_proj(feats), dim=-1)

    def fourier(self, position: torch.Tensor) -> torch.Tensor:
        """(B, 3) in [0, 1] -> (B, 3 (1 + 2F)): the position and its sin / cos at F octave frequencies (NeRF-style),
        so a small MLP can resolve differences of a few hundredths (one vertebral level) as well as sides."""
        angles = position[:, :, None] * self.position_freqs  # (B, 3, F)
        return torch.cat([position, angles.sin().flatten(1), angles.cos().flatten(1)], dim=-1)

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

    def forward(self, image: torch.Tensor, locations: torch.Tensor, position: torch.Tensor | None = None,
                detail: torch.Tensor | None = None) -> torch.Tensor:
        """Loss of a batch: image (B, C, D, H, W), locations (B,) class ids [, position (B, 3), detail] -> scalar
        (Eq. 2-4, masked). Training draws each sample's text (name or synonym); eval uses canonical names
        (deterministic val loss).
        """
        v = self.encode_image(image, position, detail)  # (B, d)
        terms = self.sample_terms(locations) if self.training else self.term_start[locations]
        t = self.encode_tokens(self.term_tokens[terms])  # (B, d): each sample's own location text
        loss = clip_loss(v, t, self.scale(), locations)
        if self.cfg.category_loss_weight:
            bank = self.encode_tokens(self.term_tokens[self.term_start])  # (K, d) every canonical name, with grad
            logits = self.scale() * v @ bank.T  # (B, K)
            loss = loss + self.cfg.category_loss_weight * F.cross_entropy(logits, locations)
        return loss

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
    def probabilities(self, image: torch.Tensor, position: torch.Tensor | None = None,
                      detail: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, D, H, W) [, (B, 3), detail] -> (B, K) softmax over all categories of cos-sim / tau, fused with
        the position prior once it is fitted (``eval()`` first)."""
        return self.logits(image, position, detail).float().softmax(dim=-1)

    @torch.no_grad()
    def logits(self, image: torch.Tensor, position: torch.Tensor | None = None, detail: torch.Tensor | None = None,
               fuse: bool = True) -> torch.Tensor:
        """(B, C, D, H, W) [, (B, 3), detail] -> (B, K) cos-sim / tau over all categories; with ``fuse`` and a
        fitted position prior, a * that + b * log p(position | category)."""
        logits = self.scale() * self.encode_image(image, position, detail) @ self.category_embeddings().T  # (B, K)
        if fuse and self.position_prior is not None and bool(self.position_prior.fitted):
            _check_position(position, len(image), "has a position prior")
            logits = self.position_prior.fuse(logits, position)
        return logits

    @torch.no_grad()
    def localize(self, image: torch.Tensor, k: int = 5, position: torch.Tensor | None = None,
                 detail: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, C, D, H, W) [, scan position (B, 3)] [, detail patch] -> top-k class ids (B, k) long (index into
        ``taxonomy.locations()``; ``location_ids`` turns them into string ids) and their confidences (B, k),
        descending."""
        conf, ids = self.probabilities(image, position, detail).topk(k, dim=-1)
        return ids, conf


def _check_position(position: torch.Tensor | None, n: int, why: str) -> None:
    if position is None or tuple(position.shape) != (n, 3):
        got = None if position is None else tuple(position.shape)
        raise ValueError(f"this localizer {why}: pass position ({n}, 3), got {got}")


def location_ids(class_ids: torch.Tensor) -> list[list[str]]:
    """(B, k) class indices -> the taxonomy's string ids, row by row."""
    locs = taxonomy.locations()
    return [[locs[i].id for i in row] for row in class_ids.tolist()]


# --------------------------------------------------------------------------------------------------- input
def normalise_patches(raw: torch.Tensor, cfg: LocalizerConfig, size: tuple[int, int, int]) -> torch.Tensor:
    """THE localizer input normalisation (training, caching, serving): (n, 3, z, y, x) CT HU / PET SUV / mask ->
    (n, 3, *size) float16 in [0, 1]. CT through the wide window ``cfg.ct_window_hu``, PET over [0,
    ``cfg.pet_suv_max``] (MONAI ``ScaleIntensityRange``, clipped), the mask as 0/1 at 0.5 (a resampled mask is a
    fraction), then area-resized to ``size`` and rounded to float16 (how training keeps its inputs)."""
    lo, hi = cfg.ct_window_hu
    raw = convert_to_tensor(raw, dtype=torch.float32, track_meta=False)
    ct = ScaleIntensityRange(a_min=lo, a_max=hi, b_min=0.0, b_max=1.0, clip=True)(raw[:, 0])
    pet = NormalizePET(cfg.pet_suv_max)(raw[:, 1])
    x = torch.stack([convert_to_tensor(ct, dtype=torch.float32, track_meta=False),
                     convert_to_tensor(pet, dtype=torch.float32, track_meta=False),
                     (raw[:, 2] > 0.5).float()], dim=1)
    return resize_patches(x, size).half()


def resize_patches(x: torch.Tensor, size: tuple[int, int, int]) -> torch.Tensor:
    """(N, C, D, H, W) -> (N, C, *size): area average when shrinking (keeps small masks as fractions)."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    if all(s <= t for s, t in zip(size, x.shape[2:])):
        return F.interpolate(x, size=size, mode="area")
    return F.interpolate(x, size=size, mode="trilinear", align_corners=False)


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
    # files from before the scan position / detail stream / category term: without them
    config = {"position_width": 0, "detail_size": None, "category_loss_weight": 0.0, **payload["config"]}
    model = CLIPLocalizer(LocalizerConfig(**config), payload["text_vocab"] or None)
    model.load_state_dict(payload["state_dict"])
    return model.to(map_location).eval()

