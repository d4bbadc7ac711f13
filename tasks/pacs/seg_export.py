"""The lesion instances of a captioned study as one DICOM Segmentation (highdicom), on the source CT series.

One segment per lesion instance, numbered 1..N in instance order, labelled "lesion <instance>"; each frame
references the CT instance it lies on, so a viewer overlays the SEG on the CT it came from.
"""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from data_contracts.geometry import Geometry
from tasks.pacs.dicom_series import slice_indices

SEG_SERIES_NUMBER = 901


@dataclass(frozen=True)
class Algorithm:
    """The algorithm's name and version as DICOM records them (the registered model version)."""

    name: str = "petcap"
    version: str = "unregistered"
    manufacturer: str = "petcap"

    def identification(self) -> hd.AlgorithmIdentificationSequence:
        return hd.AlgorithmIdentificationSequence(name=self.name, version=self.version,
                                                  family=codes.cid7162.ArtificialIntelligence)


def segment_numbers(instances: list[int]) -> dict[int, int]:
    """Lesion instance -> SEG segment number (1..N, instance order)."""
    return {inst: k for k, inst in enumerate(sorted(instances), start=1)}


def lesion_seg(ct: list[pydicom.Dataset], labels: np.ndarray, grid: Geometry, tracking: dict[int, str],
               algorithm: Algorithm, series_number: int = SEG_SERIES_NUMBER,
               description: str = "petcap lesions") -> hd.seg.Segmentation:
    """A binary SEG of the lesion instances in ``tracking`` (instance -> tracking UID, shared with the SR)
    from ``labels`` ((z, y, x) instance labels on ``grid``, the CT's grid).

    Raises ``SeriesMismatch`` when the CT instances do not lie on ``grid``; ValueError for no instances (a
    lesion-free study has no SEG).
    """
    if not tracking:
        raise ValueError("a SEG needs at least one lesion")
    numbers = segment_numbers(list(tracking))
    ks = slice_indices(ct, grid, source=f"series {ct[0].SeriesInstanceUID}")
    frames = np.asarray(labels)[ks]  # (n_instances_of_ct, rows, cols), CT instance order
    label_map = np.zeros(frames.shape, dtype=np.uint16)
    for inst, number in numbers.items():
        label_map[frames == inst] = number
    descriptions = [hd.seg.SegmentDescription(
        segment_number=number, segment_label=f"lesion {inst}",
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Lesion, algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
        algorithm_identification=algorithm.identification(),
        tracking_uid=tracking[inst], tracking_id=f"lesion {inst}") for inst, number in numbers.items()]
    return hd.seg.Segmentation(
        source_images=ct, pixel_array=label_map, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions, series_instance_uid=generate_uid(), series_number=series_number,
        sop_instance_uid=generate_uid(), instance_number=1, manufacturer=algorithm.manufacturer,
        manufacturer_model_name=algorithm.name, software_versions=algorithm.version,
        device_serial_number="0", series_description=description, omit_empty_frames=True)
