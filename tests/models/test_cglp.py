import pytest
import torch

from data_contracts import taxonomy
from data_contracts.settings import Settings
from models.cglp import (
    DEFAULT_LENGTH,
    PAD,
    SEP,
    cglp_prompt,
    cglp_prompt_ids,
    location_words,
    prompt_texts,
)
from models.vocab import UNK, Vocab

THR = Settings().cglp_threshold  # 0.95
TOP5 = ["vertebra_t7", "vertebra_t8", "rib_7_r", "lung_rll", "sternum"]
T7 = ["t7", "vertebral", "body"]
T8 = ["t8", "vertebral", "body"]
RIB = ["right", "7th", "rib"]


def test_boundary_strictly_greater_gives_top1():
    p = cglp_prompt(TOP5, [0.9501, 0.03, 0.01, 0.005, 0.005], THR, length=12)
    assert p == T7 + [PAD] * 9


def test_at_threshold_gives_top1_to_top3_with_separators():
    p = cglp_prompt(TOP5, [0.95, 0.03, 0.01, 0.005, 0.005], THR, length=14)
    assert p == T7 + [SEP] + T8 + [SEP] + RIB + [PAD] * 3
    # float32 confidence from the localizer: 0.95 is still "not above 0.95"
    p32 = cglp_prompt(TOP5, torch.tensor([0.95, 0.03], dtype=torch.float32), THR, length=14)
    assert p32 == p


def test_exact_length_padding_and_truncation():
    conf = [0.5, 0.2, 0.1, 0.1, 0.1]
    for length in (1, 5, 11, 30, 40):
        assert len(cglp_prompt(TOP5, conf, THR, length=length)) == length
    assert cglp_prompt(TOP5, conf, THR, length=5) == T7 + [SEP, "t8"]  # cut at the tail
    assert cglp_prompt(TOP5, conf, THR, length=11) == T7 + [SEP] + T8 + [SEP] + RIB
    # the default fits the three longest names and two separators: nothing of a taxonomy prompt is ever cut
    longest = sorted(taxonomy.locations(), key=lambda loc: -len(location_words(loc.id)))[:3]
    words = cglp_prompt([loc.id for loc in longest], [0.4, 0.3, 0.2], THR)
    assert len(words) == DEFAULT_LENGTH and PAD not in words and words.count(SEP) == 2
    assert words[:10] == ["para", "-", "aortic", "mediastinal", "lymph", "node", "(", "station", "6", ")"]


def test_disabled_is_all_pad_and_ids_or_indices_agree():
    assert cglp_prompt(TOP5, [0.99], THR, length=7, enabled=False) == [PAD] * 7
    indices = torch.tensor([taxonomy.index_of(i) for i in TOP5])
    assert cglp_prompt(indices, torch.tensor([0.5]), THR, 20) == cglp_prompt(TOP5, [0.5], THR, 20)
    with pytest.raises(ValueError, match="top-3"):
        cglp_prompt(TOP5[:2], [0.5, 0.4], THR, 20)


def test_batched_ids_through_a_vocabulary():
    words = [PAD, SEP, "<unk>", *sorted({w for i in TOP5 for w in location_words(i)})]
    index = {w: i for i, w in enumerate(words)}
    encode = lambda ws: [index.get(w, 2) for w in ws]  # noqa: E731
    ids = torch.tensor([[taxonomy.index_of(i) for i in TOP5]] * 3)
    conf = torch.tensor([[0.99, 0.01], [0.95, 0.04], [0.96, 0.04]])
    out = cglp_prompt_ids(ids, conf, encode, THR, length=12)
    assert out.shape == (3, 12) and out.dtype == torch.long
    assert out[0].tolist() == encode(T7) + [0] * 9
    assert out[1].tolist() == encode(T7 + [SEP] + T8 + [SEP] + RIB) + [0]
    assert torch.equal(out[0], out[2])
    off = cglp_prompt_ids(ids, conf, encode, THR, length=12, enabled=False)
    assert torch.equal(off, torch.zeros(3, 12, dtype=torch.long))


def test_prompt_ids_with_the_captioner_vocabulary():
    vocab = Vocab.build(["T7 vertebral body, osteolytic destruction with increased FDG uptake"],
                        extra_texts=prompt_texts())
    ids = torch.tensor([[taxonomy.index_of(i) for i in TOP5]] * 2)
    conf = torch.tensor([[0.99], [0.5]])
    out = cglp_prompt_ids(ids, conf, vocab, THR, length=DEFAULT_LENGTH)
    assert out.shape == (2, DEFAULT_LENGTH) and UNK not in out.tolist()[0] + out.tolist()[1]
    assert vocab.decode(out[0]) == "t7 vertebral body"
    assert vocab.decode(out[1]) == "t7 vertebral body; t8 vertebral body; right 7th rib"
    assert out[0, 3:].eq(0).all()  # <pad> is id 0


def test_tracer_context_token_leads_every_prompt_even_without_cglp():
    vocab = Vocab.build(["T7 vertebral body, osteolytic destruction with increased FDG uptake"],
                        extra_texts=prompt_texts())
    assert "psma" in vocab  # every tracer has an id, also one absent from the training captions
    ids = torch.tensor([[taxonomy.index_of(i) for i in TOP5]] * 2)
    conf = torch.tensor([[0.99], [0.5]])
    out = cglp_prompt_ids(ids, conf, vocab, THR, length=DEFAULT_LENGTH + 1, tracers=["FDG", "PSMA"])
    assert out.shape == (2, DEFAULT_LENGTH + 1)
    assert vocab.decode(out[0]) == "fdg t7 vertebral body"
    assert vocab.decode(out[1]) == "psma t7 vertebral body; t8 vertebral body; right 7th rib"  # never cut
    off = cglp_prompt_ids(ids, conf, vocab, THR, length=DEFAULT_LENGTH + 1, enabled=False, tracers=["PSMA", "FDG"])
    assert [vocab.itos[int(r[0])] for r in off] == ["psma", "fdg"] and off[:, 1:].eq(0).all()
    with pytest.raises(ValueError, match="tracers has 1 rows"):
        cglp_prompt_ids(ids, conf, vocab, THR, tracers=["FDG"])


def test_prompt_candidates_are_the_names_with_their_comma():
    from models.cglp import prompt_candidates

    vocab = Vocab.build(["T7 vertebral body, osteolytic destruction with increased FDG uptake"],
                        extra_texts=prompt_texts())
    ids = torch.tensor([[taxonomy.index_of(i) for i in TOP5]] * 3)
    conf = torch.tensor([[0.99], [0.5], [0.5]])
    prompts = cglp_prompt_ids(ids, conf, vocab, THR, length=DEFAULT_LENGTH + 1, tracers=["FDG", "PSMA", "FDG"])
    prompts[2] = cglp_prompt_ids(ids[:1], conf[:1], vocab, THR, length=DEFAULT_LENGTH + 1, enabled=False,
                                 tracers=["FDG"])[0]
    cands = prompt_candidates(prompts, vocab, tracer_token=True)
    words = [[[vocab.itos[t] for t in c] for c in row] for row in cands]
    assert words == [[T7 + [","]], [T7 + [","], T8 + [","], RIB + [","]], []]


def test_tracer_bans_forbid_the_other_tracers_name_only():
    from models.cglp import tracer_bans

    vocab = Vocab.build(["T7 vertebral body, osteolytic destruction with increased FDG uptake"],
                        extra_texts=prompt_texts())
    ids = torch.tensor([[taxonomy.index_of(i) for i in TOP5]] * 3)
    conf = torch.tensor([[0.99], [0.5], [0.99]])
    prompts = cglp_prompt_ids(ids, conf, vocab, THR, length=DEFAULT_LENGTH + 1, tracers=["FDG", "PSMA", "PSMA"])
    banned = tracer_bans(prompts, vocab)
    assert banned.shape == (3, len(vocab)) and banned.dtype == torch.bool
    assert [[vocab.itos[i] for i in row.nonzero().flatten().tolist()] for row in banned] == [
        ["psma"], ["fdg"], ["fdg"]]
    # prompts without the tracer word (tracer_token off) ban nothing
    plain = cglp_prompt_ids(ids, conf, vocab, THR, length=DEFAULT_LENGTH)
    assert not tracer_bans(plain, vocab).any()
