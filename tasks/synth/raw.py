"""What the generator hands the writers: one study's volumes and header facts, before any file exists.

Arrays are in (z, y, x) order; geometry is ITK/DICOM LPS: ``spacing`` and ``origin`` in (x, y, z) mm,
``direction`` a row-major 3x3 of the image axes. The origin is the centre of voxel (0, 0, 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from data_contracts.findings import Tracer, Vendor
from data_contracts.records import LesionTruth

IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


@dataclass
class Volume:
    array: np.ndarray  # (z, y, x)
    spacing: tuple[float, float, float]  # (x, y, z) mm
    origin: tuple[float, float, float]  # (x, y, z) mm, LPS, centre of voxel (0, 0, 0)
    direction: tuple[float, ...] = IDENTITY

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]


@dataclass
class RawStudy:
    study_key: str  # raw folder name, as a hospital export names it
    patient_id: str  # the hospital's ID (MRN): PHI, pseudonymised at ingestion
    patient_name: str  # DICOM PN, "FAMILY^GIVEN": PHI
    birth_date: str  # YYYYMMDD: PHI
    sex: str  # "M" | "F"
    age: int
    height_m: float
    weight_kg: float
    vendor: Vendor
    tracer: Tracer
    injected_dose_mbq: float  # at injection time
    injection_time: datetime
    acquisition_time: datetime  # PET series start; decay correction is to this time
    ct: Volume  # HU, int16-representable
    pet: Volume  # SUVbw on the PET grid, float32 (what the scanner would report)
    lesions: Volume  # uint8 binary mask on the CT grid, as nnU-Net writes it
    anatomy: Volume  # uint8 segmenter class labels on the CT grid (data_contracts.segmentation), as written
    truth: list[LesionTruth] = field(default_factory=list)
    source_format: str = "nifti"  # "dicom" | "nifti"
    pet_calibration: float = 1.0  # vendor's SUV calibration factor already applied to ``pet``
    report: str = ""  # free-text report, filled by tasks.synth.reports
    scan_range: str = "vertex to toes"  # what the images cover: "skull base to mid-thigh", "vertex to mid-thigh", ...
    arms_up: bool = False
    mimics: list[str] = field(default_factory=list)  # benign look-alikes imaged (brown fat, reactive node, ...)
    response: str = ""  # follow-up only: "complete", "partial", "stable", "progression" relative to the baseline
