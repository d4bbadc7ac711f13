"""Clinicians' corrections of served lesion locations: recorded once, used as training labels by the next refresh.

``record_correction`` appends one row to ``tables/corrections.parquet`` (atomic; the table never shrinks).
``apply_corrections`` gives the caption samples of corrected lesions the corrected location and a caption made
from it (the report's CT and PET findings kept), and names the correction as the label's source.
"""

from __future__ import annotations

import pandas as pd

from data_contracts.caption import caption_text
from data_contracts.records import CaptionSample
from data_contracts.settings import Settings
from data_contracts.tables import CORRECTIONS, CorrectionRow


def record_correction(settings: Settings, row: CorrectionRow) -> None:
    path = settings.corrections_path
    old = CORRECTIONS.read(path)
    new = CORRECTIONS.frame([row])
    key = list(CORRECTIONS.key)
    merged = pd.concat([old, new], ignore_index=True).drop_duplicates(subset=key, keep="last")
    CORRECTIONS.write(merged, path)


def latest_corrections(settings: Settings) -> dict[tuple[str, int], CorrectionRow]:
    """(study pseudonym, instance) -> the newest correction of that lesion."""
    rows = CORRECTIONS.records(CORRECTIONS.read(settings.corrections_path), source=str(settings.corrections_path))
    out: dict[tuple[str, int], CorrectionRow] = {}
    for row in sorted(rows, key=lambda r: r.at):
        out[(row.study_id, row.instance)] = row
    return out


def apply_corrections(samples: list[CaptionSample], corrections: dict[tuple[str, int], CorrectionRow],
                      findings: dict[tuple[str, int], object]) -> tuple[list[CaptionSample], int]:
    """Samples with corrected locations (and captions remade from them); returns them and how many changed.

    ``findings``: (study pseudonym, finding index) -> the structured finding the sample was read from (its CT and
    PET findings go into the remade caption).
    """
    out, changed = [], 0
    for s in samples:
        fix = corrections.get((s.study_id, s.instance))
        if fix is None or fix.location_id == s.location_id:
            out.append(s)
            continue
        finding = findings[(s.study_id, s.finding_index)]
        out.append(s.model_copy(update={
            "location_id": fix.location_id,
            "caption": caption_text(fix.location_id, finding.ct_finding, finding.pet_finding)}))
        changed += 1
    return out, changed
