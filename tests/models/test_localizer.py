import importlib.util
import math
import time

import numpy as np
import pytest
import torch

from data_contracts import taxonomy
from models.localizer import (
    LocalizerConfig,
    build_localizer,
    clip_loss,
    load_localizer,
    normalise_patches,
    location_ids,
    save_localizer,
)
from models.localizer_text import training_terms

K = len(taxonomy.locations())  # 134
S = 16  # toy patch edge


@pytest.fixture(autouse=True)
def one_thread(request):
    """Tiny tensors: one intra-op thread is as fast, and immune to OpenMP spin-waits when other jobs share the cores
    (two threads there ran the toy training 15x slower). The slow throughput test keeps torch's default."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_cfg(**kw) -> LocalizerConfig:
    base = dict(patch_size=(S, S, S), encoder_channels=(8, 16, 16, 32), text_width=32, text_layers=1, text_heads=2,
                embed_dim=64, dropout=0.0)
    return LocalizerConfig(**{**base, **kw})


def hand_eq_2_4(v: np.ndarray, t: np.ndarray, scale: float, positives_only_self=None) -> float:
    """Eq. 2-4 with explicit loops; ``positives_only_self[i]``: the columns j allowed in row i's denominator."""
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    n = len(v)
    allowed = positives_only_self or [list(range(n))] * n
    sim = lambda a, b: float(a @ b)  # noqa: E731  cosine of unit vectors, Eq. 1
    loss_i = -sum(math.log(math.exp(sim(v[i], t[i]) * scale) /
                           sum(math.exp(sim(v[i], t[j]) * scale) for j in allowed[i])) for i in range(n)) / n
    loss_t = -sum(math.log(math.exp(sim(t[i], v[i]) * scale) /
                           sum(math.exp(sim(t[i], v[j]) * scale) for j in allowed[i])) for i in range(n)) / n
    return 0.5 * (loss_i + loss_t)


def test_contrastive_loss_is_eq_2_4_on_three_distinct_samples():
    rng = np.random.default_rng(0)
    v, t = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    expected = hand_eq_2_4(v, t, scale=1 / 0.07)
    vt, tt = torch.tensor(v), torch.tensor(t)
    assert clip_loss(vt, tt, 1 / 0.07, torch.tensor([4, 9, 70])).item() == pytest.approx(expected, rel=1e-9)
    assert clip_loss(vt, tt, 1 / 0.07).item() == pytest.approx(expected, rel=1e-9)
    # perfectly aligned, orthogonal pairs at tau -> 0 cost nothing
    eye = torch.eye(3, dtype=torch.float64)
    assert clip_loss(eye, eye, 100.0, torch.tensor([0, 1, 2])).item() == pytest.approx(3 * math.exp(-100), abs=1e-12)


def test_same_location_samples_are_not_each_others_negatives():
    rng = np.random.default_rng(1)
    v, t = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    loc = torch.tensor([7, 7, 20])  # samples 0 and 1 share a location
    allowed = [[0, 2], [1, 2], [0, 1, 2]]  # row i: itself and the other-location columns
    expected = hand_eq_2_4(v, t, 10.0, allowed)
    got = clip_loss(torch.tensor(v), torch.tensor(t), 10.0, loc).item()
    assert got == pytest.approx(expected, rel=1e-9)
    assert got < hand_eq_2_4(v, t, 10.0) - 1e-3  # plain Eq. 2-4 would penalise the pair
    # two lesions of one location, both matching its text perfectly, cost nothing; unmasked they would cost log 2
    # in each direction for each of the two rows
    e = torch.eye(2, dtype=torch.float64)
    emb = torch.stack([e[0], e[0], e[1]])
    assert clip_loss(emb, emb, 100.0, loc).item() == pytest.approx(0.0, abs=1e-12)
    assert clip_loss(emb, emb, 100.0).item() == pytest.approx(2 * math.log(2) / 3, rel=1e-9)
    # a batch of one location has no negatives at all: zero loss
    assert clip_loss(torch.tensor(v), torch.tensor(t), 10.0, torch.tensor([3, 3, 3])).item() == pytest.approx(0)


def test_shapes_temperature_and_model_loss():
    torch.manual_seed(0)
    m = build_localizer(tiny_cfg())
    x = torch.rand(4, 3, S, S, S)
    v = m.encode_image(x)
    assert v.shape == (4, 64) and torch.allclose(v.norm(dim=1), torch.ones(4), atol=1e-5)
    assert m.category_embeddings().shape == (K, 64) and m.num_categories == K
    assert m.scale().item() == pytest.approx(1 / 0.07, rel=1e-5)
    with torch.no_grad():
        m.logit_scale.fill_(10.0)
    assert m.scale().item() == pytest.approx(100.0)  # clamped like CLIP
    loc = torch.tensor([0, 5, 5, 133])
    m.eval()  # eval: each sample's text is its canonical name -> the loss is clip_loss on the encoders' outputs
    with torch.no_grad():
        t = m.encode_text([taxonomy.locations()[i].name for i in loc])
        assert m(x, loc).item() == pytest.approx(clip_loss(m.encode_image(x), t, 100.0, loc).item(), rel=1e-5)
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16, 16\)"):
        m.encode_image(torch.rand(2, 3, 8, 8, 8))


def test_training_text_is_a_term_of_the_sample_location():
    terms, counts = training_terms()
    assert len(counts) == K and all(c >= 1 for c in counts) and "S1" not in terms  # ambiguous term left out
    m = build_localizer(tiny_cfg(synonym_prob=1.0))
    loc = torch.arange(K).repeat(20)
    rows = m.sample_terms(loc)
    start, count = m.term_start[loc], m.term_count[loc]
    assert torch.all((rows >= start) & (rows < start + count))
    assert len(set(rows.tolist())) > 2 * K  # synonyms really drawn
    m0 = build_localizer(tiny_cfg(synonym_prob=0.0))
    assert torch.equal(m0.sample_terms(loc), m0.term_start[loc])
    assert terms[int(m0.term_start[taxonomy.index_of("lung_rul")])] == "right upper lobe"


def test_top5_sorted_and_the_softmax_over_all_categories():
    torch.manual_seed(0)
    m = build_localizer(tiny_cfg()).eval()
    x = torch.rand(3, 3, S, S, S)
    ids, conf = m.localize(x)
    assert ids.shape == (3, 5) and conf.shape == (3, 5) and ids.dtype == torch.long
    assert torch.all(conf[:, :-1] >= conf[:, 1:]) and torch.all(conf.sum(1) <= 1 + 1e-6)
    with torch.no_grad():
        logits = m.scale() * m.encode_image(x) @ m.encode_text([loc.name for loc in taxonomy.locations()]).T
    full = torch.softmax(logits, dim=1)  # (3, 134)
    assert torch.allclose(m.probabilities(x), full, atol=1e-6)
    assert torch.allclose(conf, full.gather(1, ids), atol=1e-6)
    assert torch.equal(ids[:, 0], full.argmax(1))
    assert location_ids(ids[:1, :1]) == [[taxonomy.locations()[int(ids[0, 0])].id]]


TOY = ["spleen", "sternum", "thyroid", "pancreas", "prostate"]


def toy_batch(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """A lesion blob (PET + mask channels) at one of five location-dependent positions in a 16^3 volume."""
    q = S / 4
    centers = torch.tensor([[q, q, q], [q, 3 * q, 3 * q], [3 * q, q, 3 * q], [3 * q, 3 * q, q], [2 * q] * 3])
    grid = torch.stack(torch.meshgrid(*[torch.arange(S, dtype=torch.float32)] * 3, indexing="ij"))  # (3, S, S, S)
    k = torch.randint(0, len(TOY), (n,), generator=g)
    ctr = centers[k] + torch.randn(n, 3, generator=g)
    blob = torch.exp(-((grid[None] - ctr[:, :, None, None, None]) ** 2).sum(1) / 8.0)  # (n, S, S, S)
    x = torch.stack([torch.rand(n, S, S, S, generator=g) * 0.2, blob, (blob > 0.5).float()], 1)
    return x, torch.tensor([taxonomy.index_of(i) for i in TOY])[k]


def test_localizer_learns_a_toy_problem():
    torch.manual_seed(0)
    m = build_localizer(tiny_cfg(synonym_prob=0.0))
    test_x, test_y = toy_batch(100, torch.Generator().manual_seed(99))
    toy = torch.tensor([taxonomy.index_of(i) for i in TOY])

    def accuracy():
        m.eval()
        p = m.probabilities(test_x)
        m.train()
        return (p.argmax(1) == test_y).float().mean().item(), (toy[p[:, toy].argmax(1)] == test_y).float().mean().item()

    before, before_toy = accuracy()
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(60):
        x, y = toy_batch(20, g)
        loss = m(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after, after_toy = accuracy()
    assert before < 0.3 and before_toy < 0.5  # chance: 1/134 over all, 1/5 among the five
    assert after >= 0.8, (before, after)  # top-1 over all 134 categories
    assert after_toy >= 0.9, (before_toy, after_toy)


def test_checkpoint_round_trip_identical_outputs(tmp_path):
    torch.manual_seed(0)
    m = build_localizer(tiny_cfg(synonym_prob=0.3))
    with torch.no_grad():
        m.logit_scale.fill_(3.0)
    x = torch.rand(2, 3, S, S, S)
    m.train()
    m(x, torch.tensor([1, 2]))  # move the BatchNorm running statistics off their init
    m.eval()
    path = save_localizer(m, tmp_path / "ckpt" / "localizer.pt", extra={"epoch": 3})
    assert [p.name for p in path.parent.iterdir()] == ["localizer.pt"]  # no temporary left behind
    loaded = load_localizer(path)
    assert loaded.cfg == m.cfg and loaded.text_vocab == m.text_vocab and not loaded.training
    ids, conf = m.localize(x)
    ids2, conf2 = loaded.localize(x)
    assert torch.equal(ids, ids2) and torch.equal(conf, conf2)
    assert torch.equal(m.probabilities(x), loaded.probabilities(x))

    payload = torch.load(path, weights_only=True)
    assert payload["taxonomy_version"] == taxonomy.TAXONOMY_VERSION and payload["extra"] == {"epoch": 3}
    payload["taxonomy_version"] = "0.9"
    torch.save(payload, tmp_path / "old.pt")
    with pytest.raises(ValueError, match="taxonomy"):
        load_localizer(tmp_path / "old.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="not a CLIP localizer checkpoint"):
        load_localizer(tmp_path / "foreign.pt")
    with pytest.raises(FileNotFoundError):
        load_localizer(tmp_path / "missing.pt")


def test_pretrained_text_model_is_local_only_and_guarded(tmp_path):
    cfg = tiny_cfg(pretrained_text_model=str(tmp_path / "no-such-model"))
    if importlib.util.find_spec("transformers") is None:
        with pytest.raises(ImportError, match="transformers"):
            build_localizer(cfg)
    else:
        with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
            build_localizer(cfg)


def test_input_patch_channels():
    ct = torch.tensor([[[-1000.0, 250.0, 1500.0, 3000.0]]])  # (1, 1, 4)
    pet = torch.tensor([[[0.0, 7.5, 15.0, 40.0]]])
    mask = torch.tensor([[[0, 1, 2, 0]]])
    x = normalise_patches(torch.stack([ct, pet, mask.float()])[None], LocalizerConfig(pet_suv_max=15.0), (1, 1, 4))
    assert x.shape == (1, 3, 1, 1, 4) and x.dtype == torch.float16 and type(x) is torch.Tensor  # no MetaTensor
    assert torch.equal(x[0, :, 0, 0].float(), torch.tensor([[0, 0.5, 1, 1], [0, 0.5, 1, 1], [0, 1, 1, 0]]))
    half = normalise_patches(torch.stack([ct, pet, torch.tensor([[[0.0, 0.4, 0.6, 1.0]]])])[None],
                             LocalizerConfig(pet_suv_max=30.0), (1, 1, 4))
    assert half[0, 1, 0, 0].tolist() == [0, 0.25, 0.5, 1] and half[0, 2, 0, 0].tolist() == [0, 0, 1, 1]


@pytest.mark.slow
def test_default_config_cpu_throughput():
    """Forward + backward + Adam step, batch 16 at the default 3 x 64^3 patch; prints samples/s."""
    torch.manual_seed(0)
    m = build_localizer()
    opt = torch.optim.Adam(m.parameters(), lr=1e-4, weight_decay=5e-4)
    x, loc = torch.rand(16, 3, 64, 64, 64), torch.randint(0, K, (16,))
    times = []
    for _ in range(6):
        t0 = time.perf_counter()
        loss = m(x, loc)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    rate = 16 / float(np.median(times[1:]))
    n_params = sum(p.numel() for p in m.parameters())
    threads = torch.get_num_threads()
    print(f"localizer: {n_params} parameters, {rate:.1f} samples/s (batch 16, 3x64^3, {threads} threads)")
    assert rate > 2.0


def test_scan_position_is_an_input_when_configured():
    torch.manual_seed(0)
    m = build_localizer(tiny_cfg(position_width=8)).eval()
    x = torch.rand(2, 3, S, S, S)
    with pytest.raises(ValueError, match="scan position"):
        m.encode_image(x)
    left, right = torch.tensor([[0.8, 0.5, 0.5]] * 2), torch.tensor([[0.2, 0.5, 0.5]] * 2)
    assert not torch.allclose(m.probabilities(x, left), m.probabilities(x, right))  # the position is used
    ids, conf = m.localize(x, position=left)
    assert ids.shape == (2, 5) and torch.all(conf[:, :-1] >= conf[:, 1:])
    loss = m.train()(x, torch.tensor([0, 1]), left)
    loss.backward()
    assert m.position_mlp[0].weight.grad.abs().sum() > 0  # and learnt


def test_position_checkpoint_round_trip_and_older_files(tmp_path):
    m = build_localizer(tiny_cfg(position_width=8)).eval()
    x, pos = torch.rand(1, 3, S, S, S), torch.rand(1, 3)
    loaded = load_localizer(save_localizer(m, tmp_path / "pos.pt"))
    assert torch.equal(m.probabilities(x, pos), loaded.probabilities(x, pos))
    # a file written before the scan position existed (no position_width in its config) loads as image-only
    old = build_localizer(tiny_cfg())
    path = save_localizer(old, tmp_path / "old.pt")
    payload = torch.load(path, weights_only=True)
    del payload["config"]["position_width"]
    torch.save(payload, path)
    assert load_localizer(path).position_mlp is None


def test_category_loss_adds_eq_3_over_all_category_names():
    torch.manual_seed(0)
    m = build_localizer(tiny_cfg(category_loss_weight=0.5)).eval()  # eval: canonical names, deterministic
    x, loc = torch.rand(3, 3, S, S, S), torch.tensor([0, 5, 9])
    v = m.encode_image(x)
    bank = m.encode_tokens(m.term_tokens[m.term_start])
    t = bank[loc]  # eval mode: each sample's own text is its canonical name
    expected = clip_loss(v, t, m.scale(), loc) + 0.5 * torch.nn.functional.cross_entropy(m.scale() * v @ bank.T, loc)
    assert m(x, loc).item() == pytest.approx(expected.item(), rel=1e-5)
    # with weight 0 it is the paper's loss alone
    m.cfg.category_loss_weight = 0.0
    assert m(x, loc).item() == pytest.approx(clip_loss(v, t, m.scale(), loc).item(), rel=1e-5)
