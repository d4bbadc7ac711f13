"""Lesion instances of a study: connected components of the lesion mask, written as the instance map, and the
per-lesion statistics (bounding box, centroid, volume, SUVmax/SUVmean on the stored CT grid, edge contact,
anatomy label under the lesion)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from data_contracts.geometry import Geometry
from data_contracts.records import Lesion
from tasks.ingest import store
from tasks.ingest.readers import IngestError

CONNECTIVITY = np.ones((3, 3, 3), dtype=bool)  # 26-connectivity


def _foreground_box(mask: np.ndarray) -> tuple[slice, slice, slice] | None:
    """Bounding box of the nonzero voxels, found with three reductions instead of a full argwhere."""
    zs = np.flatnonzero(mask.any(axis=(1, 2)))
    if zs.size == 0:
        return None
    sub = mask[zs[0]:zs[-1] + 1]
    ys = np.flatnonzero(sub.any(axis=(0, 2)))
    xs = np.flatnonzero(sub.any(axis=(0, 1)))
    return slice(zs[0], zs[-1] + 1), slice(ys[0], ys[-1] + 1), slice(xs[0], xs[-1] + 1)


def label_lesions(writer: store.StudyWriter, mask_image: sitk.Image, anatomy: Callable[[], sitk.Image | None],
                  pet_suv: sitk.Image, grid: Geometry, study_id: str, min_voxels: int, source: str) -> list[Lesion]:
    """Label connected components, write the instance map, and measure each lesion.

    ``anatomy()`` gives the anatomy label map (or None); it is asked for only once the lesions are labelled,
    written and measured, so ingestion may still be storing the map meanwhile."""
    mask = sitk.GetArrayViewFromImage(mask_image)
    box = _foreground_box(mask)
    out: list[Lesion] = []
    if box is None:  # a lesion-free (normal) study: an all-zero instance map and no lesions
        writer.create("lesions", grid)
        return out
    labels, n = ndimage.label(mask[box] > 0, structure=CONNECTIVITY)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    keep = np.flatnonzero(sizes >= min_voxels)
    keep = keep[keep > 0]
    if keep.size > np.iinfo(np.uint16).max:
        raise IngestError("too_many_lesions", source, f"{keep.size} components")
    remap = np.zeros(n + 1, dtype=np.uint16)
    remap[keep] = np.arange(1, keep.size + 1, dtype=np.uint16)
    instances = remap[labels]  # (z, y, x) inside the box; 0 = background or dropped
    writer.create("lesions", grid)[box] = instances

    origin = np.array([s.start for s in box])
    boxes = ndimage.find_objects(instances)
    for i, sl in enumerate(boxes, start=1):
        inside = instances[sl] == i  # this lesion's voxels within its own bounding box
        lo, hi = origin + [s.start for s in sl], origin + [s.stop for s in sl]
        # SUV on the stored grid within the lesion's box: the values the stored PET has there.
        suv_image = grid.crop(tuple(lo), tuple(hi)).resample(pet_suv, sitk.sitkLinear, sitk.sitkFloat32, 0.0)
        suv = sitk.GetArrayViewFromImage(suv_image)[inside]  # ``suv_image`` stays alive while viewed
        voxels = int(inside.sum())
        centroid = grid.index_to_mm(np.argwhere(inside).mean(axis=0) + lo)
        suv_max = max(0.0, float(suv.max()))  # negative SUV (noise in a cold region) reads as 0
        out.append(Lesion(
            study_id=study_id, instance=i, bbox=(*map(int, lo), *map(int, hi)),
            centroid_mm=tuple(float(v) for v in centroid), volume_ml=voxels * grid.voxel_ml, voxels=voxels,
            suv_max=suv_max, suv_mean=min(suv_max, max(0.0, float(suv.mean()))),
            touches_edge=bool(np.any(lo == 0) or np.any(hi == np.asarray(grid.shape))),
        ))
    anatomy_image = anatomy()
    if anatomy_image is None:
        return out
    labels = sitk.GetArrayViewFromImage(anatomy_image)[box]
    return [lesion.model_copy(update={"anatomy_label": _label_under(labels[sl][instances[sl] == i])})
            for i, (sl, lesion) in enumerate(zip(boxes, out), start=1)]


def _label_under(labels: np.ndarray) -> int | None:
    """The most frequent structure label under a lesion's voxels; None when it lies outside every structure."""
    counts = np.bincount(labels)
    counts[0] = 0  # "outside every structure" is not a location
    return int(np.argmax(counts)) if counts.sum() else None
