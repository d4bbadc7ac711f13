"""Vocabulary: tokenizer, round trips of canonical captions and location names, ids, JSON form."""

from __future__ import annotations

import itertools
import json

import pytest

from data_contracts import taxonomy
from data_contracts.caption import caption_text
from data_contracts.findings import CTFinding, Tracer, UptakeGrade
from data_contracts.records import PetFinding
from models.vocab import (
    BOS,
    EOS,
    PAD,
    SPECIALS,
    UNK,
    Vocab,
    location_texts,
    normalize,
    tokenize,
)

EXAMPLE = "T7 vertebral body, osteolytic destruction with increased FDG uptake"


def _captions() -> list[str]:
    """Canonical captions from the project's caption writer over a spread of locations and findings."""
    locs = [loc.id for loc in taxonomy.locations()][::7]
    out = []
    for loc, finding, grade, tracer in itertools.product(
        locs, list(CTFinding)[::3], list(UptakeGrade), list(Tracer)
    ):
        out.append(caption_text(loc, finding, PetFinding(tracer=tracer, grade=grade)))
    return out


def test_tokenize_splits_punctuation_and_keeps_words_whole():
    assert tokenize(EXAMPLE) == [
        "t7", "vertebral", "body", ",", "osteolytic", "destruction", "with", "increased", "fdg", "uptake",
    ]  # fmt: skip
    assert tokenize("Ground-glass opacity (station 2R), 2.5 cm") == [
        "ground", "-", "glass", "opacity", "(", "station", "2r", ")", ",", "2.5", "cm",
    ]  # fmt: skip
    assert normalize("  Para-aortic   lymph node ( station 6 ) ,x ") == "para-aortic lymph node (station 6), x"
    assert normalize(normalize(EXAMPLE)) == normalize(EXAMPLE)


def test_example_caption_round_trips():
    vocab = Vocab.build([EXAMPLE])
    ids = vocab.encode(EXAMPLE, max_len=16)
    assert len(ids) == 16 and ids[0] == BOS and ids[11] == EOS and ids[12:] == [PAD] * 4
    assert vocab.decode(ids) == "t7 vertebral body, osteolytic destruction with increased fdg uptake"


def test_every_canonical_caption_and_location_name_round_trips_without_unk():
    captions = _captions()
    vocab = Vocab.build(captions[::5], extra_texts=location_texts())
    # held-out captions: their words all come from the same phrases, location names are in the extra text
    for text in captions + location_texts():
        ids = vocab.encode(text, max_len=40)
        assert UNK not in ids, text
        assert vocab.decode(ids) == normalize(text) == text.lower()
    # prompts (no specials) also round trip, e.g. a name with a station in parentheses
    name = taxonomy.get(taxonomy.locations()[16].id).name
    assert "(" in name
    prompt = vocab.encode(name, max_len=12, special=False)
    assert prompt[0] not in (BOS, PAD) and prompt[-1] == PAD
    assert vocab.decode(prompt) == name.lower()


def test_specials_unknown_truncation_and_decode_rules():
    vocab = Vocab.build(["a b c", "a b", "a"])
    assert vocab.itos[: len(SPECIALS)] == list(SPECIALS)
    assert vocab.itos[4:] == ["a", "b", "c"]  # by frequency
    assert vocab.encode("a zebra", 5) == [BOS, vocab.stoi["a"], UNK, EOS, PAD]
    assert vocab.unknown_words("a zebra c") == ["zebra"]
    # truncation keeps <eos>
    assert vocab.encode("a b c a b c", 4) == [BOS, vocab.stoi["a"], vocab.stoi["b"], EOS]
    with pytest.raises(ValueError):
        vocab.encode("a", 1)
    # decode stops at <eos>, skips <pad>/<bos>, out-of-range ids read <unk>
    assert vocab.decode([BOS, 4, PAD, 5, EOS, 6]) == "a b"
    assert vocab.decode([4, 999]) == "a <unk>"
    assert Vocab.build(["a b c", "a b", "a"], min_count=2).itos[4:] == ["a", "b"]


def test_json_round_trip_and_validation():
    vocab = Vocab.build(_captions(), extra_texts=location_texts())
    again = Vocab.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert again == vocab and len(again) == len(vocab)
    assert again.encode(EXAMPLE, 20) == vocab.encode(EXAMPLE, 20)
    with pytest.raises(ValueError, match="special"):
        Vocab(["a", "<pad>", "<bos>", "<eos>", "<unk>"])
    with pytest.raises(ValueError, match="duplicate"):
        Vocab([*SPECIALS, "a", "a"])
    with pytest.raises(ValueError):
        Vocab.from_dict({"tokens": list(SPECIALS)})
