"""Schemas of the tables the stages write, validated where stages meet.

A table is a DataFrame whose rows are records of one model; nested records are flattened to
``parent__child`` columns and tuples stored as lists. ``TableSchema.validate`` checks columns, key
uniqueness and every row against the model, and names the table, its source and the first bad row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, get_args

import pandas as pd
from pydantic import BaseModel, Field, TypeAdapter, ValidationError, field_validator

from data_contracts.atomic import atomic_open
from data_contracts.errors import PetcapError
from data_contracts.findings import Tracer, Vendor
from data_contracts.records import (
    CaptionSample,
    Lesion,
    LesionTruth,
    Record,
    StructuredFinding,
    Study,
)

SEP = "__"


class TableError(PetcapError, ValueError):
    """A table failed its schema: the message names the table, where it came from and what is wrong."""


class ManifestRow(Record):
    """One study of a raw delivery. Paths are relative to the drop folder; IDs here are the hospital's."""

    study_key: str = Field(min_length=1)
    patient_id: str = Field(min_length=1)
    vendor: Vendor
    tracer: Tracer
    ct_path: str
    pet_path: str
    lesions_path: str
    anatomy_path: str | None = None
    report_path: str | None = None


class StudyRow(Study):
    """An ingested study: the record plus where it is stored and the hash of the raw inputs."""

    content_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    store_path: str  # group path inside the volume store
    lesion_count: int = Field(ge=0)
    ingested_at: datetime


class QuarantineRow(Record):
    stage: str
    item: str  # pseudonymous study id where known, else the raw folder name's hash
    source: str  # the file or folder that failed, relative to the drop folder
    reason: str  # short code: corrupt_dicom, patient_mismatch, missing_pet, empty_mask, nan_in_pet, ...
    detail: str
    at: datetime


class ReportFindingTruth(Record):
    """Synthetic ground truth of one finding a generated report states: what a perfect extractor returns."""

    study_key: str
    style: str  # the house style the report was written in
    finding_index: int = Field(ge=0)
    finding: StructuredFinding  # span = where the report states it
    instances: tuple[int, ...] = ()  # truth lesion instances it describes (join truth.in_mask: some lack a mask)


class FindingRow(Record):
    """One structured finding of one ingested study's report, with who extracted it."""

    study_id: str = Field(pattern=r"^S[0-9a-f]{12}$")
    finding_index: int = Field(ge=0)
    finding: StructuredFinding
    backend: str
    model: str | None = None
    prompt_version: str | None = None


class UnmatchedRow(Record):
    """A lesion mask without a finding, or a finding without a mask, after linking; with the reason."""

    study_id: str = Field(pattern=r"^S[0-9a-f]{12}$")
    kind: str = Field(pattern=r"^(lesion|finding)$")
    ref: int = Field(ge=0)  # lesion instance or finding index
    reason: str
    detail: str = ""


def _leaf(location_id: str) -> str:
    from data_contracts import taxonomy

    taxonomy.get(location_id)  # KeyError names an unknown id
    return location_id


class CorrectionRow(Record):
    """A clinician's correction of a served lesion's location: who, when, on which model's answer.

    The next dataset refresh uses it as that lesion's training label (``tasks.corrections``), with this row as
    its provenance."""

    study_id: str = Field(pattern=r"^S[0-9a-f]{12}$")  # pseudonym: the same study ingested for training has it
    instance: int = Field(ge=1)
    location_id: str  # the corrected location (a taxonomy leaf: the localizer's class set)
    previous_location_id: str  # what the model said (its top-1)
    corrected_by: str = Field(min_length=1)  # the clinician's user name (staff, not patient, identity)
    at: datetime
    model_version: str  # the registered model version whose answer was corrected
    sr_instance_uid: str = ""  # the corrected SR, when one was written

    _loc = field_validator("location_id", "previous_location_id")(_leaf)


def _submodel(annotation: Any) -> type[BaseModel] | None:
    """The record type of a field that holds a nested record (``Model`` or ``Model | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
    return None


def _columns(model: type[BaseModel], prefix: str = "") -> list[str]:
    cols = []
    for name, field in model.model_fields.items():
        sub = _submodel(field.annotation)
        cols += _columns(sub, f"{prefix}{name}{SEP}") if sub else [f"{prefix}{name}"]
    return cols


def flatten(model: type[BaseModel], data: dict[str, Any] | None, prefix: str = "") -> dict[str, Any]:
    """A record's JSON dump as one flat row: nested records become ``parent__child`` columns."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _submodel(field.annotation)
        value = None if data is None else data.get(name)
        if sub:
            out.update(flatten(sub, value, key + SEP))
        else:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def unflatten(model: type[BaseModel], row: dict[str, Any], prefix: str = "") -> dict[str, Any] | None:
    """Inverse of ``flatten``; a nested record whose columns are all missing becomes None."""
    out: dict[str, Any] = {}
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = _submodel(field.annotation)
        if sub:
            out[name] = unflatten(sub, row, key + SEP)
        else:
            v = row.get(key)
            if hasattr(v, "tolist"):
                v = v.tolist()
            out[name] = None if _is_missing(v) else v
    if prefix and all(v is None for v in out.values()):
        return None
    return out


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v) or v is pd.NaT


@dataclass(frozen=True)
class TableSchema:
    name: str
    model: type[Record]
    key: tuple[str, ...]

    @property
    def columns(self) -> list[str]:
        return _columns(self.model)

    def frame(self, records: list[Record]) -> pd.DataFrame:
        rows = [flatten(self.model, r.model_dump(mode="json")) for r in records]
        df = pd.DataFrame(rows, columns=self.columns)
        return self.validate(df, source="in memory")

    def records(self, df: pd.DataFrame, source: str = "in memory") -> list[Record]:
        self.validate(df, source)
        return [self.model.model_validate(unflatten(self.model, r)) for r in df.to_dict("records")]

    def validate(self, df: pd.DataFrame, source: str = "in memory") -> pd.DataFrame:
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise TableError(f"table {self.name!r} from {source}: missing columns {missing}")
        if len(df) and self.key:
            dup = df.duplicated(list(self.key), keep=False)
            if dup.any():
                first = df.loc[dup, list(self.key)].iloc[0].to_dict()
                raise TableError(f"table {self.name!r} from {source}: duplicate key {first}")
        rows = [unflatten(self.model, r) for r in df[self.columns].to_dict("records")]
        try:
            TypeAdapter(list[self.model]).validate_python(rows)
        except ValidationError as e:
            err = e.errors()[0]
            loc = err["loc"]
            raise TableError(
                f"table {self.name!r} from {source}: row {loc[0]}, field {'.'.join(map(str, loc[1:]))}: {err['msg']}"
            ) from None
        return df

    def read(self, path: Path) -> pd.DataFrame:
        if not Path(path).exists():
            return pd.DataFrame(columns=self.columns)
        # CSV cells are read as text: type inference would turn an ID such as "00123" into the number 123
        # (and fail the str field); the row model converts the other fields.
        df = pd.read_csv(path, dtype=str) if str(path).endswith(".csv") else pd.read_parquet(path)
        return self.validate(df, source=str(path))

    def write(self, df: pd.DataFrame, path: Path) -> None:
        """Validate, then write atomically (temporary file + rename in the same folder)."""
        self.validate(df, source=f"write to {path}")
        path = Path(path)
        with atomic_open(path) as f:
            if path.suffix == ".csv":
                df.to_csv(f, index=False)
            else:
                df.to_parquet(f, index=False)


MANIFEST = TableSchema("manifest", ManifestRow, key=("study_key",))
STUDIES = TableSchema("studies", StudyRow, key=("study_id",))
LESIONS = TableSchema("lesions", Lesion, key=("study_id", "instance"))
QUARANTINE = TableSchema("quarantine", QuarantineRow, key=())
TRUTH = TableSchema("truth", LesionTruth, key=("study_key", "instance"))
REPORT_TRUTH = TableSchema("report_truth", ReportFindingTruth, key=("study_key", "finding_index"))
CAPTION_SAMPLES = TableSchema("caption_samples", CaptionSample, key=("sample_id",))
FINDINGS = TableSchema("findings", FindingRow, key=("study_id", "finding_index"))
CORRECTIONS = TableSchema("corrections", CorrectionRow, key=("study_id", "instance", "at"))
UNMATCHED = TableSchema("link_unmatched", UnmatchedRow, key=("study_id", "kind", "ref"))


class PatchSampleRow(CaptionSample):
    """A caption sample whose patches are in the patch store (stage 4): where they lie and what they came from.

    The table is append-only (one Parquet part per commit): a later row for the same ``sample_id`` (higher
    ``commit``) supersedes the earlier one; ``tasks.patches.store.read_patch_samples`` returns the current
    rows. ``split`` is not stored here (it is None on disk): the ``splits`` table owns it.
    """

    row: int = Field(ge=0)  # index along the first axis of the patch store's ``localizer`` and ``captioner``
    commit: int = Field(ge=1)  # sequence number of the part that registered this row
    centre_mm: tuple[float, float, float]  # LPS lesion centroid the patches are centred on (before snapping)
    volume_version: str  # "<content hash>:<ingest recipe>" of the study group the patches were cut from
    extracted_at: datetime
    removed: bool = False  # a tombstone: the sample left the caption-sample table (its patches stay)


class SplitRow(Record):
    """A patient's split, assigned once and never changed (stage 5)."""

    patient_id: str = Field(pattern=r"^P[0-9a-f]{12}$")
    vendor: Vendor  # the stratum the patient was assigned in (the vendor of most of its studies then)
    split: str = Field(pattern=r"^(train|val|test)$")
    order_key: str = Field(pattern=r"^[0-9a-f]{16}$")  # keyed hash that ordered patients added together
    assigned_at: datetime


PATCH_SAMPLES = TableSchema("patch_samples", PatchSampleRow, key=("sample_id", "commit"))
SPLITS = TableSchema("splits", SplitRow, key=("patient_id",))


class DeliveryRow(Record):
    """One study in the cumulative delivery log (``tables/deliveries``): which drop folder delivered it.

    Deliveries accumulate: a new drop folder adds its studies and every earlier study stays. A study leaves
    the dataset only when it is withdrawn here (``withdrawn_at`` and ``withdrawn_reason`` set), and then
    its samples get tombstones with that reason. Pseudonymous: the hospital's study key is never stored.
    """

    study_id: str = Field(pattern=r"^S[0-9a-f]{12}$")
    drop: str  # absolute path or URL of the drop folder that delivered it (the latest one, if delivered again)
    manifest_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")  # that drop's manifest when the study was registered
    registered_at: datetime
    withdrawn_at: datetime | None = None
    withdrawn_reason: str | None = None


class TombstoneRow(Record):
    """A row that left a table on purpose: which table, which key, why and when (never silently)."""

    table: str
    key: str  # the row's key in that table (sample id)
    study_id: str = Field(pattern=r"^S[0-9a-f]{12}$")
    reason: str  # short code: withdrawn, absent_from_delivery, relinked (with --allow-removals)
    detail: str = ""
    at: datetime


DELIVERIES = TableSchema("deliveries", DeliveryRow, key=("study_id",))
TOMBSTONES = TableSchema("tombstones", TombstoneRow, key=())
