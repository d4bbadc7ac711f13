"""``tasks.structure.restatements``: values told in a sentence after the finding they belong to."""

from __future__ import annotations

from data_contracts.findings import CTFinding, UptakeGrade
from tasks.structure.drafts import Draft
from tasks.structure.restatements import values_told_after
from tasks.structure.text import split_report


def _told(text: str) -> tuple[Draft, list]:
    """The first sentence's lesion (no values yet) and the report's sentences."""
    sentences = split_report(text)
    return Draft(location_id="lung_rul", ct_finding=CTFinding.solid_nodule, ct_explicit=True,
                 grade=UptakeGrade.moderate, suv_max=None, size_mm=None, sentence=sentences[0],
                 section=sentences[0].section), sentences


def test_a_sentence_about_the_lesion_gives_its_values_and_now_renews_them():
    last, (first, second) = _told("The SPN was FDG avid. The SPN was now FDG avid (SUVmax 3.1 and 12.7), "
                                  "measuring 14 mm.")
    values_told_after(last, [first], second)
    assert (last.suv_max, last.grade, last.size_mm, last.renewed, last.latest) == (
        12.7, UptakeGrade.intense, 14.0, True, second)


def test_a_value_only_sentence_right_after_gives_the_highest_value():
    last, (first, second) = _told("The SPN was FDG avid. The max SUV was 2.4 and 3.1.")
    values_told_after(last, [first], second)
    assert (last.suv_max, last.grade, last.latest) == (3.1, UptakeGrade.mild, None)


def test_one_sentence_further_only_when_it_refers_back():
    last, (first, between, third) = _told("The SPN was FDG avid. Mild pleural thickening. It measured SUV 8.3.")
    values_told_after(last, [first, between], third)
    assert last.suv_max == 8.3
    last, (first, between, third) = _told("The SPN was FDG avid. Mild pleural thickening. SUVmax 8.3.")
    values_told_after(last, [first, between], third)
    assert last.suv_max is None
    # a value the lesion already has stays: a later value-only sentence is not its
    last, (first, second) = _told("The SPN was FDG avid. The max SUV was 5.0.")
    last.suv_max = 2.0
    values_told_after(last, [first], second)
    assert last.suv_max == 2.0


def test_a_plural_definite_subject_tells_the_lesion_again():
    # one list of lesion heads and definite determiners for every reference rule (lexicon.LESION_HEAD)
    last, (first, second) = _told("A nodule in the right upper lobe is FDG avid. These nodules now measure up to 14 mm "
                                  "with SUVmax 4.2.")
    values_told_after(last, [first], second)
    assert (last.suv_max, last.size_mm, last.renewed) == (4.2, 14.0, True)
