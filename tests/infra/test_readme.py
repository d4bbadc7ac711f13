"""``infra/README.md`` cannot drift: its walkthrough block is what ``infra/walkthrough.sh`` executes (the slow
test runs it end to end); every other command it shows names a real ``petcap`` sub-command and flag, a real
deployment and flow parameter, and real settings."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from data_contracts.settings import OTHER_VARIABLES, setting_env_names

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "infra" / "README.md").read_text()
DEPLOYMENTS = yaml.safe_load((REPO / "infra" / "prefect.yaml").read_text())["deployments"]
FLOW_NAMES = {"flows/refresh.py:dataset_refresh": "dataset-refresh", "flows/training.py:train_localizer_flow":
              "train-localizer", "flows/training.py:train_captioner_flow": "train-captioner",
              "flows/evaluation.py:evaluate_captioner_flow": "evaluate-captioner",
              "flows/evaluation.py:promote_captioner_flow": "promote-captioner",
              "flows/caption.py:caption_study_flow": "caption-study",
              "flows/caption.py:caption_studies_flow": "caption-studies",
              "flows/benchmark.py:benchmark_seeds_flow": "benchmark-seeds"}


def walkthrough_block() -> str:
    return README.split("<!-- walkthrough -->", 1)[1].split("```sh", 1)[1].split("```", 1)[0]


def commands() -> list[list[str]]:
    """Every command line of the README's sh blocks (continuations joined), as words."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #")[0].strip()
            if line and not line.startswith("#"):
                out.append(shlex.split(line.replace("$(", "(").replace(")", ")"), posix=True))
    return out


def deployment_params() -> dict[str, set[str]]:
    out = {}
    for d in DEPLOYMENTS:
        module, func = d["entrypoint"].split(":")
        fn = getattr(importlib.import_module(module.removesuffix(".py").replace("/", ".")), func)
        out[f"{FLOW_NAMES[d['entrypoint']]}/{d['name']}"] = set(inspect.signature(fn.fn).parameters)
    return out


def test_the_walkthrough_runs_the_whole_chain_from_the_readme():
    block = walkthrough_block()
    for step in ("prefect server start", "prefect work-pool create petcap-process", "prefect --no-prompt deploy",
                 "prefect worker start", "petcap synth", "dataset-refresh/nightly", "train-localizer/default",
                 "train-captioner/default", "promote-captioner/default", "evaluate-captioner/default",
                 "caption-study/default", "petcap caption"):
        assert step in block, step
    assert block.index("train-localizer") < block.index("train-captioner") < block.index("promote-captioner") \
        < block.index("evaluate-captioner")  # the run order the flows check
    assert "walkthrough" in (REPO / "infra" / "walkthrough.sh").read_text()


def test_every_command_names_real_subcommands_deployments_parameters_and_settings():
    from flows.cli import build_parser

    parser = build_parser()
    subs = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse keeps them only here
    params = deployment_params()
    seen = set()
    for words in commands():
        env = [w.split("=")[0] for w in words if re.match(r"^[A-Z_]+=", w)]
        words = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
        for name in env:
            assert name in setting_env_names() | set(OTHER_VARIABLES) or not name.startswith("PETCAP_"), name
        if words[:1] == ["petcap"]:
            sub = next(w for w in words[1:] if not w.startswith("-"))
            assert sub in subs, sub
            known = {o for a in subs[sub]._actions for o in a.option_strings}  # noqa: SLF001
            assert {w for w in words if w.startswith("--")} <= known | {"--home", "--debug"}, words
            seen.add(sub)
        if words[:3] == ["prefect", "deployment", "run"]:
            name = words[3]
            assert name in params, name
            for i, w in enumerate(words):
                if w in ("--param", "-p"):
                    assert words[i + 1].split("=")[0] in params[name], (name, words[i + 1])
                if w == "--job-variable":
                    key, _, value = words[i + 1].partition("=")
                    assert key == "env"
                    assert set(yaml.safe_load(value)) <= setting_env_names(), value
            seen.add(name)
    assert {"synth", "caption"} <= seen and len([s for s in seen if "/" in s]) >= 6
    for name in set(re.findall(r"\b(PETCAP_[A-Z0-9_]+)", README)):
        assert name in setting_env_names() | set(OTHER_VARIABLES), name


@pytest.mark.slow
def test_walkthrough_from_a_blank_home_to_a_champion_and_a_captioned_study(tmp_path):
    """infra/walkthrough.sh end to end: server, pool, deploy, worker, refresh, train x2, promote, evaluate,
    caption (deployment and CLI)."""
    env = {**os.environ, "WORK": str(tmp_path), "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "PYTHONPATH": str(REPO)}
    env = {k: v for k, v in env.items() if not k.startswith(("PETCAP_", "PREFECT_"))}
    proc = subprocess.Popen(["bash", str(REPO / "infra" / "walkthrough.sh")], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=1500)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out[-4000:]
    import json

    from mlflow import MlflowClient

    from data_contracts.settings import Settings

    settings = Settings(home=tmp_path / "home")
    client = MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.registry_uri)
    champion = client.get_model_version_by_alias(settings.tracking.registered_model, "champion")
    assert str(champion.version) == "1"
    assert champion.tags["lineage.dataset_version"] not in ("", "none")
    for folder in ("captions", "captions-cli"):
        lesions = json.loads((tmp_path / folder / "captions.json").read_text())["lesions"]
        assert lesions and all(lesion["caption"] for lesion in lesions)
    assert list(settings.reports_dir.glob("*.html"))
