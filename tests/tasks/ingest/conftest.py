"""A tiny raw delivery made by the project's generator, with its studies also kept in memory as the truth."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from data_contracts.settings import Settings, SynthSettings
from data_contracts.tables import MANIFEST, ManifestRow
from tasks.synth.cohort import generate_study, plan_cohort, synthesize_cohort
from tasks.synth.raw import RawStudy

PATIENTS = 3


@dataclass
class Delivery:
    root: Path
    rows: dict[str, ManifestRow]  # study key -> manifest row
    studies: dict[str, RawStudy]  # study key -> the generated study (arrays as the generator made them)

    def key(self, fmt: str, n: int = 0) -> str:
        """The n-th study delivered as ``fmt`` ("dicom" | "nifti")."""
        return [k for k, s in self.studies.items() if s.source_format == fmt][n]

    def copy(self, dest: Path) -> Delivery:
        shutil.copytree(self.root, dest)
        return Delivery(dest, self.rows, self.studies)


def _synth_settings(tmp: Path) -> tuple[Settings, int]:
    """Settings and the first seed whose tiny cohort holds both DICOM and at least two NIfTI studies."""
    settings = Settings(home=tmp, synth=SynthSettings(dicom_vendors=("Siemens", "GE"), workers=1,
                                                         lesion_free_fraction=0.0))
    for seed in range(50):
        formats = [p.source_format for p in plan_cohort(PATIENTS, seed, "tiny", settings)]
        if formats.count("dicom") >= 1 and formats.count("nifti") >= 2:
            return settings, seed
    raise RuntimeError("no seed gives a mixed DICOM/NIfTI cohort")


@pytest.fixture(scope="session")
def delivery(tmp_path_factory) -> Delivery:
    """Written once per session by ``synthesize_cohort``; tests that change files use ``raw``."""
    root = tmp_path_factory.mktemp("delivery")
    settings, seed = _synth_settings(tmp_path_factory.mktemp("synth_home"))
    synthesize_cohort(root, patients=PATIENTS, seed=seed, scale="tiny", settings=settings, progress=False)
    rows = {r.study_key: r for r in MANIFEST.records(MANIFEST.read(root / "manifest.csv"))}
    studies = {p.study_key: generate_study(p).study for p in plan_cohort(PATIENTS, seed, "tiny", settings)}
    assert rows.keys() == studies.keys()
    return Delivery(root, rows, studies)


@pytest.fixture
def raw(delivery, tmp_path) -> Delivery:
    """A private copy of the delivery (tests damage it)."""
    return delivery.copy(tmp_path / "raw")


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(home=tmp_path / "home")
