"""Pseudonyms for the hospital's patient and study identifiers (keyed HMAC-SHA256).

Identifiers leave ingestion only as ``P`` + 12 hex (patients) or ``S`` + 12 hex (studies), the patterns of
``data_contracts.records``. The HMAC key is a per-site secret (``settings.pseudonym_key``): without it the
raw ID cannot be recovered or confirmed by hashing guesses, and the same ID always maps to the same
pseudonym, so re-deliveries and follow-up studies of one patient stay linkable. Patient and study IDs are
hashed in separate domains so a study key that happens to equal an MRN gets an unrelated pseudonym.
"""

from __future__ import annotations

import hashlib
import hmac

from pydantic import SecretStr

DIGITS = 12  # 48 bits: collision-free for any realistic cohort (birthday bound ~ 16 M ids)


def _digest(domain: str, raw_id: str, key: SecretStr | str) -> str:
    secret = key.get_secret_value() if isinstance(key, SecretStr) else key
    if not raw_id:
        raise ValueError(f"empty {domain} identifier cannot be pseudonymised")
    mac = hmac.new(secret.encode("utf-8"), f"{domain}\x00{raw_id}".encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()[:DIGITS]


def patient_pseudonym(patient_id: str, key: SecretStr | str) -> str:
    """``P`` + 12 hex: the pseudonym of a hospital patient ID (MRN)."""
    return "P" + _digest("patient", patient_id, key)


def study_pseudonym(study_key: str, key: SecretStr | str) -> str:
    """``S`` + 12 hex: the pseudonym of a raw study (its folder name / key in the manifest)."""
    return "S" + _digest("study", study_key, key)
