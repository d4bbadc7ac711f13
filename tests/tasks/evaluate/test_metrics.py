"""The metric wrapper gives exactly pycocoevalcap's numbers; SPICE without its jars is unavailable, not 0."""

import numpy as np
import pytest
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

from tasks.evaluate.metrics import (
    CAPTION_METRICS,
    MetricError,
    _meteor_process,
    corpus_bleu4,
    shared_scorer,
    spice_jars_found,
)

REFS = [
    "T7 vertebral body, osteolytic destruction with increased FDG uptake",
    "right 7th rib, osteoblastic change with mildly increased PSMA uptake",
    "left upper lobe, solid nodule with intensely increased FDG uptake",
    "liver segment VII, hypodense lesion with increased FDG uptake",
    "right axillary lymph node, enlarged lymph node with increased FDG uptake",
    "prostate, soft-tissue mass with intensely increased PSMA uptake",
]
HYPS = [
    "T7 vertebral body, osteolytic destruction with increased FDG uptake",
    "left 7th rib, osteoblastic change with increased PSMA uptake",
    "left lower lobe, ground-glass opacity with mildly increased FDG uptake",
    "liver segment VIII, hypodense lesion with increased FDG uptake",
    "right axillary lymph node, mildly increased FDG uptake without CT correlate",
    "urinary bladder, soft-tissue thickening with increased PSMA uptake",
]


@pytest.fixture(scope="module")
def direct():
    """pycocoevalcap called the documented way: tokenize gts and res, then each scorer."""
    tok = PTBTokenizer()
    gts = tok.tokenize({i: [{"caption": r}] for i, r in enumerate(REFS)})
    res = tok.tokenize({i: [{"caption": h}] for i, h in enumerate(HYPS)})
    out = {}
    b, b_each = Bleu(4).compute_score(gts, res, verbose=0)
    for n in range(4):
        out[f"bleu{n + 1}"] = (b[n], b_each[n])
    meteor = _meteor_process()  # pycocoevalcap's Meteor object itself (one java start-up per test session)
    assert isinstance(meteor, Meteor)
    out["meteor"] = meteor.compute_score(gts, res)
    out["rouge_l"] = Rouge().compute_score(gts, res)
    out["cider"] = Cider().compute_score(gts, res)
    sub = [1, 2, 4]  # a subset re-scored directly (the wrapper's METEOR reuses cached statistics)
    out["meteor_sub"] = meteor.compute_score({i: gts[i] for i in sub}, {i: res[i] for i in sub})
    out["cider_sub"] = Cider().compute_score({i: gts[i] for i in sub}, {i: res[i] for i in sub})
    return out


def test_wrapper_equals_direct_pycocoevalcap(direct):
    scores = shared_scorer().score(REFS, HYPS)
    for m in ("bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "cider"):
        corpus, each = direct[m]
        assert scores.corpus[m] == pytest.approx(float(corpus), abs=1e-12), m
        np.testing.assert_allclose(scores.per_sample[m].to_numpy(), np.asarray(each, float), atol=1e-12)
    assert list(scores.per_sample.columns) == list(CAPTION_METRICS)
    # sanity on values: the identical first pair scores 1 on BLEU-4; the wrong organ scores low
    assert scores.per_sample["bleu4"].iloc[0] == pytest.approx(1.0)
    assert scores.per_sample["bleu4"].iloc[5] < 0.5


def test_the_one_bleu4_is_the_reports_corpus_bleu4(direct):
    """Training validation, promotion and the report all score BLEU-4 this way."""
    assert corpus_bleu4(REFS, HYPS) == pytest.approx(float(direct["bleu4"][0]), abs=1e-12)
    assert corpus_bleu4(REFS, HYPS) == shared_scorer().score(REFS, HYPS).corpus["bleu4"]
    assert corpus_bleu4(REFS[:1], REFS[:1]) == pytest.approx(1.0, abs=1e-6)
    with pytest.raises(MetricError):
        corpus_bleu4(REFS, HYPS[:2])


def test_subset_scores_equal_direct_after_cache(direct):
    """Scoring a subset after the full set (cached METEOR statistics) still equals a direct call."""
    scorer = shared_scorer()
    scorer.score(REFS, HYPS)
    sub = [1, 2, 4]
    s = scorer.score([REFS[i] for i in sub], [HYPS[i] for i in sub], keys=[str(i) for i in sub])
    assert s.corpus["meteor"] == pytest.approx(direct["meteor_sub"][0], abs=1e-12)
    np.testing.assert_allclose(s.per_sample["meteor"], direct["meteor_sub"][1], atol=1e-12)
    assert s.corpus["cider"] == pytest.approx(direct["cider_sub"][0], abs=1e-12)


def test_spice_unavailable_without_jars_is_none_not_zero(tmp_path):
    scores = shared_scorer(tmp_path).score(REFS[:2], HYPS[:2])
    assert scores.corpus["spice"] is None and not scores.spice_available
    assert scores.per_sample["spice"].isna().all()
    assert any("SPICE unavailable" in n for n in scores.notes)
    assert not spice_jars_found(None) and not spice_jars_found(tmp_path)
    for name in ("stanford-corenlp-3.6.0.jar", "stanford-corenlp-3.6.0-models.jar"):
        (tmp_path / name).write_bytes(b"PK")
    assert spice_jars_found(tmp_path)


def test_bad_input_is_refused():
    with pytest.raises(MetricError, match="2 references but 1"):
        shared_scorer().score(REFS[:2], HYPS[:1])
    with pytest.raises(MetricError, match="not unique"):
        shared_scorer().score(REFS[:2], HYPS[:2], keys=["a", "a"])
