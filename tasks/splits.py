"""Stage 5 (``petcap split``): patient-level train / val / test splits, stratified per vendor, stable forever.

The ``splits`` table (``settings.table_path("splits")``, one row per patient) is the only place a split is
written; every consumer joins it on ``patient_id`` (``read_splits``, ``with_splits``; the patch sample
reader does). A patient therefore has exactly one split, whatever number of studies, lesions or tracers.

How a patient is assigned. Assignments are persisted and never revisited: ``update_splits`` assigns only
patients that are not in the table yet (every patient of the ``studies`` table). New patients are grouped by
their vendor (the vendor of most of their studies) and, within a vendor, taken in the order of a keyed hash
of their pseudonym (``order_key``: HMAC-SHA256 with ``settings.splits.seed``, so the order is pseudo-random
but reproducible). Each goes to the split furthest below its quota: ``ratio * n - count`` for the vendor's
patient count ``n`` after adding it (largest-deficit apportionment): a vendor's counts stay within two
patients of ``ratio * n`` however patients arrive (one at a time or all at once; all at once, 1,867 patients
give exactly the paper's 1,647 / 100 / 120). Small vendors: once a vendor has
``min_patients_for_eval`` (3) patients it has at least one val and one test patient. Because existing
patients never move, this must already be arranged as patients arrive: a new patient goes to a missing
evaluation split when the vendor reaches ``min - 1`` patients with both val and test empty, or ``min``
patients with one of them empty (the requirement grows by at most one per added patient, and one new
patient can always meet it) — so it holds after every refresh, including one patient at a time.

Determinism: the same table and the same new patients give the same assignment; the whole cohort at once
gives the apportionment above over the hash order. (A lost table is the one thing that would reassign:
keep it with the other tables.) Writes are atomic; before writing, every existing patient's split and
vendor are asserted unchanged and every patient must appear once (``SplitError`` / ``TableError``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timezone

import pandas as pd

from data_contracts.errors import PetcapError, PrerequisiteError
from data_contracts.findings import Vendor
from data_contracts.settings import Settings, SplitSettings
from data_contracts.tables import CAPTION_SAMPLES, LESIONS, SPLITS, STUDIES, SplitRow

SPLIT_NAMES = ("train", "val", "test")
EVAL_SPLITS = ("val", "test")


class SplitError(PetcapError):
    """A write would move a patient to another split (or another stratum), or put one patient in two."""


def order_key(patient_id: str, seed: str) -> str:
    """A keyed hash of the pseudonym: the order in which patients added together are assigned."""
    return hmac.new(seed.encode(), patient_id.encode(), hashlib.sha256).hexdigest()[:16]


def _choose(counts: Counter, n: int, cfg: SplitSettings) -> str:
    """The split of a vendor's ``n``-th patient given the counts of the ``n - 1`` before it."""
    ratio = dict(zip(SPLIT_NAMES, cfg.ratios))
    deficit = {s: ratio[s] * n - counts[s] for s in SPLIT_NAMES}
    missing = [s for s in EVAL_SPLITS if counts[s] == 0 and ratio[s] > 0]
    m = cfg.min_patients_for_eval
    if missing and (n >= m or (n >= m - 1 and len(missing) == len([s for s in EVAL_SPLITS if ratio[s] > 0]))):
        return max(missing, key=lambda s: (deficit[s], -SPLIT_NAMES.index(s)))
    return max(SPLIT_NAMES, key=lambda s: (deficit[s], -SPLIT_NAMES.index(s)))


def assign_splits(existing: list[SplitRow], new: dict[str, Vendor], cfg: SplitSettings,
                  now: datetime | None = None) -> list[SplitRow]:
    """``existing`` unchanged plus one row for every patient of ``new`` (pseudonym -> vendor) not in it."""
    now = now or datetime.now(timezone.utc)
    known = {r.patient_id for r in existing}
    counts: dict[Vendor, Counter] = {}
    for r in existing:
        counts.setdefault(r.vendor, Counter())[r.split] += 1
    out = list(existing)
    fresh = sorted((p for p in new if p not in known), key=lambda p: (new[p].value, order_key(p, cfg.seed), p))
    for p in fresh:
        c = counts.setdefault(new[p], Counter())
        split = _choose(c, sum(c.values()) + 1, cfg)
        c[split] += 1
        out.append(SplitRow(patient_id=p, vendor=new[p], split=split, order_key=order_key(p, cfg.seed),
                            assigned_at=now))
    return out


def patient_vendors(studies: pd.DataFrame) -> dict[str, Vendor]:
    """Each patient's stratum: the vendor of most of its studies (ties: the first vendor name)."""
    out = {}
    for patient, vendors in studies.groupby("patient_id")["acquisition__vendor"]:
        counts = Counter(vendors)
        out[patient] = Vendor(min(counts, key=lambda v: (-counts[v], v)))
    return out


def write_splits(path, rows: list[SplitRow], previous: list[SplitRow]) -> None:
    """Write the table atomically after asserting that no existing patient moved and none appears twice."""
    after = {}
    for r in rows:
        if r.patient_id in after:
            raise SplitError(f"patient {r.patient_id} would be in two splits ({after[r.patient_id].split}, {r.split})")
        after[r.patient_id] = r
    for old in previous:
        new = after.get(old.patient_id)
        if new is None or (new.split, new.vendor) != (old.split, old.vendor):
            found = "dropped" if new is None else f"{new.split} / {new.vendor.value}"
            raise SplitError(f"patient {old.patient_id} is assigned {old.split} / {old.vendor.value}; "
                             f"a write would make it {found}: assignments never change")
    SPLITS.write(SPLITS.frame(sorted(rows, key=lambda r: r.patient_id)), path)


def read_splits(settings: Settings) -> dict[str, str]:
    """Patient pseudonym -> split (empty when nothing was assigned yet)."""
    df = SPLITS.read(settings.table_path("splits"))
    return dict(zip(df["patient_id"], df["split"]))


def with_splits(df: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """``df`` (any table with ``patient_id``) with its ``split`` column taken from the splits table."""
    splits = read_splits(settings)
    out = df.assign(split=df["patient_id"].map(splits))
    out["split"] = out["split"].astype(object).where(out["split"].notna(), None)
    return out


@dataclass
class SplitSummary:
    patients: int
    new_patients: int
    written: bool  # False: nothing new, the table was left untouched
    lesion_source: str  # the table the lesion counts come from
    table: pd.DataFrame  # per vendor, tracer and split: patients, studies, lesions

    def __str__(self) -> str:
        wide = self.table.pivot_table(index=["vendor", "tracer"], columns="split",
                                      values=["patients", "studies", "lesions"], aggfunc="sum", fill_value=0)
        wide = wide.reindex(columns=pd.MultiIndex.from_product([["patients", "studies", "lesions"], SPLIT_NAMES]),
                            fill_value=0)
        per_vendor = self.table.groupby(["vendor", "split"])["patients"].sum().unstack(fill_value=0)
        return (f"split: {self.patients} patients ({self.new_patients} newly assigned"
                f"{'' if self.written else '; table unchanged'}); lesions from {self.lesion_source}\n"
                f"{wide.to_string()}\n\npatients per vendor (a patient may have studies of both tracers):\n"
                f"{per_vendor.reindex(columns=list(SPLIT_NAMES), fill_value=0).to_string()}")


def summarize(studies: pd.DataFrame, splits: dict[str, str], lesions_per_study: pd.Series,
              source: str) -> pd.DataFrame:
    """Patients, studies and lesions per (vendor, tracer, split)."""
    df = studies.assign(split=studies["patient_id"].map(splits),
                        lesions=studies["study_id"].map(lesions_per_study).fillna(0).astype(int))
    df = df.rename(columns={"acquisition__vendor": "vendor", "acquisition__tracer": "tracer"})
    out = df.groupby(["vendor", "tracer", "split"]).agg(
        patients=("patient_id", "nunique"), studies=("study_id", "nunique"), lesions=("lesions", "sum"))
    return out.reset_index()


def update_splits(settings: Settings) -> SplitSummary:
    """Assign every not-yet-assigned patient of the ``studies`` table; write the table; summarise.

    Lesions are counted from the caption-sample table (the samples the models see) when it exists, else
    from the ``lesions`` table.
    """
    studies_path = settings.table_path("studies")
    if not studies_path.exists():
        raise PrerequisiteError("no studies table", path=str(studies_path), reason="nothing_ingested",
                                hint="run `petcap ingest` or `petcap refresh` first")
    studies = STUDIES.read(studies_path)[["patient_id", "study_id", "acquisition__vendor", "acquisition__tracer"]]
    path = settings.table_path("splits")
    previous = SPLITS.records(SPLITS.read(path), source=str(path))
    vendors = patient_vendors(studies)
    new = {p: v for p, v in vendors.items() if p not in {r.patient_id for r in previous}}
    rows = assign_splits(previous, new, settings.splits)
    if new:
        write_splits(path, rows, previous)
    splits = {r.patient_id: r.split for r in rows}

    samples_path = settings.table_path("caption_samples")
    if samples_path.exists():
        samples = CAPTION_SAMPLES.read(samples_path)
        _check_disjoint(samples.assign(split=samples["patient_id"].map(splits)), str(samples_path))
        per_study, source = samples.groupby("study_id").size(), "caption_samples"
    else:
        lesions = LESIONS.read(settings.table_path("lesions"))
        per_study, source = lesions.groupby("study_id").size(), "lesions"
    return SplitSummary(patients=len(rows), new_patients=len(new), written=bool(new), lesion_source=source,
                        table=summarize(studies, splits, per_study, source))


def require_splits(settings: Settings, needed: tuple[str, ...] = ("train", "val")) -> dict[str, int]:
    """Caption samples per split; ``PrerequisiteError`` naming the empty split when one of ``needed`` has none.

    The up-front check of training (train + val) and evaluation (the split evaluated): a cohort too small to
    give a vendor a val and a test patient (``splits.min_patients_for_eval``, 3 per vendor) fails here with
    what to do, not deep inside training.
    """
    splits_path, samples_path = settings.table_path("splits"), settings.table_path("caption_samples")
    if not splits_path.exists() or not samples_path.exists():
        raise PrerequisiteError("no caption samples with splits in this home", path=str(splits_path),
                                reason="not_refreshed", hint="check --home (PETCAP_HOME), then run `petcap refresh`")
    splits = read_splits(settings)
    samples = CAPTION_SAMPLES.read(samples_path)
    per_split = samples["patient_id"].map(splits).value_counts().to_dict()
    counts = {name: int(per_split.get(name, 0)) for name in SPLIT_NAMES}
    empty = [name for name in needed if counts[name] == 0]
    if empty:
        patients = pd.Series(list(splits.values())).value_counts().to_dict()
        have = ", ".join(f"{patients.get(n, 0)} {n}" for n in SPLIT_NAMES)
        raise PrerequisiteError(
            f"the {' and '.join(empty)} split{'s have' if len(empty) > 1 else ' has'} no caption samples "
            f"(patients: {have}; samples: {', '.join(f'{counts[n]} {n}' for n in SPLIT_NAMES)})",
            path=str(samples_path), reason="empty_split",
            hint=f"a vendor needs at least {settings.splits.min_patients_for_eval} patients for val and test "
                 f"(splits.min_patients_for_eval): deliver more patients and run `petcap refresh`")
    return counts


def _check_disjoint(df: pd.DataFrame, source: str) -> None:
    """No patient's rows in two splits (guaranteed by one split per patient; asserted where it is used)."""
    spread = df.dropna(subset=["split"]).groupby("patient_id")["split"].nunique()
    if (spread > 1).any():
        raise SplitError(f"{source}: patient {spread[spread > 1].index[0]} has rows in several splits")
