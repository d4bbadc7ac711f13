"""A ``petcap refresh`` killed with SIGKILL in the middle, then run again, ends exactly where a clean run ends.

The killed run is a real ``petcap refresh`` process against the session's Prefect server; it is killed when
its stage is under way (patch extraction: the patch store is being created; ingestion: some study groups are
written). On the tiny cohort the extraction after the store's creation takes too little time to be hit
reliably between two commits, so that state is left to the extraction's own tests. The
rerun is compared with the session's clean refresh of the same drop: every table (timestamps and commit
numbers aside), the delivery log, and the patches of every sample, byte for byte.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from data_contracts.settings import Settings
from flows.refresh import dataset_refresh
from tasks.patches.store import read_patch_samples, read_patches
from tests.flows.conftest import REPO

VOLATILE = ["ingested_at", "assigned_at", "registered_at", "extracted_at", "commit", "row", "at"]
TABLES = ("studies", "lesions", "findings", "caption_samples", "link_unmatched", "splits", "deliveries")


def table(settings: Settings, name: str) -> pd.DataFrame:
    df = pd.read_parquet(settings.table_path(name)).drop(columns=VOLATILE, errors="ignore")
    return df.sort_values(list(df.columns[:2])).reset_index(drop=True)


def patches_by_sample(settings: Settings) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    df = read_patch_samples(settings).sort_values("sample_id")
    rows = df["row"].tolist()
    loc, cap = read_patches(settings, rows, "localizer"), read_patches(settings, rows, "captioner")
    return {sid: (loc[i], cap[i]) for i, sid in enumerate(df["sample_id"])}


def started(home: Path, stage: str) -> bool:
    if stage == "patches":  # the patch store being created (its recipe attributes come last), then cut
        return (home / "patches.zarr" / "zarr.json").exists()
    volumes = home / "volumes.zarr"
    return volumes.is_dir() and sum(p.is_dir() for p in volumes.iterdir()) >= 2


def kill_mid(home: Path, raw: Path, stage: str, env: dict) -> int:
    proc = subprocess.Popen([sys.executable, "-m", "flows.cli", "--home", str(home), "refresh", "--raw", str(raw)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + 300
    while proc.poll() is None and not started(home, stage) and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.wait(timeout=30)


@pytest.mark.parametrize("stage", ["patches", pytest.param("ingest", marks=pytest.mark.slow)])
def test_kill_9_mid_refresh_then_rerun_equals_a_clean_run(stage, prefect_server, refreshed, tiny_raw, tmp_path,
                                                          fast_patches):
    home = tmp_path / "home"
    shutil.copytree(refreshed[0] / "secrets", home / "secrets")  # the clean run's pseudonym key
    env = {**prefect_server.env, "PYTHONPATH": str(REPO), "PETCAP_PATCHES__PROCESSES": "false",
           "PETCAP_PATCHES__WORKERS": "1", "PETCAP_PATCHES__COMMIT_EVERY": "2"}
    rc = kill_mid(home, tiny_raw, stage, env)
    assert rc == -signal.SIGKILL, f"the refresh ended ({rc}) before it could be killed mid-{stage}"

    dataset_refresh(home=str(home), raw_dir=str(tiny_raw))
    again, clean = Settings(home=home), Settings(home=refreshed[0])
    for name in TABLES:
        pd.testing.assert_frame_equal(table(again, name), table(clean, name), obj=name)
    got, want = patches_by_sample(again), patches_by_sample(clean)
    assert got.keys() == want.keys() and len(got) > 0
    for sid in want:
        for a, b in zip(got[sid], want[sid]):
            np.testing.assert_array_equal(a, b, err_msg=sid)
    again_patches = read_patch_samples(again)
    assert again_patches["sample_id"].is_unique and not again_patches["removed"].any()
