"""Output writers of one captioned study. Each takes the answer (``StudyCaptions``) and the lesions' patches and writes
one file into the output folder, atomically; ``caption_study`` runs the configured list in order.

    FigureWriter    report.png      (the visual report)
    JsonWriter      captions.json   (the machine-readable answer; last, so its presence means the folder is whole)

A new output (a DICOM SR or SEG for the PACS) is one more class with ``name`` and ``write``, added to
``default_writers`` or passed by the caller.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol

import numpy as np

from data_contracts.atomic import SHARED, atomic_open
from tasks.caption_output.figure import REPORT_NAME, write_report
from tasks.caption_output.records import StudyCaptions

JSON_NAME = "captions.json"
Patches = dict[int, dict[str, np.ndarray]]  # {instance: {"localizer" | "captioner": (3, z, y, x)}}


class OutputWriter(Protocol):
    name: str  # the key of its file in the result ("json", "report", ...)

    def write(self, result: StudyCaptions, patches: Patches, out_dir: Path) -> Path: ...


def write_json(result: StudyCaptions, out_dir: Path) -> Path:
    path = Path(out_dir) / JSON_NAME
    with atomic_open(path, SHARED) as f:
        f.write(json.dumps(result.to_json(), indent=2).encode())
    return path


class JsonWriter:
    name = "json"

    def write(self, result: StudyCaptions, patches: Patches, out_dir: Path) -> Path:
        return write_json(result, out_dir)


class FigureWriter:
    name = "report"

    def __init__(self, suv_max: float = 15.0, ct_window: tuple[float, float] = (-160.0, 240.0)):
        self.suv_max, self.ct_window = suv_max, ct_window

    def write(self, result: StudyCaptions, patches: Patches, out_dir: Path) -> Path:
        return write_report(result, patches, out_dir, ct_window=self.ct_window, suv_max=self.suv_max)


def default_writers(suv_max: float = 15.0) -> list[OutputWriter]:
    """The figure first, then the JSON (written last, so its presence means the folder is complete)."""
    return [FigureWriter(suv_max), JsonWriter()]


__all__ = ["JSON_NAME", "REPORT_NAME", "FigureWriter", "JsonWriter", "OutputWriter", "default_writers", "write_json"]
