"""How ingestion names a study's files in errors, quarantine rows and logs: by the study's pseudonym.

A raw study folder is often an accession number and sometimes a patient's name, so it never appears in what
ingestion writes or logs: ``S1a2b…/ct.nii.gz`` names the CT of study ``S1a2b…``; the operator finds the folder by
computing the pseudonyms of the manifest's keys (``tasks.ingest.pseudonym.study_pseudonym``).
"""

from __future__ import annotations

from pathlib import Path

from data_contracts.settings import RawLayout
from data_contracts.tables import ManifestRow


def shown_sources(row: ManifestRow, study_id: str) -> dict[str, str]:
    """How each input file is named in errors, quarantine rows and logs: the study's pseudonym and the file's
    own name (``S1a2b…/ct.nii.gz``, ``S1a2b…/pet/IM0007.dcm``), never the raw folder name (an accession number or
    a patient's name)."""
    out = {role: f"{study_id}/{Path(rel).name}" for role, rel in
           (("ct", row.ct_path), ("pet", row.pet_path), ("lesions", row.lesions_path),
            ("anatomy", row.anatomy_path or "anatomy.nii.gz"))}
    out["pet_sidecar"] = RawLayout.sidecar(out["pet"]).as_posix()
    return out


def redact(text: str, row: ManifestRow, study_id: str, raw_root: Path) -> str:
    """``text`` (an unexpected exception's message) with the drop folder, the raw study key, the patient ID
    and the study's raw folder names replaced by the pseudonym."""
    folders = {Path(rel).parent.as_posix() for rel in (row.ct_path, row.pet_path, row.lesions_path)}
    for raw in sorted({str(raw_root.resolve()), str(raw_root), *folders, row.study_key, row.patient_id},
                      key=len, reverse=True):
        if raw and raw not in (".", "/"):
            text = text.replace(raw, study_id)
    return text
