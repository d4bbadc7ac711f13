"""The patch store (Zarr v3) and its sample table (append-only Parquet parts): layout, recipe, rows, commits.

Patch store at ``settings.patch_store_url``::

    attrs      format, recipe (fields of view, dtype, pads, channels, kernel version), recipe_hash
    localizer  (samples, 3, z, y, x)  storage dtype, one chunk per sample, fill NaN (a row never written)
    captioner  (samples, 3, z, y, x)  idem

Channels are CT (HU), PET (SUVbw) and this lesion's mask (0/1); each patch is an LPS-aligned grid (z, y, x)
at its field of view's spacing, centred on the lesion centroid snapped to that spacing's lattice (see
``tasks.patches.resample``). A sample's geometry is its table row's ``centre_mm`` and the array's
``spacing_mm`` attribute.

Sample table at ``settings.table_path("patch_samples")``: a folder of parts ``part-000001.parquet``, ... each
written once, atomically (temporary file + rename), never rewritten. A part holds the rows of one commit:
samples whose patch data were completely written before the commit. A sample may appear in several parts
(its caption changed, its study was re-ingested, it was removed); the row with the highest ``commit`` is
its current state (``current``). Rows of the patch store are never reused once any part names them, so an
old row always points at the data it was registered with; rows written by an interrupted run but never
registered are free and are reused, lowest first.
"""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import zarr

from data_contracts.patch_store import (  # noqa: F401 - shared layout and readers, re-exported
    PART,
    PatchStoreError,
    SampleTable,
    current,
    read_patch_samples,
    read_patches,
)
from data_contracts.settings import PatchSettings, Settings
from tasks.ingest.store import compressors
from tasks.patches.resample import CHANNELS, UNITS, FieldOfView
from tasks.patches.volume_io import open_group

FORMAT = 1  # layout version of the patch store
KERNEL_VERSION = "1"  # bump when the same settings would cut different patches


def fields_of_view(cfg: PatchSettings) -> tuple[FieldOfView, FieldOfView]:
    return (FieldOfView("localizer", tuple(cfg.localizer_size), tuple(cfg.localizer_spacing_mm)),
            FieldOfView("captioner", tuple(cfg.captioner_size), tuple(cfg.captioner_spacing_mm)))


def recipe(cfg: PatchSettings) -> dict:
    """Everything that decides a patch's values (not where it is stored, nor how it is computed)."""
    return {
        "kernel": KERNEL_VERSION,
        "fovs": [{"name": f.name, "size": list(f.size), "spacing_mm": list(f.spacing)} for f in fields_of_view(cfg)],
        "dtype": cfg.dtype,
        "channels": list(CHANNELS),
        "pads": {"ct": cfg.ct_pad_hu, "pet": 0.0, "mask": 0.0},
        "interpolation": "linear (SimpleITK convention); mask: indicator >= 0.5, never empty",
        "grid": "LPS-aligned, centred on the lesion centroid snapped to the lattice of the spacing",
    }


def recipe_hash(cfg: PatchSettings) -> str:
    return hashlib.sha256(json.dumps(recipe(cfg), sort_keys=True).encode()).hexdigest()[:16]


# ------------------------------------------------------------------------------------------ patch store
def open_store(settings: Settings, create: bool = False) -> zarr.Group | None:
    """The patch store, checked against the settings' recipe; created (empty) when ``create``.

    Returns None when it does not exist and ``create`` is False. Raises ``PatchStoreError`` when it was built
    with another recipe (other sizes, spacings, dtype, padding or kernel).
    """
    url, cfg = settings.patch_store_url, settings.patches
    try:
        group = open_group(url, mode="r+")
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        if not create:
            return None
        return _create(url, settings)
    found = dict(group.attrs).get("recipe_hash")
    if found is None:  # creation was interrupted (the recipe is written last): no row can point into it
        return _create(url, settings, mode="w") if create else None
    if found != recipe_hash(cfg):
        raise PatchStoreError(
            f"the patch store {url} was built with another patch recipe ({found}, now {recipe_hash(cfg)}): "
            f"its patches differ from what these settings cut. Point PETCAP_PATCHES__STORE_URL (and the "
            f"tables) elsewhere, or remove the store and the patch_samples table to rebuild.")
    return group


def _create(url: str, settings: Settings, mode: str = "a") -> zarr.Group:
    """An empty store; the recipe attributes go last, so a store without them is an unfinished creation."""
    cfg = settings.patches
    group = open_group(url, mode=mode)
    codecs = compressors(settings.ingest.model_copy(update={"compressor": cfg.compressor,
                                                            "compression_level": cfg.compression_level}))
    for fov in fields_of_view(cfg):
        shape = (len(CHANNELS), *fov.size)
        group.create_array(
            fov.name, shape=(0, *shape), chunks=(1, *shape), dtype=cfg.dtype, fill_value=float("nan"),
            compressors=codecs, dimension_names=("sample", "channel", "z", "y", "x"),
            attributes={"spacing_mm": list(fov.spacing), "size": list(fov.size), "channels": list(CHANNELS),
                        "units": [UNITS[c] for c in CHANNELS], "direction": [1, 0, 0, 0, 1, 0, 0, 0, 1],
                        "convention": "LPS; arrays (z, y, x); spacing (x, y, z) mm; row i = the sample table's "
                                      "row i; voxel (0,0,0) centre = snapped centre - (size-1)/2 * spacing"})
    group.attrs.update({"format": FORMAT, "recipe": recipe(cfg), "recipe_hash": recipe_hash(cfg)})
    return group


def ensure_rows(group: zarr.Group, rows: int) -> None:
    """Grow every patch array to at least ``rows`` samples (a metadata write; nothing is ever shrunk)."""
    for name in ("localizer", "captioner"):
        array = group[name]
        if array.shape[0] < rows:
            array.resize((rows, *array.shape[1:]))


def store_rows(group: zarr.Group | None) -> int:
    return 0 if group is None else int(group["localizer"].shape[0])


# ------------------------------------------------------------------------------------------ sample table
def free_rows(history: pd.DataFrame, count: int) -> list[int]:
    """The ``count`` lowest row indices no committed row names (rows of interrupted runs are reused)."""
    used = set(history["row"].astype(int).tolist()) if len(history) else set()
    out, i = [], 0
    while len(out) < count:
        if i not in used:
            out.append(i)
        i += 1
    return out


