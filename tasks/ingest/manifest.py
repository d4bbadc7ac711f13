"""Read a delivery's manifest row by row: good rows go on, each bad row becomes one rejection.

``MANIFEST.read`` validates a table as a whole, so one bad row (a duplicate key, an unknown vendor, an empty
patient id) would stop the whole delivery. Here every row is validated on its own and the delivery-level
rules are checked across rows:

* ``invalid_manifest_row``  a field is missing, empty or not one of its allowed values (vendor, tracer)
* ``duplicate_study_key``   two or more rows carry the same study key: all of them are rejected (which one
                            is right cannot be told), the key's earlier ingest is left as it is
* ``duplicate_study_folder`` two rows with different keys point at the same CT, PET or lesion file/folder

A rejection names the row (``manifest.csv:row N``, N counting data rows from 1) and the field, never the raw
study key or patient id; its ``item`` is the key's pseudonym when the row has a key, else ``row-N``.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from pydantic import SecretStr, ValidationError

from data_contracts.errors import UsageError
from data_contracts.tables import MANIFEST, ManifestRow, QuarantineRow
from tasks.ingest.pseudonym import study_pseudonym

STAGE = "ingest"
FOLDER_FIELDS = ("ct_path", "pet_path", "lesions_path")


@dataclass(frozen=True)
class ManifestCheck:
    rows: list[ManifestRow]  # the rows that passed, in file order
    rejected: list[QuarantineRow] = field(default_factory=list)


def read_manifest(path: Path, key: SecretStr | str) -> ManifestCheck:
    """Every valid row of the manifest at ``path`` plus one quarantine row per rejected manifest row.

    Raises ``UsageError`` only when the file as a whole is unusable (not a CSV, required columns missing).
    """
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise UsageError(f"not a readable CSV ({type(e).__name__})", path=str(path), reason="unreadable_manifest",
                         hint="deliver manifest.csv as comma-separated text with a header row") from None
    required = [c for c in MANIFEST.columns if ManifestRow.model_fields[c].is_required()]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise UsageError(f"missing columns {missing}", path=str(path), reason="unreadable_manifest",
                         hint=f"the manifest needs the columns {list(MANIFEST.columns)}")
    at = datetime.now(timezone.utc)
    source = path.name
    rejected: list[QuarantineRow] = []
    candidates: list[tuple[int, ManifestRow]] = []

    def reject(n: int, study_key: str, reason: str, detail: str) -> None:
        item = study_pseudonym(study_key, key) if study_key else f"row-{n}"
        rejected.append(QuarantineRow(stage=STAGE, item=item, source=f"{source}:row {n}", reason=reason,
                                      detail=detail, at=at))

    for n, record in enumerate(df.to_dict("records"), start=1):
        values = {k: (v.strip() if isinstance(v, str) else v) for k, v in record.items() if k in MANIFEST.columns}
        values = {k: v for k, v in values.items() if not (v == "" and not ManifestRow.model_fields[k].is_required())}
        study_key = values.get("study_key", "")
        try:
            candidates.append((n, ManifestRow.model_validate(values)))
        except ValidationError as e:
            err = e.errors()[0]
            name = ".".join(map(str, err["loc"])) or "row"
            shown = "" if name in ("study_key", "patient_id") else f" (value {str(err.get('input'))[:40]!r})"
            reject(n, study_key, "invalid_manifest_row", f"field {name}: {err['msg']}{shown}")

    keys = Counter(r.study_key for _, r in candidates)
    owners: dict[str, set[str]] = defaultdict(set)
    for _, r in candidates:
        for name in FOLDER_FIELDS:
            owners[_norm(getattr(r, name))].add(r.study_key)
    rows = []
    for n, r in candidates:
        if keys[r.study_key] > 1:
            reject(n, r.study_key, "duplicate_study_key",
                   f"{keys[r.study_key]} rows carry this study key; none of them is ingested")
            continue
        shared = [name for name in FOLDER_FIELDS if len(owners[_norm(getattr(r, name))]) > 1]
        if shared:
            others = len(owners[_norm(getattr(r, shared[0]))]) - 1
            reject(n, r.study_key, "duplicate_study_folder",
                   f"{shared[0]} is also the {shared[0]} of {others} other row(s); none of them is ingested")
            continue
        rows.append(r)
    return ManifestCheck(rows, rejected)


def _norm(rel: str) -> str:
    """A manifest path as one spelling: POSIX, no ``./``, no trailing slash."""
    return Path(rel.replace("\\", "/")).as_posix().rstrip("/")
