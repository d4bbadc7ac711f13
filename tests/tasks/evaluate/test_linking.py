"""Pair precision and recall of linking against synthetic ground truth (evaluation, not the link step)."""

from __future__ import annotations

import math

import pytest

from data_contracts.errors import PrerequisiteError
from data_contracts.findings import Tracer, Vendor
from data_contracts.records import CaptionSample, Lesion, LesionTruth
from data_contracts.settings import Settings
from tasks.evaluate.linking import evaluate_links, pair_scores

SID = "S00000000000a"


def lesion(instance, x):
    return Lesion(study_id=SID, instance=instance, bbox=(0, 0, 0, 2, 2, 2), centroid_mm=(x, 0, 0), volume_ml=1.0,
                  voxels=10, suv_max=5.0, suv_mean=2.0)


def truth(instance, x, location, ct, reported=True, in_mask=True):
    return LesionTruth.model_construct(study_key="K", instance=instance, center_mm=(x, 0, 0), size_mm=12.0,
                                       location_id=location, ct_finding=ct, reported=reported, in_mask=in_mask)


def sample(instance, location, ct):
    return CaptionSample.model_construct(sample_id=f"{SID}-{instance:03d}", patient_id="P00000000000b",
                                         study_id=SID, instance=instance, vendor=Vendor.ge, tracer=Tracer.fdg,
                                         location_id=location, ct_finding=ct, caption="c")


def test_pair_scores_count_correct_pairs_against_the_nearest_truth_lesion():
    lesions = [lesion(1, 0.0), lesion(2, 100.0), lesion(3, 200.0)]
    truths = {SID: [truth(1, 1.0, "rib_7_r", "osteolytic"), truth(2, 99.0, "lung_rul", "nodule"),
                    truth(3, 260.0, "liver_s7", "mass"),  # 60 mm away: not this mask
                    truth(4, 500.0, "adrenal_l", "mass", in_mask=False)]}  # no mask: not linkable
    samples = [sample(1, "rib_7_r", "osteolytic"), sample(2, "lung_rul", "mass"), sample(3, "liver_s7", "mass")]
    scores = pair_scores(samples, lesions, truths)
    assert (scores.samples, scores.linkable, scores.correct) == (3, 3, 1)
    assert scores.precision == pytest.approx(1 / 3) and scores.recall == pytest.approx(1 / 3)
    assert math.isnan(pair_scores([], lesions, {}).precision)


def test_link_eval_needs_samples(tmp_path):
    with pytest.raises(PrerequisiteError, match="caption-sample"):
        evaluate_links(Settings(home=tmp_path))
