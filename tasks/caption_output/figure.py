"""The visual report of one captioned study (``report.png``): per lesion CT, PET and PET-on-CT with the mask outline,
axial slice through the captioner patch's centre, and the caption with the top-5 locations beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data_contracts.atomic import SHARED, atomic_open
from tasks.caption_output.records import NO_LESIONS, StudyCaptions

REPORT_NAME = "report.png"


def write_report(result: StudyCaptions, patches: dict[int, dict[str, np.ndarray]], out_dir: Path,
                 ct_window: tuple[float, float] = (-160.0, 240.0), suv_max: float = 15.0) -> Path:
    """The visual report: one row per lesion — CT, PET and PET-on-CT with the mask outline, axial slice
    through the captioner patch's centre — and the caption with the top-5 locations beside it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = max(1, len(result.lesions))
    fig, axes = plt.subplots(rows, 4, figsize=(14, 3.2 * rows), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1, 1, 1.6]})
    for r, lesion in enumerate(result.lesions):
        patch = np.asarray(patches[lesion.instance]["captioner"], dtype=np.float32)  # (3, z, y, x)
        z = patch.shape[1] // 2
        ct, pet, mask = patch[0, z], patch[1, z], patch[2, z]
        ax = axes[r]
        ax[0].imshow(ct, cmap="gray", vmin=ct_window[0], vmax=ct_window[1])
        ax[0].set_title(f"lesion {lesion.instance}: CT")
        ax[1].imshow(pet, cmap="gray_r", vmin=0, vmax=suv_max)
        ax[1].set_title(f"PET (SUVmax {lesion.suv_max:.1f})")
        ax[2].imshow(ct, cmap="gray", vmin=ct_window[0], vmax=ct_window[1])
        ax[2].imshow(np.ma.masked_less(pet, 0.5), cmap="hot", vmin=0, vmax=suv_max, alpha=0.6)
        if mask.any():
            ax[2].contour(mask, levels=[0.5], colors="cyan", linewidths=0.8)
        ax[2].set_title("fused + mask")
        for a in ax[:3]:
            a.axis("off")
        top = "\n".join(f"  {i + 1}. {t['location']} ({t['confidence']:.2f})" for i, t in enumerate(lesion.top5))
        ax[3].axis("off")
        ax[3].text(0, 1, f"{lesion.caption}\n\nwindow: {lesion.window}\ntop-5:\n{top}", va="top", ha="left",
                   fontsize=9, wrap=True, transform=ax[3].transAxes)
    if not result.lesions:
        for a in axes[0]:
            a.axis("off")
        axes[0][0].text(0, 0.5, NO_LESIONS, ha="left", fontsize=12)
    fig.suptitle(f"study {result.study_id} ({result.vendor}, {result.tracer}): {len(result.lesions)} lesion(s)")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / (3.2 * rows)))
    path = Path(out_dir) / REPORT_NAME
    try:
        with atomic_open(path, SHARED) as f:
            fig.savefig(f, dpi=80, format="png")
    finally:
        plt.close(fig)
    return path
