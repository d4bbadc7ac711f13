"""What the reading physician knows beyond the lesions: the patient's disease, history and the imaged range.

``ReportContext`` carries the disease scenario and, for a follow-up, the baseline's sites and the response;
``infer_disease`` guesses the disease from the lesions when the generator did not say; ``imaged_range``
reads the (top, bottom) the images cover off the segmenter map, as the realism check reads it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from data_contracts.findings import Tracer
from tasks.synth.raw import RawStudy


@dataclass(frozen=True)
class ReportContext:
    """What the reading physician knows beyond the images: the patient's disease and history.

    ``disease``: the generator's scenario (``tasks.synth.lesions.SCENARIOS``: "lymphoma", "lung_cancer", ...);
    "" infers it from the reported lesions. ``prior_sites``: for a follow-up, the sites with disease at the
    baseline (None: a baseline study, no comparison). ``response``: the follow-up's response ("progression",
    "partial", "stable", "complete"; "" unknown).
    """

    disease: str = ""
    prior_sites: frozenset[str] | None = None
    response: str = ""


def infer_disease(study: RawStudy) -> str:
    """The scenario the study's lesions fit best, when the generator did not say."""
    if study.tracer is Tracer.psma:
        return "prostate_cancer" if study.sex == "M" else ""  # PSMA in women: renal / hepatocellular cancer
    locs = [t.location_id for t in study.truth]
    for disease, prefix in (("breast_cancer", "breast_"), ("nasopharyngeal", "nasopharynx"),
                            ("lung_cancer", "lung_")):
        if any(x.startswith(prefix) for x in locs):
            return disease
    if locs and sum(x.startswith("liver_") for x in locs) * 2 >= len(locs):
        return "liver_cancer"
    return "lymphoma"


def imaged_range(study: RawStudy) -> tuple[str, str] | None:
    """(top, bottom) the images cover, read off the segmenter map as the realism check reads it (z extents of
    skull, C1 and femurs only: one pass over the map, so a clinical-size study costs well under a second)."""
    from data_contracts import segmentation
    from tasks.landmarks import Extent, Landmarks
    from tasks.realism.position import scan_bottom, scan_top

    step = max(1, int(round(4.0 / min(study.anatomy.spacing[:2]))))  # these bones span >= 1 cm in-plane
    anat = np.asarray(study.anatomy.array)[:, step // 2::step, step // 2::step]
    if anat.size == 0:
        return None
    names = ("skull", "vertebrae_C1", "femur_left", "femur_right")
    keep = [segmentation.label_of()[n] for n in names]
    direction = np.asarray(study.anatomy.direction, dtype=float).reshape(3, 3)
    z_of = lambda k: float(study.anatomy.origin[2] + direction[2, 2] * study.anatomy.spacing[2] * k)  # noqa: E731
    lut = np.zeros(max(int(anat.max()), *keep) + 1, bool)
    lut[keep] = True
    slices = np.flatnonzero(lut[anat].reshape(anat.shape[0], -1).any(axis=1))
    marks = Landmarks(scan_z=tuple(sorted((z_of(0), z_of(anat.shape[0] - 1)))))
    for name, label in zip(names, keep):
        ks = [int(k) for k in slices if (anat[k] == label).any()]
        if ks:
            zs = sorted((z_of(ks[0]), z_of(ks[-1])))
            marks.classes[name] = Extent(len(ks), np.array([0.0, 0.0, zs[0]]), np.array([0.0, 0.0, zs[1]]),
                                         np.array([0.0, 0.0, (zs[0] + zs[1]) / 2]))
    return scan_top(marks), scan_bottom(marks)
