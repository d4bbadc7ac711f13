"""With no site key configured, each home gets its own random key, made once, owner-only, never shown."""

from __future__ import annotations

import logging
import pickle
import stat

import pytest

from data_contracts import site_key
from data_contracts.errors import PrerequisiteError
from data_contracts.settings import Settings
from tasks.ingest.pseudonym import study_pseudonym


def test_generated_per_home_stable_owner_only_and_warned_once(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("PETCAP_PSEUDONYM_KEY", raising=False)
    site_key._warned.clear()
    a = Settings(home=tmp_path / "a")
    assert not (tmp_path / "a" / "secrets").exists()  # made on first use, not by building settings
    with caplog.at_level(logging.WARNING):
        first = study_pseudonym("ACC1", a.pseudonym_key)
        again = study_pseudonym("ACC1", Settings(home=tmp_path / "a").pseudonym_key)
    path = site_key.key_path(tmp_path / "a")
    key = path.read_text().strip()
    assert first == again and len(key) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert caplog.text.count("PETCAP_PSEUDONYM_KEY is not set") == 1 and "Back this file up" in caplog.text
    assert key not in caplog.text
    assert study_pseudonym("ACC1", Settings(home=tmp_path / "b").pseudonym_key) != first  # another home
    # Never printed, dumped or pickled.
    assert key not in repr(a) + str(a.model_dump()) + a.model_dump_json()
    assert key.encode() not in pickle.dumps(a)
    assert study_pseudonym("ACC1", pickle.loads(pickle.dumps(a)).pseudonym_key) == first
    # A process that receives the settings where the key file is missing fails; it never makes a second key.
    elsewhere = pickle.loads(pickle.dumps(Settings(home=tmp_path / "c")))
    with pytest.raises(PrerequisiteError, match="not on this machine"):
        study_pseudonym("ACC1", elsewhere.pseudonym_key)
    assert not site_key.key_path(tmp_path / "c").exists()


def test_a_configured_key_is_used_and_nothing_generated(tmp_path, monkeypatch):
    monkeypatch.setenv("PETCAP_PSEUDONYM_KEY", "site-secret")
    s = Settings(home=tmp_path)
    assert study_pseudonym("ACC1", s.pseudonym_key) == study_pseudonym("ACC1", "site-secret")
    assert not site_key.key_path(tmp_path).exists()
