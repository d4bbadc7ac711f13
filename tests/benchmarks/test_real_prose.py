"""The real-prose scorer's arithmetic on hand-made toy annotations, and the real excerpt file's validity."""

from __future__ import annotations

import json

import pytest

from benchmarks import real_prose as rp
from benchmarks.real_prose_format import (DEFAULT_EXCERPTS, OTHER, AGREED_IDS, Excerpt, GoldLesion, ID_PATTERN,
                                          known_ids, load_excerpts, problems)
from data_contracts.errors import UsageError

# a toy hierarchy for the ancestor check: child -> parent
_PARENT = {"ln_mediastinal_4r": "ln_mediastinal", "ln_mediastinal": "ln_thoracic", "ln_hilar_r": "ln_hilar",
           "ln_hilar": "ln_thoracic", "vertebra_l4": "spine_lumbar", "spine_lumbar": "spine",
           "rib_7_r": "rib_r", "rib_r": "rib", "lung_rul": "lung_r", "lung_r": "lung",
           "ln_external_iliac_r": "ln_iliac_r", "ln_iliac_r": "ln_iliac"}


def toy_is_within(node: str, ancestor: str) -> bool:
    while node is not None:
        if node == ancestor:
            return True
        node = _PARENT.get(node)
    return False


def gold(location, span="x", suv=None, also=(), region=None, words=None):
    return GoldLesion(location=location, span=span, suv_max=suv, also_accept=also, region=region,
                      site_words=words)


def pred(location, side=None, suv=None, region=None, start=None, end=None):
    return rp.Predicted(location, rp.side_of(location, side), suv, region, start, end)


@pytest.mark.parametrize("p, g, ok", [
    (pred("ln_mediastinal_4r"), gold("ln_mediastinal_4r"), True),      # equal
    (pred("ln_mediastinal"), gold("ln_mediastinal_4r"), False),        # drops the stated station
    (pred("ln_mediastinal_4r"), gold("ln_mediastinal"), False),        # invents a finer station
    (pred("ln_hilar"), gold("ln_hilar_r"), False),                     # drops the stated side
    (pred("ln_thoracic"), gold("ln_hilar"), True),                     # coarser, nothing stated dropped
    (pred("ln_iliac_r"), gold("ln_external_iliac_r"), True),           # coarser, side kept
    (pred("ln_iliac"), gold("ln_external_iliac_r"), False),            # side dropped
    (pred("spine_lumbar"), gold("vertebra_l4"), False),                # level dropped
    (pred("rib_r"), gold("rib_7_r"), False),                           # number dropped
    (pred("lung_rul"), gold("lung_r", also=("lung_rul",)), True),      # implied leaf accepted
    (pred(OTHER, region="chest"), gold(OTHER, region="chest", words="chest tube tract"), True),
    (pred(OTHER, region="pelvis"), gold(OTHER, region="chest", words="chest tube tract"), False),
    (pred("ln_iliac_r"), gold(OTHER, region="pelvis", words="pelvic side wall", also=("ln_iliac_r",)), True),
    (pred("ln_iliac_r"), gold(OTHER, region="pelvis", words="pelvic side wall"), False),
])
def test_location_rule(p, g, ok):
    assert rp.location_correct(p, g, toy_is_within) is ok


def test_without_hierarchy_ids_are_equal_or_not():
    assert rp.location_correct(pred("ln_hilar_r"), gold("ln_hilar_r"), rp._equal_only)
    assert not rp.location_correct(pred("ln_thoracic"), gold("ln_hilar"), rp._equal_only)


def test_scores_add_up_on_toy_texts():
    text1 = "Mediastinal nodes SUVmax 5.1. Right hilar node SUVmax 3.0. No FDG-avid axillary nodes."
    ex1 = Excerpt(id="t1", source_url="https://example.org/a", source_title="toy", tracer="FDG", text=text1,
                  lesions=(gold("ln_mediastinal", "Mediastinal nodes SUVmax 5.1", suv=5.1),
                           gold("ln_hilar_r", "Right hilar node SUVmax 3.0", suv=3.0)),
                  negatives=({"location": "ln_axillary", "negated": "FDG-avid nodes",
                              "span": "No FDG-avid axillary nodes"},))
    neg_at = text1.index("No FDG")
    preds1 = [pred("ln_mediastinal_4r", "right", 5.1),           # finer than stated: wrong, SUV in text
              pred("ln_hilar_r", "right", 3.04),                 # right, SUV within 0.05
              pred("ln_axillary_l", "left", None, start=neg_at, end=neg_at + 10)]  # read inside the negative
    ex2 = Excerpt(id="t2", source_url="https://example.org/b", source_title="toy", text="L4 lesion SUV 9.",
                  lesions=(gold("vertebra_l4", "L4 lesion SUV 9", suv=9.0),))
    preds2 = [pred("vertebra_l4", None, 8.0)]                    # right place, SUV off by 1
    s = rp.Scores()
    rp.score_one(ex1, preds1, s, toy_is_within)
    rp.score_one(ex2, preds2, s, toy_is_within)
    assert (s.lesions, s.predicted, s.matched) == (3, 4, 2)
    assert s.precision == pytest.approx(0.5) and s.recall == pytest.approx(2 / 3)
    assert (s.suv_gold, s.suv_on_lesion, s.suv_in_text) == (3, 1, 2)
    assert (s.negatives, s.negatives_respected, s.negatives_detected) == (1, 0, None)
    row = s.row()
    assert row["loc precision"] == "0.500 (2/4)" and row["SUVmax on lesion"] == "0.333 (1/3)"


def test_matching_is_one_to_one_and_prefers_the_suv():
    golds = [gold("lung_rul", suv=2.0), gold("lung_rul", suv=7.0)]
    preds = [pred("lung_rul", suv=7.0)]
    pairs = rp.match(preds, golds, toy_is_within)
    assert pairs == [(0, 1)]
    s = rp.Scores()
    ex = Excerpt(id="t3", source_url="https://example.org/c", source_title="toy", text="x",
                 lesions=tuple(golds))
    rp.score_one(ex, preds + [pred("lung_rul", suv=2.0), pred("lung_rul")], s, toy_is_within)
    assert (s.matched, s.predicted, s.suv_on_lesion) == (2, 3, 2)


def test_a_stated_lesion_in_the_sentence_of_a_negative_does_not_break_it():
    text = "High avidity in the right adrenal nodule but no extra-adrenal FDG avid disease."
    ex = Excerpt(id="t5", source_url="https://example.org/e", source_title="toy", text=text,
                 lesions=(gold("adrenal_r", "High avidity in the right adrenal nodule"),),
                 negatives=({"location": None, "negated": "extra-adrenal disease",
                             "span": "no extra-adrenal FDG avid disease"},))
    whole = (0, len(text))
    s = rp.Scores()
    rp.score_one(ex, [pred("adrenal_r", start=whole[0], end=whole[1])], s, toy_is_within)
    assert s.negatives_respected == 1
    s = rp.Scores()
    rp.score_one(ex, [pred("adrenal_r", start=0, end=len(text)), pred("adrenal_l", start=0, end=len(text))], s,
                 toy_is_within)
    assert s.negatives_respected == 0


def test_predicted_negatives_are_detected_along_the_hierarchy():
    ex = Excerpt(id="t4", source_url="https://example.org/d", source_title="toy", text="No hilar nodes.",
                 negatives=({"location": "ln_hilar", "negated": "nodes", "span": "No hilar nodes"},))
    s = rp.Scores()
    rp.score_one(ex, [], s, toy_is_within, predicted_negatives=["ln_thoracic"])
    assert s.negatives_detected == 1 and s.negatives_respected == 1


def test_an_other_negative_is_detected_on_its_region_node():
    text = "No metastasis within the abdomen or pelvis."
    ex = Excerpt(id="t5", source_url="https://example.org/e", source_title="toy", text=text,
                 negatives=({"location": OTHER, "region": "abdomen_pelvis", "negated": "metastasis",
                             "span": "metastasis within the abdomen or pelvis"},))
    for predicted, detected in ((["region_pelvis"], 1), (["region_chest"], 0), ([None], 0), (["liver"], 0),
                                (["body"], 0)):
        s = rp.Scores()
        rp.score_one(ex, [], s, toy_is_within, predicted_negatives=predicted)
        assert s.negatives_detected == detected, predicted


def test_an_open_node_names_its_region():
    assert [rp._open_region(n) for n in ("region_chest", "region_abdomen", "body", "liver")] == [
        "chest", "abdomen", None, None]


def test_the_real_excerpt_file_is_valid():
    excerpts = load_excerpts(DEFAULT_EXCERPTS)
    assert len(excerpts) >= 60
    ids = known_ids()
    for ex in excerpts:
        assert problems(ex, ids) == []
        assert ex.source_url.startswith("http") and ex.source_title
        for les in ex.lesions:
            assert les.span in ex.text
            assert all(ID_PATTERN.match(i) for i in (les.location, *les.also_accept))
            assert (les.location == OTHER) == (les.region is not None)
        for neg in ex.negatives:
            assert neg.span in ex.text
    assert len({ex.id for ex in excerpts}) == len(excerpts)
    assert AGREED_IDS <= ids


def test_a_bad_record_names_its_line(tmp_path):
    good = {"id": "a", "source_url": "https://example.org", "source_title": "t", "text": "Hilar node.",
            "lesions": [{"location": "ln_hilar", "span": "Hilar node"}], "negatives": []}
    bad = {**good, "id": "b", "lesions": [{"location": "ln_hilar", "span": "not in the text"}]}
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(UsageError, match="line 2"):
        load_excerpts(path)
    path.write_text(json.dumps({**good, "lesions": [{"location": "no_such_node", "span": "Hilar node"}]}) + "\n")
    with pytest.raises(UsageError, match="no_such_node"):
        load_excerpts(path)


def test_the_finding_from_the_lesion_sentence_wins_the_pair():
    text = "History: adrenal mass on CT. PET: avid adrenal mass; no other disease."
    pet_at = text.index("avid adrenal mass")
    ex = Excerpt(id="t6", source_url="https://example.org/f", source_title="toy", text=text,
                 lesions=(gold("adrenal_l", "avid adrenal mass"),),
                 negatives=({"location": None, "negated": "other disease", "span": "no other disease"},))
    history = pred("adrenal_l", start=0, end=pet_at - 1)
    pet = pred("adrenal_l", start=pet_at, end=len(text))
    s = rp.Scores()
    rp.score_one(ex, [history, pet], s, toy_is_within)
    assert (s.matched, s.predicted, s.negatives_respected) == (1, 2, 1)  # the history duplicate is the extra


def test_an_other_site_finding_is_read_as_other_with_its_region():
    from types import SimpleNamespace as NS

    f = NS(location_id="region_chest", laterality=NS(value="unspecified"), suv_max=None, span=None,
           other_site=NS(words="chest tube tract", region=NS(value="chest")))
    p = rp.predicted_view(f, "x")
    assert (p.location, p.region) == (OTHER, "chest")
    assert rp.location_correct(p, gold(OTHER, region="chest", words="chest tube tract"), toy_is_within)
    f2 = NS(location_id="region_pelvis", laterality=None, suv_max=None, span=None, other_site=None)
    assert rp.location_correct(rp.predicted_view(f2, "x"),
                               gold(OTHER, region="abdomen_pelvis", words="abdomen or pelvis"), toy_is_within)
    f3 = NS(location_id="lung_rul", laterality=NS(value="right"), suv_max=3.0, span=None)
    assert rp.predicted_view(f3, "x") == rp.Predicted("lung_rul", "right", 3.0, None, None, None)
