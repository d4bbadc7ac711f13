"""The segmenter class set: label values, their sites, and the stored label map's type."""

import numpy as np

from data_contracts import segmentation
from data_contracts.volume_store import DTYPES


def test_every_class_label_fits_the_stored_label_map():
    """Labels are 1..n in class order; the largest fits the store's anatomy type (uint8), so ingest may narrow a
    checked map without wrapping a label."""
    labels = segmentation.label_of()
    assert sorted(labels.values()) == list(range(1, len(segmentation.CLASSES) + 1))
    assert len(segmentation.CLASSES) == 117  # TotalSegmentator v2 "total"
    assert max(labels.values()) <= np.iinfo(DTYPES["anatomy"]).max


def test_classes_hold_their_sites():
    assert segmentation.label_sites(segmentation.label_of()["vertebrae_T7"]) == ("vertebra_t7",)
    assert segmentation.label_sites(segmentation.label_of()["liver"])[0] == "liver_s1"
    assert segmentation.label_sites(segmentation.label_of()["aorta"]) == ()
    assert segmentation.label_sites(0) == ()
