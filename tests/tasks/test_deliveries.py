"""The cumulative delivery log: drops accumulate, a study leaves only when withdrawn, nothing changes on refusal."""

from __future__ import annotations

import pandas as pd
import pytest

from data_contracts.errors import UsageError
from data_contracts.settings import Settings
from tasks.deliveries import (
    RemovalRefused,
    active,
    log_sha256,
    read_log,
    register_delivery,
    withdraw,
)
from tasks.ingest.pseudonym import study_pseudonym


def write_drop(root, keys):
    root.mkdir(parents=True, exist_ok=True)
    rows = [{"study_key": k, "patient_id": f"MRN{k}", "vendor": "GE", "tracer": "FDG",
             "ct_path": f"studies/{k}/ct.nii.gz", "pet_path": f"studies/{k}/pet.nii.gz",
             "lesions_path": f"studies/{k}/lesions.nii.gz", "anatomy_path": "", "report_path": f"reports/{k}.txt"}
            for k in keys]
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path / "home")


def ids(settings, keys):
    return {study_pseudonym(k, settings.pseudonym_key) for k in keys}


def test_drops_accumulate_and_a_rerun_changes_nothing(settings, tmp_path):
    a = write_drop(tmp_path / "drop-a", ["A1", "A2"])
    b = write_drop(tmp_path / "drop-b", ["B1"])
    first = register_delivery(settings, a)
    assert (first.added, first.unchanged, first.registered) == (2, 0, 2)
    again = register_delivery(settings, a)
    assert (again.added, again.unchanged, again.registered) == (0, 2, 2)
    second = register_delivery(settings, b)
    assert (second.added, second.registered) == (1, 3)
    assert {r.study_id for r in active(settings)} == ids(settings, ["A1", "A2", "B1"])
    assert {r.drop for r in read_log(settings)} == {str(a), str(b)}
    assert "A1" not in settings.table_path("deliveries").read_bytes().decode("latin-1")  # pseudonyms only


def test_a_study_missing_from_its_drop_is_refused_then_withdrawn_when_forced(settings, tmp_path):
    a = write_drop(tmp_path / "drop-a", ["A1", "A2"])
    register_delivery(settings, a)
    before = settings.table_path("deliveries").read_bytes()
    write_drop(a, ["A1"])  # the drop was rewritten without A2
    with pytest.raises(RemovalRefused, match="no longer in its manifest") as e:
        register_delivery(settings, a)
    assert e.value.exit_code == 2 and "--allow-removals" in str(e.value)
    assert settings.table_path("deliveries").read_bytes() == before  # nothing written
    out = register_delivery(settings, a, allow_removals=True)
    assert out.withdrawn == [study_pseudonym("A2", settings.pseudonym_key)]
    (row,) = [r for r in read_log(settings) if r.withdrawn_at is not None]
    assert row.withdrawn_reason.startswith("absent_from_delivery")


def test_withdraw_names_unknown_keys_and_changes_the_log_hash(settings, tmp_path):
    register_delivery(settings, write_drop(tmp_path / "drop-a", ["A1", "A2"]))
    h0 = log_sha256(settings)
    with pytest.raises(UsageError, match="never delivered"):
        withdraw(settings, ["NOPE"], "consent withdrawn")
    with pytest.raises(UsageError, match="reason"):
        withdraw(settings, ["A1"], " ")
    assert withdraw(settings, ["A1"], "consent withdrawn") == [study_pseudonym("A1", settings.pseudonym_key)]
    assert {r.study_id for r in active(settings)} == ids(settings, ["A2"])
    assert log_sha256(settings) != h0 != "none"


def test_log_hash_differs_between_drops_and_ignores_where_the_folder_lies(tmp_path):
    s1, s2, s3 = (Settings(home=tmp_path / f"home{i}", pseudonym_key="site-key") for i in range(3))
    register_delivery(s1, write_drop(tmp_path / "x" / "drop", ["A1"]))
    register_delivery(s2, write_drop(tmp_path / "y" / "drop", ["A1"]))  # same delivery, elsewhere
    register_delivery(s3, write_drop(tmp_path / "z" / "drop", ["A9"]))  # another delivery
    assert log_sha256(s1) == log_sha256(s2) != log_sha256(s3)
