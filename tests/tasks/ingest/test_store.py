"""The volume store: completion marker semantics, geometry maths, codecs."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from data_contracts.settings import IngestSettings
from tasks.ingest import store
from data_contracts.geometry import Geometry

SID = "S0123456789ab"


def test_group_without_marker_is_absent_until_committed(tmp_path):
    url = str(tmp_path / "v.zarr")
    assert store.completed(url, SID) is None and store.list_studies(url) == []
    grid = Geometry((4, 6, 8), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    writer = store.StudyWriter(url, SID, IngestSettings())
    writer.create("ct", grid)[...] = np.arange(4 * 6 * 8, dtype=np.int16).reshape(4, 6, 8)
    assert store.list_studies(url) == [] and store.completed(url, SID) is None
    with pytest.raises(KeyError):
        store.open_study(url, SID)
    writer.create("pet", grid)
    writer.create("lesions", grid)
    writer.commit({"vendor": "GE"})
    assert store.list_studies(url) == [SID]
    opened = store.open_study(url, SID)
    assert opened.ct[1, 2, 3] == 1 * 48 + 2 * 8 + 3 and opened.anatomy is None
    assert opened.geometry == grid and opened.attrs["vendor"] == "GE"
    # A rewrite goes into the next version; until it commits, the old study is what readers get.
    again = store.StudyWriter(url, SID, IngestSettings())
    again.create("ct", grid)[...] = 7
    assert store.list_studies(url) == [SID] and store.open_study(url, SID).ct[1, 2, 3] == 1 * 48 + 2 * 8 + 3
    again.create("pet", grid)
    again.create("lesions", grid)
    again.commit({"vendor": "GE"})
    assert store.open_study(url, SID).ct[1, 2, 3] == 7 and store.open_study(url, SID).attrs["version"] == "v2"
    assert not (tmp_path / "v.zarr" / SID / "v1").exists()  # retired after the commit
    # A write interrupted before its commit leaves the committed version alone; the next writer clears it.
    store.StudyWriter(url, SID, IngestSettings()).create("ct", grid)[...] = 9
    assert store.open_study(url, SID).ct[0, 0, 1] == 7 and (tmp_path / "v.zarr" / SID / "v3").exists()
    store.StudyWriter(url, SID, IngestSettings())
    assert not (tmp_path / "v.zarr" / SID / "v3" / "ct").exists()


def test_format_1_groups_are_read_and_retired_on_rewrite(tmp_path):
    import zarr
    url = str(tmp_path / "v.zarr")
    grid = Geometry((2, 3, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    root = zarr.open_group(url, mode="a", zarr_format=3)
    group = root.create_group(SID, attributes={"format": 1})
    for name in ("ct", "pet", "lesions"):
        group.create_array(name, shape=grid.shape, dtype=store.DTYPES[name], attributes=grid.to_attrs())[...] = 3
    group.attrs.update({store.MARKER: {"format": 1}})
    assert store.open_study(url, SID).ct[0, 0, 0] == 3
    writer = store.StudyWriter(url, SID, IngestSettings())
    for name in ("ct", "pet", "lesions"):
        writer.create(name, grid)[...] = 4
    assert store.open_study(url, SID).ct[0, 0, 0] == 3  # still the old arrays until the commit
    writer.commit({})
    assert store.open_study(url, SID).ct[0, 0, 0] == 4
    assert sorted(p.name for p in (tmp_path / "v.zarr" / SID).iterdir() if p.is_dir()) == ["v1"]


@pytest.mark.parametrize("compressor", ["blosc-lz4", "blosc-zstd", "zstd"])
def test_every_codec_round_trips(tmp_path, compressor):
    grid = Geometry((5, 7, 9), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    data = np.random.default_rng(0).normal(0, 3, grid.shape).astype(np.float32)
    writer = store.StudyWriter(str(tmp_path / "v.zarr"), SID, IngestSettings(compressor=compressor))
    array = writer.create("pet", grid)
    array[...] = data
    np.testing.assert_array_equal(array[...], data)


def _rotated_image() -> sitk.Image:
    image = sitk.Image([9, 7, 5], sitk.sitkFloat32)
    image.SetSpacing((0.8, 1.1, 2.5))
    image.SetOrigin((-120.0, 35.5, -900.0))
    c, s = np.cos(0.2), np.sin(0.2)
    image.SetDirection((c, -s, 0.0, s, c, 0.0, 0.0, 0.0, 1.0))
    return image


def test_geometry_matches_simpleitk_index_to_point():
    image = _rotated_image()
    grid = Geometry.of(image)
    for zyx in [(0, 0, 0), (4, 6, 8), (2.5, 1.25, 3.75)]:
        expected = image.TransformContinuousIndexToPhysicalPoint(tuple(float(v) for v in zyx[::-1]))
        np.testing.assert_allclose(grid.index_to_mm(zyx), expected, atol=1e-9)
    crop = grid.crop((1, 2, 3), (4, 6, 8))
    assert crop.shape == (3, 4, 5)
    np.testing.assert_allclose(crop.origin, image.TransformIndexToPhysicalPoint((3, 2, 1)), atol=1e-9)


def test_with_spacing_keeps_the_field_of_view():
    grid = Geometry.of(_rotated_image())
    coarse = grid.with_spacing((1.6, 2.2, 5.0))
    assert coarse.shape == (2, 4, 4)  # 5*2.5/5, 7*1.1/2.2 -> 3.5 rounds to 4, 9*0.8/1.6 -> 4.5 rounds to 4
    np.testing.assert_allclose(coarse.index_to_mm((-0.5, -0.5, -0.5)), grid.index_to_mm((-0.5, -0.5, -0.5)))
    assert coarse.overlaps(grid)
    far = Geometry(grid.shape, grid.spacing, (5000.0, 0.0, 0.0), grid.direction)
    assert not far.overlaps(grid)


def _study_with_pet(url: str, pet_grid: Geometry, ct_grid: Geometry) -> None:
    writer = store.StudyWriter(url, SID, IngestSettings())
    writer.create("ct", ct_grid)
    writer.create("lesions", ct_grid)
    z, y, x = np.indices(pet_grid.shape)
    writer.create("pet", pet_grid)[...] = (x + 10 * y + 100 * z).astype(np.float32)
    writer.commit({})


def test_pet_on_its_own_grid_is_read_through_its_geometry(tmp_path):
    url = str(tmp_path / "v.zarr")
    ct_grid = Geometry((8, 8, 8), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    pet_grid = Geometry((4, 4, 4), (2.0, 2.0, 2.0), (0.5, 0.5, 0.5), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    _study_with_pet(url, pet_grid, ct_grid)
    opened = store.open_study(url, SID)
    assert opened.pet_geometry == pet_grid and opened.geometry == ct_grid
    assert opened.attrs["format"] == store.FORMAT == 3
    on_ct = opened.pet_on(ct_grid)  # linear in x, y, z: interpolation is exact inside the PET
    assert on_ct.shape == ct_grid.shape and on_ct.dtype == np.float32
    # CT voxel (z, y, x) = (2, 3, 4) mm; PET index = (mm - 0.5) / 2 = (0.75, 1.25, 1.75) (z, y, x)
    assert on_ct[2, 3, 4] == pytest.approx(1.75 + 10 * 1.25 + 100 * 0.75, abs=1e-4)
    np.testing.assert_array_equal(opened.pet_on(pet_grid), opened.pet[...])


def test_a_bad_or_newer_group_gives_one_line_naming_it(tmp_path):
    import zarr

    url = str(tmp_path / "v.zarr")
    grid = Geometry((4, 4, 4), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    _study_with_pet(url, grid, grid)
    version = store.open_study(url, SID).attrs["version"]
    pet = zarr.open_group(url, mode="r+")[f"{SID}/{version}/pet"]
    pet.attrs["spacing"] = [2.0, 0.0, 2.0]
    with pytest.raises(store.VolumeStoreError) as e:
        store.open_study(url, SID)
    assert e.value.path == f"{url}/{SID}/pet" and e.value.reason == "bad_geometry"
    assert "spacing" in str(e.value) and "re-ingest" in str(e.value) and "\n" not in str(e.value)
    pet.attrs.update({"spacing": [1.0, 1.0, 1.0], "shape": [4, 4, 5]})
    with pytest.raises(store.VolumeStoreError, match="differs from the array's"):
        store.open_study(url, SID)
    pet.attrs.update({"shape": [4, 4, 4], "direction": [1, 0, 0, 0, 2, 0, 0, 0, 1]})
    with pytest.raises(store.VolumeStoreError, match="not a 3x3 rotation"):
        store.open_study(url, SID)
    pet.attrs["direction"] = [1, 0, 0, 0, 1, 0, 0, 0, 1]
    assert store.open_study(url, SID).pet_geometry == grid
    zarr.open_group(url, mode="r+")[SID].attrs["format"] = store.FORMAT + 1
    with pytest.raises(store.VolumeStoreError, match="unknown_store_format") as e:
        store.open_study(url, SID)
    assert e.value.path == f"{url}/{SID}" and "update petcap" in str(e.value)
