"""Atomic file writes: a temporary file beside the target, renamed into place only when complete.

A crash mid-write leaves the old file (or none), never a half-written one; every stage writes through this.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


PRIVATE = 0o600  # the default: owner only (tables, checkpoints, keys)
SHARED = 0o644  # documents people read: reports, figures


@contextmanager
def atomic_open(path: Path | str, mode: int = PRIVATE) -> Iterator[BinaryIO]:
    """Open a temporary binary file beside ``path``; it replaces ``path`` only if the block finishes, with
    permissions ``mode``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
