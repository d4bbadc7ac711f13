"""File integrity checks on their own: NIfTI sizes (one or many gzip members, plain .nii), label values."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import SimpleITK as sitk

from tasks.ingest.errors import IngestError
from tasks.ingest.integrity import check_label_values, check_nifti_size, nifti_expected_bytes, unknown_labels


@pytest.fixture
def image() -> sitk.Image:
    return sitk.GetImageFromArray(np.random.default_rng(0).integers(-1000, 1000, (20, 16, 12)).astype(np.int16))


@pytest.mark.parametrize("name", ["ct.nii.gz", "ct.nii"])
def test_whole_files_pass_and_cut_files_are_truncated(tmp_path, image, name):
    path = tmp_path / name
    sitk.WriteImage(image, str(path), name.endswith(".gz"))
    assert nifti_expected_bytes(path) == 352 + 20 * 16 * 12 * 2
    check_nifti_size(path, "S1/ct")
    data = path.read_bytes()
    for keep in (len(data) // 2, len(data) - 9):
        path.write_bytes(data[:keep])
        with pytest.raises(IngestError) as e:
            check_nifti_size(path, "S1/ct")
        assert (e.value.reason, e.value.source) == ("truncated_file", "S1/ct")


def test_many_gzip_members_are_counted_exactly(tmp_path, image):
    plain = tmp_path / "ct.nii"
    sitk.WriteImage(image, str(plain), False)
    raw = plain.read_bytes()
    members = b"".join(gzip.compress(raw[i:i + 1000]) for i in range(0, len(raw), 1000))
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(members)
    check_nifti_size(path, "S1/ct")
    cut = b"".join(gzip.compress(raw[i:i + 1000]) for i in range(0, len(raw) - 2000, 1000))  # at a boundary
    path.write_bytes(cut)
    with pytest.raises(IngestError, match="truncated_file"):
        check_nifti_size(path, "S1/ct")


def test_garbage_is_unreadable_not_truncated(tmp_path):
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(b"%PDF-1.4" * 100)
    with pytest.raises(IngestError) as e:
        check_nifti_size(path, "S1/ct")
    assert e.value.reason == "unreadable_file"


def test_label_values_in_their_own_dtype():
    check_label_values(np.array([0, 1, 65535], np.uint16), "m", 65535)
    with pytest.raises(IngestError, match="label_out_of_range"):
        check_label_values(np.array([0, 256], np.uint16), "m", 255)  # never wrapped to 0
    with pytest.raises(IngestError, match="invalid_labels"):
        check_label_values(np.array([0, -1], np.int16), "m", 255)
    with pytest.raises(IngestError, match="invalid_labels"):
        check_label_values(np.array([0, 0.5], np.float32), "m", 255)
    assert unknown_labels(np.array([[0, 3, 3, 9999]], np.uint16), {1, 2, 3}) == {9999: 1}


@pytest.mark.parametrize("block", [1000, 4 * 384])  # 4 * 384 divides the voxel data
def test_equal_gzip_members_after_a_header_member(tmp_path, image, block):
    """The synthetic writer's layout: the header in a member of its own, then the voxel data in equal blocks."""
    plain = tmp_path / "ct.nii"
    sitk.WriteImage(image, str(plain), False)
    raw = plain.read_bytes()
    head, data = raw[:352], raw[352:]
    members = [gzip.compress(head)] + [gzip.compress(data[i:i + block]) for i in range(0, len(data), block)]
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(b"".join(members))
    check_nifti_size(path, "S1/ct")
    for cut in (b"".join(members[:-1]), b"".join(members)[:-7], b"".join(members[:3])):
        path.write_bytes(cut)
        with pytest.raises(IngestError, match="truncated_file"):
            check_nifti_size(path, "S1/ct")
