"""The annotated real-prose excerpt format (``tests/data/real_reports/excerpts.jsonl``) and its validation.

One JSON object per line: an excerpt of published PET/CT report prose, where it was published, and the hand
annotation of every lesion it states and every negative statement. The fields and the annotation rules are
described in ``tests/data/real_reports/README.md``. ``load_excerpts`` reads and validates a file; a held-out
set in the same format is read the same way.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from data_contracts import taxonomy
from data_contracts.errors import UsageError
from data_contracts.findings import CTFinding

DEFAULT_EXCERPTS = Path(__file__).resolve().parents[1] / "tests" / "data" / "real_reports" / "excerpts.jsonl"

OTHER = "other"
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")

# Coarse nodes and new leaves of the location hierarchy (issue 13 item 1), with the ids agreed with engineer
# "prose" before the hierarchy module landed. The taxonomy's 134 leaves are valid too (``known_ids``).
AGREED_IDS = frozenset({
    # coarse nodes
    "ln_mediastinal", "ln_cervical_r", "ln_cervical_l", "ln_cervical", "ln_hilar", "ln_supraclavicular",
    "ln_axillary", "ln_retroperitoneal", "ln_iliac", "ln_iliac_r", "ln_iliac_l", "ln_pelvic", "ln_abdominal",
    "ln_thoracic", "ln_supradiaphragmatic", "ln_infradiaphragmatic", "lymph_nodes", "lung_r", "lung_l", "lung",
    "pleura", "liver", "rib_r", "rib_l", "rib", "spine_cervical", "spine_thoracic", "spine_lumbar", "spine",
    "pelvis_bone", "pelvis_bone_r", "pelvis_bone_l", "bone_marrow", "skeleton", "kidney", "adrenal", "breast",
    # new leaves
    "prostate_bed", "tonsil_palatine_r", "tonsil_palatine_l", "tongue_base", "oropharynx", "oral_cavity",
    "hypopharynx", "larynx", "parotid_r", "parotid_l", "submandibular_gland_r", "submandibular_gland_l",
    "fossa_rosenmuller_r", "fossa_rosenmuller_l", "adnexa_r", "adnexa_l", "ovary_r", "ovary_l", "uterus",
    "cervix_uteri", "rectum", "ln_mesorectal", "ln_obturator_r", "ln_obturator_l", "ln_internal_mammary_r",
    "ln_internal_mammary_l", "ln_infraclavicular_r", "ln_infraclavicular_l", "ln_retrocrural",
    "soft_tissue_subcutaneous", "muscle", "bronchus_r", "bronchus_l", "peritoneum", "brain", "small_bowel",
    "gallbladder", "seminal_vesicle", "testis_r", "testis_l",
})

# taxonomy.Region's values, plus abdomen_pelvis for words that do not tell which of the two
Region = Literal["head_neck", "chest", "abdomen", "pelvis", "abdomen_pelvis", "extremity", "whole_body"]


def known_ids() -> frozenset[str]:
    """Every location id an annotation may use: the taxonomy's (and hierarchy's, once present) plus the agreed."""
    ids = {loc.id for loc in taxonomy.locations()} | AGREED_IDS
    try:  # the location hierarchy (issue 13 item 1, engineer "prose"): its nodes count as known once merged
        from data_contracts import hierarchy  # type: ignore[attr-defined]
        ids |= set(hierarchy.parents())
    except (ImportError, AttributeError):
        pass
    return frozenset(ids)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _well_formed(v: str | None) -> str | None:
    if v is not None and not ID_PATTERN.match(v):
        raise ValueError(f"location id {v!r} is not snake_case")
    return v


class GoldLesion(_Frozen):
    location: str
    region: Region | None = None  # only for "other"
    site_words: str | None = None  # only for "other": the report's own words
    also_accept: tuple[str, ...] = ()
    side: Literal["right", "left", "bilateral"] | None = None
    ct_finding: CTFinding | None = None
    pet_finding: str | None = None
    suv_max: float | None = Field(default=None, gt=0)
    size_mm: float | None = Field(default=None, gt=0)
    count: Literal["single", "multiple"] = "single"
    certainty: Literal["definite", "uncertain"] = "definite"
    span: str = Field(min_length=1)

    _loc = field_validator("location")(_well_formed)

    @field_validator("also_accept")
    @classmethod
    def _also(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for i in v:
            _well_formed(i)
        return v

    @model_validator(mode="after")
    def _other_has_region(self):
        if (self.location == OTHER) != (self.region is not None and bool(self.site_words)):
            raise ValueError("an 'other' lesion needs region and site_words, and only it may have them")
        return self


class GoldNegative(_Frozen):
    location: str | None  # None: a whole-body statement ("no distant metastases")
    region: Region | None = None
    negated: str = Field(min_length=1)
    span: str = Field(min_length=1)

    _loc = field_validator("location")(_well_formed)


class Excerpt(_Frozen):
    id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    source_url: str = Field(pattern=r"^https?://")
    source_title: str = Field(min_length=1)
    style: str | None = None
    tracer: Literal["FDG", "PSMA", "other"] | None = None
    text: str = Field(min_length=1)
    lesions: tuple[GoldLesion, ...] = ()
    negatives: tuple[GoldNegative, ...] = ()

    @model_validator(mode="after")
    def _spans_in_text(self):
        for what, items in (("lesion", self.lesions), ("negative", self.negatives)):
            for i, item in enumerate(items):
                if item.span not in self.text:
                    raise ValueError(f"{what} {i} span {item.span[:60]!r} is not a verbatim part of the text")
        return self


def problems(excerpt: Excerpt, ids: frozenset[str] | None = None) -> list[str]:
    """What is wrong with one record beyond its field types: unknown location ids."""
    ids = known_ids() if ids is None else ids
    out = []
    for i, les in enumerate(excerpt.lesions):
        if les.location != OTHER and les.location not in ids:
            out.append(f"{excerpt.id}: lesion {i} location {les.location!r} is neither a known id nor 'other'")
    for i, neg in enumerate(excerpt.negatives):
        if neg.location not in (None, OTHER) and neg.location not in ids:
            out.append(f"{excerpt.id}: negative {i} location {neg.location!r} is neither a known id nor 'other'")
    return out


def load_excerpts(path: Path = DEFAULT_EXCERPTS, strict: bool = True) -> list[Excerpt]:
    """Every record of a JSON Lines file, validated; a bad line raises ``UsageError`` naming file and line."""
    path = Path(path)
    if not path.is_file():
        raise UsageError("no excerpt file here", path=str(path), reason="missing",
                         hint="pass --excerpts FILE (JSON Lines, see tests/data/real_reports/README.md)")
    out, seen = [], set()
    ids = known_ids()
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = Excerpt.model_validate(json.loads(line))
        except (json.JSONDecodeError, ValidationError) as e:
            first = str(e).splitlines()
            raise UsageError(f"line {n}: not a valid excerpt record: {' '.join(first[:3])}", path=str(path),
                             reason="invalid_record", hint="see tests/data/real_reports/README.md") from None
        if rec.id in seen:
            raise UsageError(f"line {n}: duplicate id {rec.id}", path=str(path), reason="duplicate_id")
        seen.add(rec.id)
        if strict and (bad := problems(rec, ids)):
            raise UsageError(f"line {n}: {bad[0]}", path=str(path), reason="unknown_location",
                             hint="use a hierarchy id or 'other' with region and site_words")
        out.append(rec)
    return out
