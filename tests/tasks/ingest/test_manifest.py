"""Manifest rows are validated one by one: a bad row is one rejection and the rest go on."""

from __future__ import annotations

import pandas as pd
import pytest

from data_contracts.errors import UsageError
from data_contracts.tables import MANIFEST
from tasks.ingest.manifest import read_manifest
from tasks.ingest.pseudonym import study_pseudonym

KEY = "test-key"


def _row(key, **kw):
    return {"study_key": key, "patient_id": f"MRN{key}", "vendor": "GE", "tracer": "FDG",
            "ct_path": f"studies/{key}/ct.nii.gz", "pet_path": f"studies/{key}/pet.nii.gz",
            "lesions_path": f"studies/{key}/lesions.nii.gz", "anatomy_path": "", "report_path": "", **kw}


def test_bad_rows_are_rejected_and_good_rows_kept(tmp_path):
    rows = [_row("A"), _row("B", vendor="Philips"), _row("C", patient_id=""), _row("D"), _row("D"),
            _row("E", ct_path="studies/A/ct.nii.gz"), _row("", vendor="GE"), _row("F", tracer="X"), _row("G")]
    path = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=list(MANIFEST.columns)).to_csv(path, index=False)
    checked = read_manifest(path, KEY)
    assert [r.study_key for r in checked.rows] == ["G"]  # A shares its CT with E: both rejected
    got = sorted((q.item, q.reason, q.source) for q in checked.rejected)
    sid = lambda k: study_pseudonym(k, KEY)  # noqa: E731
    assert got == sorted([
        (sid("B"), "invalid_manifest_row", "manifest.csv:row 2"),
        (sid("C"), "invalid_manifest_row", "manifest.csv:row 3"),
        (sid("D"), "duplicate_study_key", "manifest.csv:row 4"),
        (sid("D"), "duplicate_study_key", "manifest.csv:row 5"),
        (sid("A"), "duplicate_study_folder", "manifest.csv:row 1"),
        (sid("E"), "duplicate_study_folder", "manifest.csv:row 6"),
        ("row-7", "invalid_manifest_row", "manifest.csv:row 7"),
        (sid("F"), "invalid_manifest_row", "manifest.csv:row 8"),
    ])
    text = " ".join(q.model_dump_json() for q in checked.rejected)
    assert "MRN" not in text and "'B'" not in text and "Philips" in text  # values shown, identifiers not


def test_an_unusable_manifest_is_one_clear_error(tmp_path):
    path = tmp_path / "manifest.csv"
    path.write_text("study,who\n1,2\n")
    with pytest.raises(UsageError, match="missing columns"):
        read_manifest(path, KEY)
