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


@pytest.fixture(scope="module")
def drop_home(tmp_path_factory):
    """Two tiny synthetic patients, ingested with the default settings (the PET kept on its own grid)."""
    from data_contracts.settings import Settings
    from tasks.ingest import ingest_all
    from tasks.synth.cohort import synthesize_cohort

    settings = Settings(home=tmp_path_factory.mktemp("realism-drop"))
    synthesize_cohort(settings.raw_dir, patients=2, seed=1, scale="tiny", settings=settings, progress=False)
    ingest_all(settings, progress=False)
    return settings


def test_realism_table_reads_each_sidecar_and_report_once(drop_home, monkeypatch):
    from collections import Counter

    from tasks.realism.table import realism_table

    reads: Counter = Counter()
    read_text = Path.read_text

    def counted(self, *args, **kwargs):
        reads[self.resolve()] += 1
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", counted)
    figures = {f.figure: f for f in realism_table(drop_home)}
    raw = drop_home.raw.root.resolve()
    drop_files = {p: n for p, n in reads.items() if p.is_relative_to(raw) and p.suffix in (".json", ".txt")}
    assert len(drop_files) == 4  # per study: its label-map sidecar and its report
    assert set(drop_files.values()) == {1}
    assert figures["studies measured"].value == "2"


def test_collect_measures_the_stored_pet_as_the_raw_pet(drop_home):
    """Default store: the native-grid CV comes from the stored PET, equal to the raw PET's (the fallback)."""
    import numpy as np

    from data_contracts import volume_store as store
    from tasks.realism.facts import collect, read_drop

    drop = read_drop(drop_home)
    assert [d.report is not None for d in drop] == [True, True]
    facts = collect(drop_home, drop)
    assert len(facts) == 2
    for d, f in zip(drop, facts):
        st = store.open_study(drop_home.store_url, f.study_id)
        assert not st.pet_geometry.same_grid(st.geometry)  # the PET is on its own grid in the store
        elsewhere = SimpleNamespace(pet_shape=(1, 1, 1), pet_spacing_mm=(1.0, 1.0, 1.0))
        raw_pet, raw_grid = _native_pet(drop_home.raw.root, d.row, st, elsewhere)  # forced raw read
        assert raw_grid.same_grid(st.pet_geometry)
        assert np.allclose(raw_pet, st.pet[...], rtol=1e-6)
        assert 0.05 < f.img["liver_pet_cv_native"] < 0.25
