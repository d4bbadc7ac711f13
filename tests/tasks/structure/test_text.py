"""Sentence splitting of report text: wraps, lists, headings, abbreviations, offsets."""

from __future__ import annotations

from tasks.structure.text import split_report

REPORT = """\
Name: John Doe    MRN: 123
CLINICAL HISTORY: Right upper lobe mass.

FINDINGS:
CHEST: A nodule in the RUL measures approx. 2.1 x 1.5 cm (e.g. Fig. 2) and shows
intense uptake, SUVmax 8.2. Enlarged right hilar node
(SUVmax 7.1).
1. Lytic lesion T7, SUVmax 8.2.
2) Sclerotic focus in the
   left iliac bone
- R SCV LN 12 mm SUVmax 5.1
- LUL GGO 8 mm
Fig. 3. Uptake in segment VII.

IMPRESSION: 1. RUL primary. 2. Nodal disease right hilum.
"""


def test_sentences_sections_and_offsets():
    sentences = split_report(REPORT)
    texts = [s.text for s in sentences]
    assert texts == [
        "Right upper lobe mass.",
        "A nodule in the RUL measures approx. 2.1 x 1.5 cm (e.g. Fig. 2) and shows\nintense uptake, SUVmax 8.2.",
        "Enlarged right hilar node\n(SUVmax 7.1).",
        "Lytic lesion T7, SUVmax 8.2.",
        "Sclerotic focus in the\n   left iliac bone",
        "R SCV LN 12 mm SUVmax 5.1",
        "LUL GGO 8 mm",
        "Uptake in segment VII.",
        "RUL primary.",
        "Nodal disease right hilum.",
    ]
    assert all(REPORT[s.start:s.end] == s.text for s in sentences)
    assert [s.section for s in sentences] == ["skip"] + ["findings"] * 7 + ["impression"] * 2
    assert sentences[1].heading == "chest"
    assert [s.item for s in sentences[3:8]] == [True] * 5
    assert "John" not in " ".join(texts)  # header fields are not read
    assert len(sentences[1].norm) == len(sentences[1].text) and "\n" not in sentences[1].norm


def test_short_unpunctuated_lines_are_separate_but_filled_lines_wrap():
    terse = "R hilar LN 14 mm, SUVmax 6.8\nLt 5th rib lytic, SUVmax 7.0\n"
    assert [s.text for s in split_report(terse)] == ["R hilar LN 14 mm, SUVmax 6.8", "Lt 5th rib lytic, SUVmax 7.0"]
    wrapped = ("There is a hypoattenuating lesion in hepatic segment VIII with intense FDG\n"
               "Uptake and a second lesion in segment II.\n")
    assert len(split_report(wrapped)) == 1


def test_skip_section_ends_at_a_blank_line():
    text = "TECHNIQUE: 370 MBq FDG from skull base to thigh.\n\nLytic lesion in T7, SUVmax 8.2.\n"
    sections = [(s.text[:5], s.section) for s in split_report(text)]
    assert sections == [("370 M", "skip"), ("Lytic", "body")]
