"""Patch extraction: values against SimpleITK resampling of whole volumes, geometry, edge padding, the Dask
driver's incremental and atomic bookkeeping, and 1 vs 2 workers.

One tiny synthetic cohort (the project's generator -> ingestion -> linking) is built per module; tests copy
its store and tables. One threaded Dask cluster is shared by the module; one test uses worker processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import zarr
from distributed import Client, LocalCluster

from data_contracts.settings import IngestSettings, PatchSettings, Settings, SynthSettings
from data_contracts.tables import CAPTION_SAMPLES, TOMBSTONES, TombstoneRow
from tasks.ingest import ingest_all, open_study
from data_contracts.geometry import Geometry
from tasks.ingest.store import StudyWriter
from tasks.deliveries import RemovalRefused
from tasks.link import link_dataset
from tasks.patches import extract, resample
from tasks.patches.extract import PatchExtractionError, extract_patches
from tasks.patches.resample import FieldOfView, Request, StudyJob, compute_study
from tasks.patches.store import (
    PatchStoreError,
    SampleTable,
    fields_of_view,
    open_store,
    read_patch_samples,
    read_patches,
)
from tasks.synth.cohort import synthesize_cohort

SMALL = PatchSettings(localizer_size=(24, 24, 24), localizer_spacing_mm=(16.0, 16.0, 16.0),
                      captioner_size=(12, 14, 16), captioner_spacing_mm=(5.0, 4.5, 4.0), dtype="float32",
                      workers=2, processes=False)
IDENTITY = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> Path:
    """A tiny cohort synthesized, ingested and linked once: its home holds the store and the tables."""
    home = tmp_path_factory.mktemp("cohort")
    settings = Settings(home=home, synth=SynthSettings(lesion_free_fraction=0.0))
    synthesize_cohort(settings.raw_dir, patients=5, seed=11, scale="tiny", settings=settings, progress=False)
    ingest_all(settings, progress=False)
    link_dataset(settings, "rules")
    return home


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster) as c:
        yield c


def home_copy(cohort: Path, dst: Path, patches: PatchSettings = SMALL) -> Settings:
    """A private copy of the cohort's store and tables (not the raw files: extraction does not read them)."""
    shutil.copytree(cohort / "volumes.zarr", dst / "volumes.zarr")
    shutil.copytree(cohort / "tables", dst / "tables")
    return Settings(home=dst, patches=patches)


def snapshot(*roots: Path) -> dict[str, tuple[int, str]]:
    """mtime (ns) and content hash of every file under ``roots``."""
    out = {}
    for root in roots:
        for p in sorted(Path(root).rglob("*")):
            if p.is_file():
                out[str(p)] = (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
    return out


def store_by_sample(settings: Settings) -> dict[str, dict[str, np.ndarray]]:
    group = open_store(settings)
    table = read_patch_samples(settings, with_split=False)
    return {sid: {k: group[k][row] for k in ("localizer", "captioner")} for sid, row in zip(table.sample_id, table.row)}


# ------------------------------------------------------------------------------------------ references
def sitk_image(array: np.ndarray, geometry: Geometry) -> sitk.Image:
    return geometry.image(np.asarray(array, dtype=np.float32))


def reference(image: sitk.Image, fov: FieldOfView, centre, pad: float) -> np.ndarray:
    """SimpleITK linear resampling of a whole volume onto the patch grid: the direct crop-and-resample."""
    f = sitk.ResampleImageFilter()
    f.SetSize([int(v) for v in fov.size[::-1]])
    f.SetOutputSpacing(fov.spacing)
    f.SetOutputOrigin(tuple(float(v) for v in fov.origin(centre)))
    f.SetOutputDirection(IDENTITY)
    f.SetInterpolator(sitk.sitkLinear)
    f.SetDefaultPixelValue(pad)
    f.SetOutputPixelType(sitk.sitkFloat32)
    return sitk.GetArrayFromImage(f.Execute(image))


def check_patch(patch: np.ndarray, ct: sitk.Image, pet: sitk.Image, mask: sitk.Image, fov: FieldOfView, centre,
                ct_pad: float = -1000.0) -> None:
    """CT and PET equal the reference within float rounding; the mask is the reference indicator >= 0.5."""
    ref_ct, ref_pet, ref_mask = (reference(ct, fov, centre, ct_pad), reference(pet, fov, centre, 0.0),
                                 reference(mask, fov, centre, 0.0))
    half = patch.dtype == np.float16  # float16 storage: relative rounding up to 2**-11
    patch = patch.astype(np.float32)
    tol = 1e-3 + np.abs(ref_ct) * 2.0 ** -11 if half else 1e-2
    np.testing.assert_array_less(np.abs(patch[0] - ref_ct), tol + 1e-9)
    np.testing.assert_allclose(patch[1], ref_pet, rtol=2.0 ** -11 if half else 1e-5, atol=1e-4)
    assert set(np.unique(patch[2])) <= {0.0, 1.0}
    if ref_mask.max() >= 0.5:
        clear = np.abs(ref_mask - 0.5) > 1e-4  # voxels right at the threshold may go either way
        np.testing.assert_array_equal(patch[2][clear], (ref_mask >= 0.5)[clear])
    else:  # lesion smaller than a patch voxel: exactly one voxel, where the indicator is highest
        assert patch[2].sum() == 1 and ref_mask[patch[2] == 1][0] == pytest.approx(ref_mask.max(), abs=1e-5)


def write_group(store_url: str, study_id: str, ct: np.ndarray, pet: np.ndarray, labels: np.ndarray,
                geometry: Geometry, chunks=(8, 8, 8)) -> None:
    """A hand-made study group with the volume store's layout (written by the ingestion's own writer)."""
    writer = StudyWriter(store_url, study_id, IngestSettings(chunks=chunks))
    writer.create("ct", geometry)[...] = ct
    writer.create("pet", geometry)[...] = pet
    writer.create("lesions", geometry)[...] = labels
    writer.commit({})


def lesion_requests(labels: np.ndarray, geometry: Geometry) -> tuple[Request, ...]:
    out = []
    for i in sorted(set(np.unique(labels)) - {0}):
        idx = np.argwhere(labels == i)
        bbox = (*idx.min(0).tolist(), *(idx.max(0) + 1).tolist())
        out.append(Request(len(out), int(i), tuple(geometry.index_to_mm(idx.mean(0)).tolist()), bbox))
    return tuple(out)


# ------------------------------------------------------------------------------------------ values
def test_patches_equal_whole_volume_resampling(cohort, client, tmp_path):
    """Every sample, both fields of view: the stored patch is SimpleITK's resampling of the whole volume."""
    settings = home_copy(cohort, tmp_path, SMALL.model_copy(update={"dtype": "float16"}))
    summary = extract_patches(settings, progress=False, client=client)
    table = read_patch_samples(settings, with_split=False)
    assert summary.new == len(table) == len(CAPTION_SAMPLES.read(settings.table_path("caption_samples"))) >= 8
    group = open_store(settings)
    fovs = fields_of_view(settings.patches)
    for study_id, rows in table.groupby("study_id"):
        st = open_study(settings.store_url, study_id)
        ct, pet = sitk_image(st.ct[:], st.geometry), sitk_image(st.pet[:], st.pet_geometry)
        labels = st.lesions[:]
        for _, r in rows.iterrows():
            mask = sitk_image(labels == r.instance, st.geometry)
            lesion = next(x for x in st.lesion_records if x.instance == r.instance)
            assert tuple(r.centre_mm) == pytest.approx(lesion.centroid_mm)
            for fov in fovs:
                patch = group[fov.name][r.row]
                assert patch.dtype == np.float16 and patch.shape == (3, *fov.size)
                # the patch centre is the centroid snapped to the field of view's lattice
                assert np.all(np.abs(fov.centre(r.centre_mm) - r.centre_mm) <= np.asarray(fov.spacing) / 2 + 1e-9)
                check_patch(patch, ct, pet, mask, fov, r.centre_mm)


# Native-grid PET against the layout before (PET resampled onto the CT grid at ingest, then onto the patch
# grid). Measured on this tiny cohort (CT 7.8-8.3 mm, PET 9.4-12.5 mm voxels): mean |diff| 0.5 % of a patch's
# SUVmax on average, at most ~1.5 % in one patch; the patch's summed SUV within ~3 %; single voxels at hot
# peaks differ by up to ~45 % of the SUVmax: the peaks the second interpolation flattened (native peaks ~9 %
# higher, median).
NATIVE_PET_MEAN = 0.01  # mean over patches of mean |diff| / SUVmax
NATIVE_PET_PATCH_MEAN = 0.03  # any one patch's mean |diff| / SUVmax
NATIVE_PET_TOTAL = 0.06  # relative difference of a patch's summed SUV


def test_native_pet_patches_match_the_two_step_reference(cohort, tmp_path):
    """PET on its own grid is interpolated once, straight onto each patch grid; before, it was interpolated onto
    the CT grid at ingest and again onto the patch grid. Same activity, one smoothing less (see the bounds)."""
    settings = home_copy(cohort, tmp_path)
    fovs = fields_of_view(settings.patches)
    means, totals, peaks = [], [], []
    for study_id in _stored(settings):
        st = open_study(settings.store_url, study_id)
        assert not st.pet_geometry.same_grid(st.geometry)  # the generator's PET has its own grid
        requests = tuple(Request(les.instance, les.instance, les.centroid_mm, les.bbox) for les in st.lesion_records)
        native = compute_study(StudyJob(settings.store_url, study_id, requests, fovs, dtype="float32"))
        on_ct = sitk_image(st.pet_on(st.geometry), st.geometry)  # what the format-2 store held
        in_ct = sitk_image(np.ones(st.geometry.shape, np.float32), st.geometry)
        for r in requests:
            for fov in fovs:
                two_step = reference(on_ct, fov, r.centre_mm, 0.0)
                # Beyond the CT's field of view the old layout had no PET (0); the native PET goes on there.
                inside = reference(in_ct, fov, r.centre_mm, 0.0) > 0.5
                one, two = native[r.row][fov.name][1][inside], two_step[inside]
                scale = max(float(two.max()), 1e-6)
                means.append(float(np.abs(one - two).mean()) / scale)
                totals.append(abs(float(one.sum()) / max(float(two.sum()), 1e-6) - 1.0))
                peaks.append(float(one.max()) / scale)
    print(f"native vs two-step PET over {len(means)} patches: mean |diff| {np.mean(means):.4f} (max {max(means):.4f}) "
          f"of the SUVmax; summed SUV within {max(totals):.4f}; native peak / two-step peak median "
          f"{np.median(peaks):.3f}")
    assert means and np.mean(means) < NATIVE_PET_MEAN and max(means) < NATIVE_PET_PATCH_MEAN
    assert max(totals) < NATIVE_PET_TOTAL
    assert np.median(peaks) >= 1.0  # one interpolation less flattens the peaks less


def _stored(settings: Settings) -> list[str]:
    from tasks.ingest import list_studies

    return list_studies(settings.store_url)


@pytest.mark.parametrize("direction", [
    (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0),  # array x runs along LPS y, array y along -x, z flipped
    (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0),  # the usual NIfTI (RAS) flip
])
def test_linear_field_is_reproduced_on_flipped_and_permuted_grids(tmp_path, direction):
    """Linear interpolation reproduces a linear field exactly: patch values at patch voxel centres equal the
    field there (an independent check of centre, spacing and orientation), wherever the patch point lies
    between voxel centres of the volume; outside the volume: the pad values."""
    shape, spacing = (30, 26, 22), (2.0, 3.0, 2.5)
    geometry = Geometry(shape, spacing, (-20.0, 14.0, 100.0), direction)
    zyx = np.indices(shape).reshape(3, -1).T
    p = geometry.index_to_mm(zyx)

    def field(q):  # HU at LPS mm
        return 4.0 * q[..., 0] - 2.0 * q[..., 1] + 2.0 * q[..., 2]

    ct = np.rint(field(p)).reshape(shape).astype(np.int16)  # integral at voxel centres (integral origin, spacing)
    assert np.array_equal(ct, field(p).reshape(shape))
    pet = (0.01 * field(p) + 5.0).reshape(shape).astype(np.float32)
    labels = np.zeros(shape, np.uint16)
    labels[10:14, 9:13, 8:12] = 1
    write_group(str(tmp_path / "v.zarr"), "S000000000001", ct, pet, labels, geometry)
    fovs = (FieldOfView("localizer", (16, 18, 20), (6.0, 5.0, 4.0)),
            FieldOfView("captioner", (9, 10, 11), (1.5, 2.0, 1.0)))
    requests = lesion_requests(labels, geometry)
    out = compute_study(StudyJob(str(tmp_path / "v.zarr"), "S000000000001", requests, fovs, dtype="float32"))
    assert Geometry.of(sitk_image(ct, geometry)).direction == direction
    for fov in fovs:
        patch = out[0][fov.name]
        points = fov.points(requests[0].centre_mm)  # (z, y, x, 3) LPS
        q = Geometry(shape, spacing, geometry.origin, direction).continuous_index(points)
        between = np.all((q >= 0) & (q <= np.asarray(shape) - 1), axis=-1)
        outside = np.any((q < -0.5) | (q > np.asarray(shape) - 0.5), axis=-1)
        assert between.sum() > 100 and (fov.name == "captioner" or outside.sum() > 100)
        np.testing.assert_allclose(patch[0][between], field(points)[between], atol=2e-3)
        np.testing.assert_allclose(patch[1][between], 0.01 * field(points)[between] + 5.0, rtol=1e-5)
        assert np.all(patch[0][outside] == -1000) and np.all(patch[1][outside] == 0) and np.all(patch[2][outside] == 0)


def test_edge_lesions_are_padded_and_masks_hold_one_instance(tmp_path):
    """Lesions in a corner of the volume: points beyond the volume (more than half a voxel out) are air
    (-1000 HU), PET 0 and mask 0; points inside match SimpleITK; the mask channel holds this instance
    only although another lesion touches it."""
    shape, spacing = (20, 24, 28), (3.0, 2.5, 4.0)
    geometry = Geometry(shape, spacing, (-30.0, -25.0, 400.0), IDENTITY)
    rng = np.random.default_rng(0)
    ct = rng.integers(-200, 300, shape).astype(np.int16)
    pet = rng.uniform(0.0, 6.0, shape).astype(np.float32)
    labels = np.zeros(shape, np.uint16)
    labels[0:3, 0:4, 0:4] = 1  # touches three faces
    labels[0:3, 4:8, 0:3] = 2  # its neighbour, touching it
    labels[17:20, 20:24, 25:28] = 3  # the opposite corner
    write_group(str(tmp_path / "v.zarr"), "S000000000002", ct, pet, labels, geometry)
    fovs = (FieldOfView("localizer", (12, 12, 12), (8.0, 8.0, 8.0)),
            FieldOfView("captioner", (10, 12, 14), (2.0, 2.0, 2.0)))
    requests = lesion_requests(labels, geometry)
    job = StudyJob(str(tmp_path / "v.zarr"), "S000000000002", requests, fovs, dtype="float32")
    out = compute_study(job)
    one_by_one = compute_study(dataclasses.replace(job, max_open=1))  # a lesion per sweep: same patches
    assert all(np.array_equal(out[r][f], one_by_one[r][f]) for r in out for f in out[r])
    ct_img, pet_img = sitk_image(ct, geometry), sitk_image(pet, geometry)
    grid = Geometry(shape, spacing, geometry.origin, IDENTITY)
    for req in requests:
        for fov in fovs:
            patch = out[req.row][fov.name]
            outside = np.any(np.abs(grid.continuous_index(fov.points(req.centre_mm)) - (np.asarray(shape) - 1) / 2)
                             > (np.asarray(shape) - 1) / 2 + 0.5, axis=-1)
            assert outside.sum() > 0.2 * outside.size  # the field of view hangs well over the edge
            assert np.all(patch[0][outside] == -1000) and np.all(patch[1][outside] == 0)
            assert np.all(patch[2][outside] == 0)
            check_patch(patch, ct_img, pet_img, sitk_image(labels == req.instance, geometry), fov, req.centre_mm)
            assert patch[2].sum() >= 1
        if req.instance == 1:  # its neighbour (instance 2), in view of its captioner patch, is not in its mask
            own, other = (reference(sitk_image(labels == i, geometry), fovs[1], req.centre_mm, 0.0) >= 0.5
                          for i in (1, 2))
            assert (other & ~own).sum() >= 10
            assert not out[req.row]["captioner"][2][other & ~own].any()


def test_oblique_volume_takes_the_general_path(tmp_path):
    """A volume rotated about z (not axis-aligned) is resampled through the general path, still equal to
    SimpleITK's resampling."""
    a = np.deg2rad(20.0)
    direction = (np.cos(a), -np.sin(a), 0.0, np.sin(a), np.cos(a), 0.0, 0.0, 0.0, 1.0)
    shape, spacing = (16, 20, 24), (2.0, 2.0, 3.0)
    geometry = Geometry(shape, spacing, (-20.0, -20.0, 0.0), direction)
    rng = np.random.default_rng(1)
    ct = rng.integers(-500, 500, shape).astype(np.int16)
    pet = rng.uniform(0.0, 3.0, shape).astype(np.float32)
    labels = np.zeros(shape, np.uint16)
    labels[6:10, 8:13, 9:15] = 1
    write_group(str(tmp_path / "v.zarr"), "S000000000003", ct, pet, labels, geometry)
    assert not Geometry(shape, spacing, geometry.origin, direction).separable()
    fovs = (FieldOfView("localizer", (10, 12, 12), (5.0, 5.0, 5.0)),
            FieldOfView("captioner", (8, 8, 8), (1.5, 1.5, 1.5)))
    requests = lesion_requests(labels, geometry)
    out = compute_study(StudyJob(str(tmp_path / "v.zarr"), "S000000000003", requests, fovs, dtype="float32"))
    for fov in fovs:
        check_patch(out[0][fov.name], sitk_image(ct, geometry), sitk_image(pet, geometry),
                    sitk_image(labels == 1, geometry), fov, requests[0].centre_mm)


def test_a_study_is_opened_once_and_lesions_off_the_ct_grid_are_refused(tmp_path, monkeypatch):
    """The sweep opens the study through the volume store's reader once, batches included (its checked grids
    feed the planner), and refuses a label array whose grid is not the CT's before reading a voxel."""
    from data_contracts.volume_store import VolumeStoreError, arrays_group
    from tasks.patches import volume_io

    shape, grid = (12, 12, 12), Geometry((12, 12, 12), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), IDENTITY)
    labels = np.zeros(shape, np.uint16)
    labels[2:4, 2:4, 2:4], labels[6:8, 6:8, 6:8], labels[9:11, 2:4, 8:10] = 1, 2, 3
    url = str(tmp_path / "v.zarr")
    write_group(url, "S000000000004", np.zeros(shape, np.int16), np.ones(shape, np.float32), labels, grid)
    opened = []
    real_open = volume_io.open_study
    monkeypatch.setattr(volume_io, "open_study", lambda *a: opened.append(a) or real_open(*a))
    fovs = (FieldOfView("captioner", (4, 4, 4), (2.0, 2.0, 2.0)),)
    job = StudyJob(url, "S000000000004", lesion_requests(labels, grid), fovs, dtype="float32", max_open=1)
    out = compute_study(job)  # three batches of one lesion
    assert opened == [(url, "S000000000004")] and sorted(out) == [0, 1, 2]
    assert [int(out[r]["captioner"][2].sum()) for r in (0, 1, 2)] == [8, 8, 8]

    lesions = arrays_group(zarr.open_group(url, mode="r+")["S000000000004"])["lesions"]
    lesions.attrs["origin"] = [5.0, 0.0, 0.0]  # 5 mm off the CT grid
    with pytest.raises(VolumeStoreError) as e:
        compute_study(job)
    assert e.value.reason == "bad_geometry" and e.value.path == f"{url}/S000000000004/lesions"
    assert "not on the CT grid" in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------------------------ the driver
def test_refresh_with_nothing_new_does_no_work(cohort, client, tmp_path, monkeypatch):
    settings = home_copy(cohort, tmp_path)
    first = extract_patches(settings, progress=False, client=client)
    assert first.new > 0 and first.tasks > 0 and first.commits == 1
    before = snapshot(tmp_path / "patches.zarr", settings.table_path("patch_samples"))

    def no_cluster(*args, **kwargs):
        raise AssertionError("a refresh with nothing new must not start or use a cluster")

    monkeypatch.setattr(extract, "dask_client", no_cluster)
    again = extract_patches(settings, progress=False)
    assert (again.new, again.reextracted, again.relabelled, again.removed, again.tasks, again.commits) == (0,) * 6
    assert again.unchanged == first.new
    assert snapshot(tmp_path / "patches.zarr", settings.table_path("patch_samples")) == before


def test_refresh_extracts_only_new_samples_and_appends(cohort, client, tmp_path):
    """A second delivery of samples: only they are extracted, old parts and old patch chunks are untouched,
    and every sample's patches equal those of a one-shot extraction."""
    settings = home_copy(cohort, tmp_path / "a")
    path = settings.table_path("caption_samples")
    full = CAPTION_SAMPLES.read(path)
    first_studies = sorted(full.study_id.unique())[:2]
    CAPTION_SAMPLES.write(full[full.study_id.isin(first_studies)].reset_index(drop=True), path)
    first = extract_patches(settings, progress=False, client=client)
    rows_before = len(read_patch_samples(settings))
    old_parts = snapshot(settings.table_path("patch_samples"))
    old_chunks = snapshot(*(tmp_path / "a" / "patches.zarr" / k / "c" for k in ("localizer", "captioner")))

    CAPTION_SAMPLES.write(full, path)
    second = extract_patches(settings, progress=False, client=client)
    assert second.new == len(full) - first.new > 0 and second.unchanged == first.new
    assert second.tasks == full.study_id.nunique() - 2
    assert len(read_patch_samples(settings)) == rows_before + second.new == len(full)
    now = snapshot(settings.table_path("patch_samples"))
    assert all(now[p] == v for p, v in old_parts.items()) and len(now) == len(old_parts) + 1
    now_chunks = snapshot(*(tmp_path / "a" / "patches.zarr" / k / "c" for k in ("localizer", "captioner")))
    assert all(now_chunks[p] == v for p, v in old_chunks.items())

    oneshot = home_copy(cohort, tmp_path / "b")
    extract_patches(oneshot, progress=False, client=client)
    a, b = store_by_sample(settings), store_by_sample(oneshot)
    assert a.keys() == b.keys()
    for sid in a:
        for k in ("localizer", "captioner"):
            np.testing.assert_array_equal(a[sid][k], b[sid][k])


def test_crash_mid_study_leaves_no_half_registered_sample(cohort, client, tmp_path, monkeypatch):
    """A worker dies after writing part of a study: nothing of that study is registered (its written rows are
    free again), every other study is; the rerun finishes and equals a clean run row for row."""
    settings = home_copy(cohort, tmp_path / "a")
    samples = CAPTION_SAMPLES.read(settings.table_path("caption_samples"))
    victim = samples.study_id.value_counts().index[0]  # a study with several samples
    assert (samples.study_id == victim).sum() >= 2
    real_sweep = resample.sweep

    def dying_sweep(job, on_patch):  # looked up by extract_study at run time, in the worker thread
        if job.study_id != victim:
            return real_sweep(job, on_patch)

        def write_then_die(request, patches):
            on_patch(request, patches)
            raise RuntimeError("worker lost mid-study")
        return real_sweep(job, write_then_die)

    monkeypatch.setattr(resample, "sweep", dying_sweep)
    with pytest.raises(PatchExtractionError, match=victim) as err:
        extract_patches(settings, progress=False, client=client)
    assert set(err.value.summary.failed) == {victim}
    table = read_patch_samples(settings, with_split=False)
    assert victim not in set(table.study_id) and len(table) == len(samples) - (samples.study_id == victim).sum()
    group = open_store(settings)
    written = [r for r in range(group["localizer"].shape[0]) if not np.isnan(group["localizer"][r]).all()]
    assert len(written) == len(table) + 1  # one patch of the victim is on disk, unregistered

    monkeypatch.setattr(resample, "sweep", real_sweep)
    rerun = extract_patches(settings, progress=False, client=client)
    assert rerun.new == (samples.study_id == victim).sum() and rerun.tasks == 1
    clean = home_copy(cohort, tmp_path / "b")
    extract_patches(clean, progress=False, client=client)
    cols = ["sample_id", "row", "study_id", "instance", "caption"]
    pd.testing.assert_frame_equal(read_patch_samples(settings)[cols], read_patch_samples(clean)[cols])
    a, b = open_store(settings), open_store(clean)
    for k in ("localizer", "captioner"):
        np.testing.assert_array_equal(a[k][:], b[k][:])


def test_a_study_group_of_a_newer_layout_fails_alone_in_one_line(cohort, client, tmp_path):
    """A study group whose layout format is newer than this code is refused by the worker as the volume store's
    reader refuses it (one line naming the group); the other studies are registered, and once the group is
    readable again the rerun extracts that study alone."""
    from data_contracts.volume_store import FORMAT

    settings = home_copy(cohort, tmp_path)
    samples = CAPTION_SAMPLES.read(settings.table_path("caption_samples"))
    victim = samples.study_id.value_counts().index[0]
    group = zarr.open_group(settings.store_url, mode="r+")[victim]
    group.attrs["format"] = FORMAT + 1
    with pytest.raises(PatchExtractionError) as err:
        extract_patches(settings, progress=False, client=client)
    failed = err.value.summary.failed
    assert list(failed) == [victim]
    assert failed[victim].startswith(f"VolumeStoreError: {settings.store_url}/{victim}: unknown_store_format: ")
    assert "\n" not in failed[victim] and "update petcap" in failed[victim]
    table = read_patch_samples(settings, with_split=False)
    mine = int((samples.study_id == victim).sum())
    assert victim not in set(table.study_id) and len(table) == len(samples) - mine

    group.attrs["format"] = FORMAT
    rerun = extract_patches(settings, progress=False, client=client)
    assert (rerun.new, rerun.tasks, rerun.failed) == (mine, 1, {})


def test_relabelled_and_removed_samples_append_rows_without_extraction(cohort, client, tmp_path):
    settings = home_copy(cohort, tmp_path)
    extract_patches(settings, progress=False, client=client)
    before = read_patch_samples(settings, with_split=False).set_index("sample_id")
    path = settings.table_path("caption_samples")
    samples = CAPTION_SAMPLES.read(path)
    changed, gone = samples.sample_id.iloc[0], samples.sample_id.iloc[1]
    samples.loc[samples.sample_id == changed, "caption"] = "a corrected caption"
    CAPTION_SAMPLES.write(samples[samples.sample_id != gone].reset_index(drop=True), path)
    with pytest.raises(RemovalRefused):  # nobody recorded why it left
        extract_patches(settings, progress=False, client=client)
    study = samples.loc[samples.sample_id == gone, "study_id"].iloc[0]
    TOMBSTONES.write(TOMBSTONES.frame([TombstoneRow(table="caption_samples", key=gone, study_id=study,
                                                    reason="withdrawn", detail="consent withdrawn",
                                                    at=datetime.now(timezone.utc))]),
                     settings.table_path("tombstones"))  # as linking records a withdrawn study's samples
    summary = extract_patches(settings, progress=False, client=client)
    assert (summary.relabelled, summary.removed, summary.extracted, summary.tasks, summary.commits) == (1, 1, 0, 0, 1)
    tombstones = TOMBSTONES.read(settings.table_path("tombstones"))
    assert tombstones.loc[tombstones.table == "patch_samples", "detail"].tolist() == ["consent withdrawn"]
    after = read_patch_samples(settings, with_split=False).set_index("sample_id")
    assert gone not in after.index and after.loc[changed, "caption"] == "a corrected caption"
    assert after.loc[changed, "row"] == before.loc[changed, "row"]  # same patches, new registration
    history = SampleTable(settings.table_path("patch_samples")).read_all()
    assert len(history) == len(before) + 2 and history.removed.sum() == 1
    CAPTION_SAMPLES.write(samples, path)  # the removed sample comes back: registered again on its old patches
    back = extract_patches(settings, progress=False, client=client)
    assert (back.relabelled, back.extracted, back.tasks) == (1, 0, 0)
    assert read_patch_samples(settings).set_index("sample_id").loc[gone, "row"] == before.loc[gone, "row"]


def test_a_reingested_study_is_extracted_again_into_new_rows(cohort, client, tmp_path):
    """Its group's content hash changed: its samples get new rows (old rows stay, as history), others stay."""
    settings = home_copy(cohort, tmp_path)
    extract_patches(settings, progress=False, client=client)
    before = read_patch_samples(settings, with_split=False).set_index("sample_id")
    study = before.study_id.iloc[0]
    group = zarr.open_group(settings.store_url, mode="r+")[study]
    group.attrs["content_hash"] = "f" * 64  # as a re-ingestion of corrected raw files would leave it
    summary = extract_patches(settings, progress=False, client=client)
    mine = before.study_id == study
    assert (summary.reextracted, summary.new, summary.tasks) == (mine.sum(), 0, 1)
    after = read_patch_samples(settings, with_split=False).set_index("sample_id")
    assert set(after.loc[mine[mine].index, "row"]).isdisjoint(before.row)  # fresh rows, old ones kept
    assert (after.loc[~mine, "row"] == before.loc[~mine, "row"]).all()
    assert after.loc[mine, "volume_version"].str.startswith("f" * 16).all()
    old, new = (read_patches(settings, t.loc[mine, "row"].tolist(), "localizer") for t in (before, after))
    np.testing.assert_array_equal(old, new)  # same voxels here: only the hash was touched


def test_a_store_built_with_another_recipe_is_refused(cohort, client, tmp_path):
    settings = home_copy(cohort, tmp_path)
    extract_patches(settings, progress=False, client=client)
    other = settings.model_copy(update={"patches": SMALL.model_copy(update={"captioner_size": (16, 16, 16)})})
    with pytest.raises(PatchStoreError, match="another patch recipe"):
        extract_patches(other, progress=False, client=client)


def test_one_and_two_worker_processes_give_identical_stores(cohort, tmp_path):
    """One threaded worker against two worker processes (each run starts its own cluster from settings)."""
    one = home_copy(cohort, tmp_path / "one", SMALL.model_copy(update={"workers": 1, "processes": False}))
    two = home_copy(cohort, tmp_path / "two", SMALL.model_copy(update={"workers": 2, "processes": True}))
    s1, s2 = extract_patches(one, progress=False), extract_patches(two, progress=False)
    assert (s1.workers, s2.workers) == (1, 2) and s1.new == s2.new > 0
    for k in ("localizer", "captioner"):
        a, b = open_store(one)[k][:], open_store(two)[k][:]
        assert not np.isnan(a).any()
        np.testing.assert_array_equal(a, b)
    cols = [c for c in read_patch_samples(one).columns if c != "extracted_at"]
    pd.testing.assert_frame_equal(read_patch_samples(one)[cols], read_patch_samples(two)[cols])
