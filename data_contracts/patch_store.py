"""The patch store's sample table and readers, shared by training and evaluation; extraction
(``tasks.patches``) writes both.

Sample table at ``settings.table_path("patch_samples")``: a folder of parts ``part-000001.parquet``, ... each
written once, atomically, never rewritten; the row with the highest ``commit`` is a sample's current state
(``current``). Patch store at ``settings.patch_store_url``: ``localizer`` and ``captioner`` arrays
(samples, 3, z, y, x) of CT (HU), PET (SUVbw) and the lesion's mask; ``read_patches`` refuses a store whose
fields of view are not the settings' (sizes and spacings).
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import zarr

from data_contracts.errors import PrerequisiteError
from data_contracts.settings import Settings
from data_contracts.tables import PATCH_SAMPLES, SPLITS, TableError

PART = "part-{:06d}.parquet"


class PatchStoreError(PrerequisiteError):
    """The patch store and its settings or sample table disagree; the message says which and what to do."""


class SampleTable:
    """The append-only sample table: a folder of Parquet parts, one per commit."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def parts(self) -> list[Path]:
        return sorted(self.path.glob("part-*.parquet")) if self.path.is_dir() else []

    def read_all(self) -> pd.DataFrame:
        """Every row ever committed (validated), in commit order."""
        parts = self.parts()
        if not parts:
            return pd.DataFrame(columns=PATCH_SAMPLES.columns)
        df = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
        PATCH_SAMPLES.validate(df, source=str(self.path))
        return df.sort_values(["commit", "row"], kind="stable", ignore_index=True)

    def next_commit(self) -> int:
        parts = self.parts()
        return int(parts[-1].name.removeprefix("part-").removesuffix(".parquet")) + 1 if parts else 1

    def append(self, df: pd.DataFrame) -> Path:
        """Write one new part (validated; atomic); its rows must all carry the part's commit number."""
        commit = self.next_commit()
        if len(df) == 0 or set(df["commit"]) != {commit}:
            raise TableError(f"table 'patch_samples' at {self.path}: a part needs rows of commit {commit}")
        path = self.path / PART.format(commit)
        PATCH_SAMPLES.write(df.reset_index(drop=True), path)
        return path

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One writer at a time (an exclusive lock file beside the parts)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a") as f:  # "a": opening leaves the file (and its mtime) as it is
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise PatchStoreError(f"another extraction is writing {self.path}") from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)


def current(history: pd.DataFrame, keep_removed: bool = False) -> pd.DataFrame:
    """The current row of every sample: its highest commit; tombstones dropped unless ``keep_removed``."""
    if len(history) == 0:
        return history
    latest = history.sort_values("commit", kind="stable").drop_duplicates("sample_id", keep="last")
    if not keep_removed:
        latest = latest[~latest["removed"].astype(bool)]
    return latest.sort_values("row", kind="stable", ignore_index=True)



def read_patch_samples(settings: Settings, with_split: bool = True) -> pd.DataFrame:
    """The current patch samples (one row per sample with patches; ``row`` indexes the patch store).

    ``split`` is filled from the ``splits`` table (patients not yet assigned get None); each patient has
    exactly one split there, so no patient's samples span two splits.
    """
    table = current(SampleTable(settings.table_path("patch_samples")).read_all())
    if with_split and len(table):
        df = SPLITS.read(settings.table_path("splits"))
        splits = dict(zip(df["patient_id"], df["split"]))
        table = table.assign(split=table["patient_id"].map(splits).astype(object))
        table["split"] = table["split"].where(table["split"].notna(), None)
    return table


def read_patches(settings: Settings, rows: np.ndarray | list[int], kind: str = "captioner") -> np.ndarray:
    """The patches of the given store rows, (n, 3, z, y, x) in the storage dtype (one chunk per row)."""
    group = open_patch_store(settings)
    return group[kind].oindex[np.asarray(rows, dtype=np.int64)]


def open_patch_store(settings: Settings) -> zarr.Group:
    """The patch store, read-only; refuses one whose fields of view differ from ``settings.patches``."""
    url, cfg = settings.patch_store_url, settings.patches
    try:
        group = zarr.open_group(url.removeprefix("file://"), mode="r")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        raise PatchStoreError(f"no patch store at {url}: run extract-patches first") from None
    want = {"localizer": (tuple(cfg.localizer_size), tuple(cfg.localizer_spacing_mm)),
            "captioner": (tuple(cfg.captioner_size), tuple(cfg.captioner_spacing_mm))}
    for name, (size, spacing) in want.items():
        attrs = dict(group[name].attrs)
        found = (tuple(attrs.get("size", ())), tuple(float(x) for x in attrs.get("spacing_mm", ())))
        if found != (size, tuple(float(x) for x in spacing)):
            raise PatchStoreError(f"the patch store {url} holds {name} patches {found[0]} at {found[1]} mm, the "
                                  f"settings ask for {size} at {spacing} mm: point PETCAP_PATCHES__STORE_URL at "
                                  "the matching store or re-extract")
    return group
