"""Named training configs (files, inheritance, --set overrides) and the caption metrics used in training."""

from __future__ import annotations

import pandas as pd
import pytest

from data_contracts.settings import Settings
from models.cglp import DEFAULT_LENGTH
from models.training.configs import available, load_config, parse_overrides, parse_value
from tasks.evaluate.baseline import location_baseline


def test_every_named_config_loads_for_both_models():
    names = available()
    assert {"demo", "benchmark", "lstm", "transformer", "xtransformer", "b_w", "b_p", "b_w_p"} <= set(names)
    for name in names:
        loc, cap = load_config("localizer", name), load_config("captioner", name)
        assert loc.loop.weight_decay == 5e-4 and loc.loop.betas == (0.9, 0.999) and loc.loop.gamma == 0.1
        assert cap.loop.lr_milestones() == [round(cap.loop.epochs / 3), round(2 * cap.loop.epochs / 3)]
        assert cap.model.patch_size == (32, 32, 32)
        # prompt tokens: the tracer always, the location words only with CGLP
        assert cap.method.tracer_token and cap.model.use_prompt
        assert cap.model.prompt_len == DEFAULT_LENGTH + 1


def test_ablation_and_decoder_variants():
    flags = {n: (c.model.decoder, c.method.dws, c.method.cglp)
             for n in ("xtransformer", "b_w", "b_p", "b_w_p", "lstm", "transformer", "demo")
             for c in [load_config("captioner", n)]}
    assert flags == {"xtransformer": ("xtransformer", False, False), "b_w": ("xtransformer", True, False),
                     "b_p": ("xtransformer", False, True), "b_w_p": ("xtransformer", True, True),
                     "lstm": ("lstm", False, False), "transformer": ("transformer", False, False),
                     "demo": ("xtransformer", True, True)}


def test_benchmark_inherits_demo():
    bench, demo = load_config("localizer", "benchmark"), load_config("localizer", "demo")
    assert bench.model == demo.model and bench.augment == demo.augment  # inherited
    assert (bench.loop.epochs, bench.loop.lr, demo.loop.lr) == (15, demo.loop.lr, 1e-3)  # only the length differs
    cap = load_config("captioner", "benchmark")
    assert (cap.loop.epochs, cap.loop.batch_size, cap.loop.lr_milestones()) == (6, 16, [2, 4])
    assert bench.sources[-1].endswith("benchmark.toml") and bench.sources[0].endswith("demo.toml")


def test_overrides_are_typed_and_unknown_keys_named():
    assert parse_value("3") == 3 and parse_value("1e-4") == 1e-4 and parse_value("[8, 8, 8]") == [8, 8, 8]
    assert parse_value("true") is True and parse_value("lstm") == "lstm"
    over = parse_overrides(["loop.epochs=3", "model.decoder=lstm", "method.cglp=false", "method.tracer_token=false"])
    cap = load_config("captioner", "demo", over)
    assert (cap.loop.epochs, cap.model.decoder, cap.method.cglp, cap.model.use_prompt) == (3, "lstm", False, False)
    assert cap.model.prompt_len == DEFAULT_LENGTH  # no prompt tokens at all without CGLP and the tracer
    assert load_config("captioner", "demo", {"captioner.loop.lr": "2e-4"}).loop.lr == 2e-4
    with pytest.raises(ValueError, match="unknown keys.*'epoch'"):
        load_config("captioner", "demo", {"loop.epoch": 3})
    with pytest.raises(ValueError, match="unknown sections"):
        load_config("localizer", "demo", {"method.dws": False})  # the localizer has no method section
    with pytest.raises(ValueError, match="expected key=value"):
        parse_overrides(["epochs"])
    with pytest.raises(FileNotFoundError, match="available: .*demo"):
        load_config("captioner", "nope")


def test_settings_place_checkpoints_under_home(tmp_path):
    assert Settings(home=tmp_path).checkpoints_dir == tmp_path / "checkpoints"
    assert Settings(home=tmp_path, train={"checkpoints_dir": tmp_path / "c"}).checkpoints_dir == tmp_path / "c"


def test_the_location_baseline():
    train = pd.DataFrame({"location_id": ["a", "a", "a", "b"],
                          "caption": ["x one", "x two", "x two", "y"]})
    assert location_baseline(train, ["a", "b", "c"]) == ["x two", "y", "x two"]


def test_location_baseline_by_location_and_tracer():
    train = pd.DataFrame({"location_id": ["a", "a", "a", "a", "b"], "tracer": ["FDG", "FDG", "PSMA", "PSMA", "FDG"],
                          "caption": ["a fdg", "a fdg", "a psma 1", "a psma 2", "b fdg"]})
    got = location_baseline(train, ["a", "a", "b", "c", "c"], ["FDG", "PSMA", "PSMA", "PSMA", "FDG"])
    # (a, PSMA) ties -> alphabetical; (b, PSMA) unseen -> b's; c unseen -> the tracer's most frequent
    assert got == ["a fdg", "a psma 1", "b fdg", "a psma 1", "a fdg"]
    with pytest.raises(ValueError, match="2 tracers for 1 locations"):
        location_baseline(train, ["a"], ["FDG", "PSMA"])
