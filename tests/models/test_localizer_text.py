"""The localizer's text side: tokenizer, vocabulary over the taxonomy, the small text encoder."""

import pytest
import torch

from data_contracts import taxonomy
from models.localizer_text import PAD, UNK, TextEncoder, build_text_vocab, tokenize


def test_tokenize_lower_cases_words_and_splits_punctuation():
    assert tokenize("Station 2R (AP)") == ["station", "2r", "(", "ap", ")"]
    assert tokenize("  ") == []


def test_the_vocabulary_holds_every_word_of_every_taxonomy_term_once_after_the_specials():
    vocab = build_text_vocab()
    assert vocab[:2] == [PAD, UNK] and len(vocab) == len(set(vocab))
    words = {w for loc in taxonomy.locations() for t in loc.terms for w in tokenize(t)}
    assert set(vocab[2:]) == words and vocab[2:] == sorted(words)


def test_text_encoder_ids_padding_and_mean_over_real_tokens_only():
    torch.manual_seed(0)
    enc = TextEncoder([PAD, UNK, "right", "upper", "lobe"], width=16, layers=1, heads=2, max_tokens=4,
                      dropout=0.1).eval()
    ids = enc.tokenize(["right upper lobe", "lobe", "nowhere known at all really"])
    assert ids.tolist() == [[2, 3, 4, 0], [4, 0, 0, 0], [1, 1, 1, 1]]  # pad 0 after words, unknown 1, cut at 4
    with torch.no_grad():
        out = enc(ids)  # (T, w)
        alone = enc(ids[1:2, :1])  # the same phrase without its padding
    assert out.shape == (3, 16)
    assert torch.allclose(out[1], alone[0], atol=1e-5)  # padding changes nothing
    with pytest.raises(ValueError, match="must start with"):
        TextEncoder(["a", "b"], 16, 1, 2, 4, 0.1)
    with pytest.raises(TypeError, match="missing 5 required"):  # sizes only from LocalizerConfig, no copies here
        TextEncoder([PAD, UNK, "lobe"])
    with pytest.raises(ValueError, match="no phrases"):
        enc.tokenize([])
