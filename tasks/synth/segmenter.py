"""What the synthetic cohort's "organ segmenter" writes: the phantom's structures in the segmenter class set.

``segmenter_labels(labels)`` maps the phantom's internal labels (``tasks.synth.phantom``) to the classes of
``data_contracts.segmentation`` (TotalSegmentator-like): liver segments become one liver, ilium/pubis/ischium
one hip per side, vertebrae and ribs keep their level and side; lymph-node stations, pleura, breast, body fat
and the generic muscle get 0, as a real segmenter leaves them. Lesions are never painted in.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from data_contracts import anatomy, segmentation
from tasks.landmarks import canonical_class
from tasks.synth import phantom as ph


@cache
def _lut() -> np.ndarray:
    """uint8 LUT: internal phantom label -> segmenter class label (0 = none); uint8 is the type TotalSegmentator
    writes its label map in (its 117 classes fit), so every map built from it is uint8 as it is written."""
    top = max(segmentation.label_of().values())
    if top > np.iinfo(np.uint8).max:
        raise ValueError(f"segmenter class label {top} does not fit the uint8 label map")
    public = np.zeros(max(anatomy.label_of().values()) + 1, np.uint8)
    for name, label in anatomy.label_of().items():
        cls = canonical_class(name)
        public[label] = segmentation.label_of()[cls] if cls else 0
    return public[ph.anatomy_lut()]


def segmenter_labels(labels: np.ndarray) -> np.ndarray:
    """The segmenter's uint8 label map of a phantom label map (any shape)."""
    return _lut()[labels]
