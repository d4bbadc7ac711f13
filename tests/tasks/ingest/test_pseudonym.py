"""Pseudonyms: the record patterns, stable per key, unlinkable across keys, separate per kind of ID."""

from __future__ import annotations

import re

import pytest
from pydantic import SecretStr

from data_contracts.records import PSEUDO_PATIENT, PSEUDO_STUDY
from tasks.ingest.pseudonym import patient_pseudonym, study_pseudonym


def test_patterns_and_stability():
    key = SecretStr("site-secret")
    p, s = patient_pseudonym("MRN0400117", key), study_pseudonym("EXAM_0001", key)
    assert re.fullmatch(PSEUDO_PATIENT, p) and re.fullmatch(PSEUDO_STUDY, s)
    assert p == patient_pseudonym("MRN0400117", "site-secret")  # str and SecretStr keys agree
    assert "0400117" not in p


def test_key_and_domain_change_the_pseudonym():
    a = patient_pseudonym("12345", "key-a")
    assert a != patient_pseudonym("12345", "key-b")
    assert a[1:] != study_pseudonym("12345", "key-a")[1:]  # an MRN equal to a study key: unrelated pseudonyms
    assert a != patient_pseudonym("12346", "key-a")


def test_empty_id_is_refused():
    with pytest.raises(ValueError):
        patient_pseudonym("", "k")
