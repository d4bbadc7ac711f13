"""STOW-RS: a captioned study's SEG and SR back to the PACS they came from.

A rejection (HTTP 4xx, or a STOW answer that lists failed instances) is ``PacsRejected`` with reason
``stow_rejected``; an unreachable PACS is ``PacsUnreachable`` (retryable). The files stay in the output folder
either way, so a push can be repeated; the PACS keeps one copy of an instance stored twice (same SOP Instance UID).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom

from data_contracts.settings import PacsSettings
from tasks.pacs import dicomweb

log = logging.getLogger(__name__)


def push_files(cfg: PacsSettings, paths: list[Path], item: str) -> list[str]:
    """Store the DICOM files ``paths`` on the PACS; returns their SOP Instance UIDs."""
    datasets = [pydicom.dcmread(p) for p in paths]
    c = dicomweb.client(cfg)
    answer = dicomweb.call("STOW-RS", lambda: c.store_instances(datasets), item, rejected="stow_rejected")
    failed = answer.get("FailedSOPSequence") if answer is not None else None
    if failed:
        reasons = sorted({str(f.get("FailureReason", "?")) for f in failed})
        raise dicomweb.PacsRejected(f"STOW-RS: the PACS refused {len(failed)} of {len(datasets)} instances "
                                    f"(failure reasons {', '.join(reasons)})", item, reason="stow_rejected")
    log.info("%s: stored %d instances on the PACS", item, len(datasets))
    return [str(ds.SOPInstanceUID) for ds in datasets]
