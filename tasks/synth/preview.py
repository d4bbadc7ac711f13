"""A preview figure of one delivered study: does it look like whole-body PET/CT?

``render_preview(raw_root, study_key, out_png)`` reads the study back from the raw drop folder exactly as
ingestion does (``tasks.ingest.readers``: CT in HU, PET converted to SUVbw from its DICOM tags or NIfTI
sidecar, the lesion mask) and draws three panels side by side, patient's right on the viewer's left:

* a coronal CT slice in the soft-tissue window (level 40, width 350): lungs black, bone white -- the slice
  within 4 cm of the body's centre that cuts the most lesion;
* the same slice in the lung window (level -600, width 1500): lung texture, ground-glass visible;
* a coronal PET maximum-intensity projection in inverted grey (SUV 0..8) with the lesion mask's outlines.

No patient name or ID is drawn: the title carries the study key, vendor and tracer only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import SimpleITK as sitk

from data_contracts import tables
from data_contracts.settings import RawLayout
from data_contracts.taxonomy import WINDOWS, WindowGroup

SUV_DISPLAY_MAX = 8.0


def _manifest_row(raw_root: Path, study_key: str | None) -> tables.ManifestRow:
    """The manifest row of ``study_key``; the delivery's first study when None."""
    df = tables.MANIFEST.read(RawLayout(raw_root).manifest)
    rows = [r for r in tables.MANIFEST.records(df, str(RawLayout(raw_root).manifest))
            if study_key is None or r.study_key == study_key]
    if not rows:
        raise KeyError(f"study {study_key!r} is not in {RawLayout(raw_root).manifest}")
    return rows[0]  # type: ignore[return-value]


def _window(a: np.ndarray, group: WindowGroup) -> np.ndarray:
    w = WINDOWS[group]
    return np.clip((a - w.low) / (w.high - w.low), 0.0, 1.0)


def _coronal_row(hu: np.ndarray, les: np.ndarray, sy: float) -> int:
    """The coronal row to show: near the body's centre (+-40 mm), through as much lesion as possible."""
    ny = hu.shape[1]
    body = (hu > -400).sum(axis=(0, 2))
    centre = int(np.round(np.average(np.arange(ny), weights=body))) if body.any() else ny // 2
    reach = int(round(40.0 / sy))
    rows = np.arange(max(centre - reach, 0), min(centre + reach + 1, ny))
    hits = les[:, rows, :].sum(axis=(0, 2))
    if hits.max() > 0:
        return int(rows[np.argmax(hits)])
    return min(centre + int(round(15.0 / sy)), ny - 1)  # a little posterior of the centre: spine, kidneys


def render_preview(raw_root: Path, study_key: str | None, out_png: Path) -> Path:
    """Write the preview PNG of ``study_key`` (None: the first study) delivered in ``raw_root``; returns ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from tasks.ingest.readers import read_ct, read_mask, read_pet

    raw_root = Path(raw_root)
    row = _manifest_row(raw_root, study_key)
    ct = read_ct(raw_root / row.ct_path, row.ct_path).image
    pet, _ = read_pet(raw_root / row.pet_path, row.pet_path)
    mask = read_mask(raw_root / row.lesions_path, row.lesions_path, "missing_mask", sitk.sitkUInt8).image
    # PET onto the CT grid (linear), so all panels share one geometry.
    pet_on_ct = sitk.Resample(pet.image, ct, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)
    hu = sitk.GetArrayViewFromImage(ct)  # (z, y, x)
    suv = sitk.GetArrayViewFromImage(pet_on_ct)
    les = sitk.GetArrayViewFromImage(mask) > 0

    sx, sy, sz = ct.GetSpacing()
    ox, oy, oz = ct.GetOrigin()
    nz, ny, nx = hu.shape
    extent = (ox - sx / 2, ox + sx * (nx - 0.5), oz - sz / 2, oz + sz * (nz - 0.5))
    y = _coronal_row(hu, les, sy)
    cor = hu[:, y, :].astype(np.float32)
    mip = suv.max(axis=1)
    les_mip = les.any(axis=1)

    height = extent[3] - extent[2]
    width = extent[1] - extent[0]
    fig, axes = plt.subplots(1, 3, figsize=(3 * 3.3 * width / height * 2.2, 7.6), dpi=100)
    panels = [(_window(cor, WindowGroup.soft_tissue), "CT, soft-tissue window", "gray"),
              (_window(cor, WindowGroup.lung), "CT, lung window", "gray"),
              (np.clip(mip / SUV_DISPLAY_MAX, 0, 1), f"PET MIP, SUV 0-{SUV_DISPLAY_MAX:g}", "gray_r")]
    for ax, (img, title, cmap) in zip(axes, panels):
        ax.imshow(img, cmap=cmap, origin="lower", extent=extent, vmin=0, vmax=1, interpolation="bilinear")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
    if les_mip.any():
        axes[2].contour(les_mip.astype(float), levels=[0.5], colors="red", linewidths=0.7, origin="lower",
                        extent=extent)
    if les[:, y, :].any():
        for ax in axes[:2]:
            ax.contour(les[:, y, :].astype(float), levels=[0.5], colors="red", linewidths=0.6, origin="lower",
                       extent=extent)
    fig.suptitle(f"{study_key}: {row.vendor.value}, {row.tracer.value}; coronal, patient's right on the left; "
                 f"lesion mask outlined", fontsize=9)
    fig.tight_layout()
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)
    return out_png


def main(argv: list[str] | None = None) -> int:
    """``python -m tasks.synth.preview RAW_DIR STUDY_KEY OUT.png``"""
    import argparse

    p = argparse.ArgumentParser(description=main.__doc__)
    p.add_argument("raw", type=Path)
    p.add_argument("study_key")
    p.add_argument("out", type=Path)
    args = p.parse_args(argv)
    print(render_preview(args.raw, args.study_key, args.out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
