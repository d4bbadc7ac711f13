from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from data_contracts.geometry import Geometry
from tasks.realism.facts import _native_pet, native_pet_cv
from tasks.realism.images import LAB

CT = Geometry((40, 40, 40), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), (1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0))
PET = CT.with_spacing((4.0, 4.0, 4.0))  # (20, 20, 20), the same field of view


def _liver_on_ct() -> np.ndarray:
    anat = np.zeros(CT.shape, np.uint16)
    anat[4:36, 4:36, 4:36] = LAB["liver"]  # PET voxels 2..17 on each axis
    return anat


def _checkerboard_pet() -> np.ndarray:
    z, y, x = np.indices(PET.shape)
    return (2.0 + 0.2 * np.where((z + y + x) % 2, 1.0, -1.0)).astype(np.float32)  # SD / mean = 0.1 per voxel


def test_native_pet_cv_measures_on_the_pet_grid():
    """A +-10 % checkerboard on the PET's own grid reads CV 0.10 there (resampled onto the CT grid it would
    average away); the label map on the CT grid is moved onto the PET grid."""
    pet = _checkerboard_pet()
    cv = native_pet_cv(pet, PET, _liver_on_ct(), np.zeros(CT.shape, np.uint16), CT)
    assert cv == pytest.approx(0.10, abs=1e-6)  # liver 16^3 PET voxels eroded by 8 mm: 12^3, balanced


def test_native_pet_cv_leaves_lesions_out_and_needs_a_liver():
    pet = _checkerboard_pet()
    inst = np.zeros(CT.shape, np.uint16)
    inst[6:10, 6:10, 6:10] = 1  # PET voxels 3..4, inside the liver
    pet[3:5, 3:5, 3:5] = 40.0  # a hot lesion: counted, it would raise the CV far above 0.1
    cv = native_pet_cv(pet, PET, _liver_on_ct(), inst, CT)
    assert cv == pytest.approx(0.10, abs=2e-3)
    assert np.isnan(native_pet_cv(pet, PET, np.zeros(CT.shape, np.uint16), inst, CT))


def test_native_pet_is_the_stored_pet_when_ingest_kept_its_grid(tmp_path: Path):
    pet = _checkerboard_pet()
    row = SimpleNamespace(pet_path="missing/pet.nii.gz")
    native = SimpleNamespace(pet_shape=PET.shape, pet_spacing_mm=PET.spacing)
    stored = SimpleNamespace(pet=pet, pet_geometry=PET)
    array, grid = _native_pet(tmp_path, row, stored, native)
    assert grid == PET and np.array_equal(array, pet)  # no raw read: the raw PET is not even there
    # a store whose PET was resampled (configured spacing, or onto the CT grid) falls back to the raw PET
    resampled = SimpleNamespace(pet=np.zeros(CT.shape, np.float32), pet_geometry=CT)
    assert _native_pet(tmp_path, row, resampled, native) is None  # unreadable raw PET: not measured
