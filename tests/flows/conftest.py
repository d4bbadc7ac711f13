"""Fixtures of the flow tests: a Prefect home per test session, a real Prefect server on loopback, a tiny cohort.

Prefect reads its settings from the environment when it is imported, so the session's ``PREFECT_HOME`` (a tmp
folder), analytics off and ``PREFECT_API_URL`` (a free loopback port) are set here, before any flow module is
imported; the server behind that URL is started by the ``prefect_server`` fixture, which every test that runs a
flow uses. Shutdown is bounded: the server gets SIGTERM then SIGKILL after 20 s.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PREFECT = str(Path(sys.executable).with_name("prefect"))
PETCAP = str(Path(sys.executable).with_name("petcap"))
SERVER_START_TIMEOUT_S = 90
PATIENTS = 6  # tiny cohort: 9 studies, every split non-empty
STUDIES = 9
# The tiny training preset: the demo recipe shrunk to one epoch of very small networks (seconds on a CPU).
TINY_LOCALIZER = {"loop.epochs": 1, "model.patch_size": [16, 16, 16], "model.encoder_channels": [8, 8, 16, 16],
                  "model.embed_dim": 32, "model.text_width": 32, "model.text_layers": 1}
TINY_CAPTIONER = {"loop.epochs": 1, "model.patch_size": [16, 16, 16], "model.encoder_channels": [8, 16],
                  "model.encoder_strides": [2, 2],
                  "model.dim": 32, "model.encoder_layers": 1, "model.decoder_layers": 1, "method.beam_size": 1}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


PREFECT_HOME = Path(tempfile.mkdtemp(prefix="petcap-prefect-"))
PORT = _free_port()
API_URL = f"http://127.0.0.1:{PORT}/api"
os.environ.update({
    "PREFECT_HOME": str(PREFECT_HOME),
    "PREFECT_API_URL": API_URL,
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_API_HOST": "127.0.0.1",
    "PREFECT_LOGGING_LEVEL": "WARNING",
})


@dataclass(frozen=True)
class Server:
    url: str
    env: dict[str, str]  # environment for CLI calls and workers against this server

    def cli(self, *args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
        """Run ``prefect *args`` against the server from the repository root; fail with its output."""
        proc = subprocess.run([PREFECT, "--no-prompt", *args], cwd=REPO, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout, check=False)
        assert proc.returncode == 0, f"prefect {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> None:
    """Signal a process we started (its whole process group), wait, then kill what is left."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="session")
def prefect_server() -> Server:
    env = {**os.environ, "PREFECT_HOME": str(PREFECT_HOME), "PREFECT_API_URL": API_URL}
    with open(PREFECT_HOME / "server.log", "w") as log:
        proc = subprocess.Popen([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(PORT)],
                                cwd=PREFECT_HOME, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + SERVER_START_TIMEOUT_S
            while not _healthy(API_URL):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("prefect server did not start: "
                                       f"{(PREFECT_HOME / 'server.log').read_text()[-2000:]}")
                time.sleep(0.5)
            yield Server(API_URL, env)
        finally:
            stop(proc)
            shutil.rmtree(PREFECT_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory) -> Path:
    """A tiny synthetic delivery (6 patients, 9 studies), written once by the project's generator."""
    from data_contracts.settings import Settings, SynthSettings
    from tasks.synth.cohort import synthesize_cohort

    root = tmp_path_factory.mktemp("tiny_raw")
    # every study with lesions: ingest quarantines a lesion-free study (empty_mask)
    synthesize_cohort(root, patients=PATIENTS, seed=11, scale="tiny",
                      settings=Settings(home=root.parent / "synth_home", synth=SynthSettings(lesion_free_fraction=0.0)),
                      progress=False)
    return root


@pytest.fixture(scope="session")
def refreshed(prefect_server, tiny_raw, tmp_path_factory) -> tuple[Path, dict]:
    """The tiny cohort after one ``dataset-refresh`` (on the session's server): its home and the run's summary.
    Tests work on copies (``home_copy``)."""
    from flows.refresh import dataset_refresh

    home = tmp_path_factory.mktemp("refreshed") / "home"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PETCAP_PATCHES__PROCESSES", "false")
        mp.setenv("PETCAP_PATCHES__WORKERS", "1")
        summary = dataset_refresh(home=str(home), raw_dir=str(tiny_raw))
    return home, summary


def home_copy(refreshed: tuple[Path, dict], dst: Path) -> Path:
    shutil.copytree(refreshed[0], dst)
    return dst


@pytest.fixture
def fast_patches(monkeypatch):
    """Patch extraction on threads of one process: a cohort of 5 tiny studies needs no worker processes."""
    monkeypatch.setenv("PETCAP_PATCHES__PROCESSES", "false")
    monkeypatch.setenv("PETCAP_PATCHES__WORKERS", "1")
