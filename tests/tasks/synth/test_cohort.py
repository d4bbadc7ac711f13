"""The cohort: mix like the paper's, deterministic per seed down to the bytes, consistent tables."""

import hashlib
from collections import Counter
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from data_contracts import tables
from data_contracts.findings import Tracer, Vendor
from data_contracts.settings import RawLayout, Settings, SynthSettings
from tasks.synth import cohort as co
from tasks.synth import phantom as ph


def test_mix_follows_the_settings():
    plans = co.plan_cohort(600, 1, "demo", Settings())
    first = [p for p in plans if p.visit == 0]
    assert len(first) == 600
    vendors = Counter(p.vendor for p in first)
    assert abs(vendors[Vendor.siemens] / 600 - 0.16) < 0.05
    assert abs(vendors[Vendor.ge] / 600 - 0.16) < 0.05
    assert abs(vendors[Vendor.united_imaging] / 600 - 0.68) < 0.06
    assert abs(sum(p.tracer is Tracer.fdg for p in first) / 600 - 0.69) < 0.06
    assert all(p.patient.sex == "M" for p in first if p.tracer is Tracer.psma)
    assert {p.source_format for p in plans if p.vendor is Vendor.siemens} == {"dicom"}
    assert {p.source_format for p in plans if p.vendor is not Vendor.siemens} == {"nifti"}
    # follow-ups: same patient, same ID, a later date; keys and patient IDs unique otherwise
    by_patient = {}
    for p in plans:
        by_patient.setdefault(p.index, []).append(p)
    follow = [v for v in by_patient.values() if len(v) == 2]
    assert 0.15 < len(follow) / 600 < 0.35
    for a, b in follow:
        assert a.patient_id == b.patient_id and a.patient_name == b.patient_name and b.study_date > a.study_date
    assert len({p.study_key for p in plans}) == len(plans)
    assert len({p.patient_id for p in first}) == 600
    assert all("^" in p.patient_name and p.patient_name.isupper() for p in plans)


def test_patient_i_does_not_depend_on_cohort_size_or_order():
    a = co.plan_cohort(5, 7, "tiny", Settings())
    b = co.plan_cohort(9, 7, "tiny", Settings())
    assert a == b[:len(a)]
    assert co.plan_cohort(5, 8, "tiny", Settings()) != a


def test_same_seed_same_arrays_other_seed_other_arrays():
    plan = co.plan_cohort(1, 3, "tiny", Settings())[0]
    g1, g2 = co.generate_study(plan), co.generate_study(plan)
    for name in ("ct", "pet", "lesions", "anatomy"):
        assert np.array_equal(getattr(g1.study, name).array, getattr(g2.study, name).array), name
    assert g1.study.truth == g2.study.truth
    other = co.generate_study(co.plan_cohort(1, 4, "tiny", Settings())[0])
    assert not np.array_equal(other.study.pet.array, g1.study.pet.array) or other.study.pet.shape != g1.study.pet.shape


def _digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    settings = Settings(synth=SynthSettings(workers=2, dicom_vendors=("Siemens", "GE")))
    root = tmp_path_factory.mktemp("raw")
    # seed 17: two United Imaging patients (NIfTI; FDG and PSMA) and a GE one (DICOM) with a follow-up
    summary = co.synthesize_cohort(root, patients=3, seed=43, scale="tiny", settings=settings, progress=False)
    return root, summary, settings


def test_files_tables_and_summary(cohort):
    root, summary, _ = cohort
    layout = RawLayout(root)
    manifest = tables.MANIFEST.read(layout.manifest)
    rows = tables.MANIFEST.records(manifest)
    assert summary.studies == len(rows) == 4 and summary.patients == 3
    assert summary.formats == {"nifti": 2, "dicom": 2} and set(summary.tracers) == {"FDG", "PSMA"}
    assert len({r.patient_id for r in rows}) == 3  # the follow-up keeps its patient ID
    assert any((root / r.ct_path).is_dir() for r in rows)  # a DICOM series folder
    truth = tables.TRUTH.records(tables.TRUTH.read(layout.truth_lesions))
    report_truth = tables.REPORT_TRUTH.read(layout.truth_report_findings)
    assert summary.lesions == len(truth) > 0 and len(report_truth) > 0
    for row in rows:
        for rel in (row.ct_path, row.pet_path, row.lesions_path, row.anatomy_path, row.report_path):
            assert (root / rel).exists(), rel
        study_truth = [t for t in truth if t.study_key == row.study_key]
        mask = np.asarray(nib.load(root / row.lesions_path).dataobj)
        _, n = ndimage.label(mask > 0, structure=np.ones((3, 3, 3)))
        assert n == sum(t.in_mask for t in study_truth)
        assert sorted(t.instance for t in study_truth) == list(range(1, len(study_truth) + 1))
    assert any(not any(t.study_key == r.study_key for t in truth) for r in rows)  # a lesion-free study, empty mask
    assert summary.generate_s_per_study > 0 and "patients" in str(summary)


def test_rerun_and_other_folder_give_identical_bytes(cohort, tmp_path):
    root, _, settings = cohort
    before = _digest(root)
    co.synthesize_cohort(root, patients=3, seed=43, scale="tiny", settings=settings, progress=False)
    assert _digest(root) == before
    other = tmp_path / "again"
    one_worker = Settings(synth=SynthSettings(workers=1, dicom_vendors=("Siemens", "GE")))
    co.synthesize_cohort(other, patients=3, seed=43, scale="tiny", settings=one_worker, progress=False)
    assert _digest(other) == before


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(ValueError, match="scale"):
        co.synthesize_cohort(tmp_path, patients=1, seed=0, scale="giant", progress=False)
    with pytest.raises(ValueError, match="patients"):
        co.synthesize_cohort(tmp_path, patients=0, seed=0, progress=False)


@pytest.mark.slow
def test_full_scale_study_generation_time(tmp_path):
    """One clinical-size study: generation in seconds (not minutes); prints the numbers for the report."""
    import resource
    import time

    plan = next(p for p in co.plan_cohort(6, 0, "full", Settings()) if p.vendor is Vendor.united_imaging)
    t0 = time.perf_counter()
    result = co.synthesize_study(plan, tmp_path)
    total = time.perf_counter() - t0
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(f"\nfull scale {plan.vendor.value}: CT {result.shape_ct}, PET {result.shape_pet}; generation "
          f"{result.generate_s:.1f} s, writing {result.write_s:.1f} s, total {total:.1f} s; peak RSS {rss:.2f} GB")
    assert result.shape_ct[1:] == (512, 512) and result.shape_ct[0] >= 250  # skull base to mid-thigh at least
    assert result.generate_s < 30.0


# ------------------------------------------------------------------------------------------ issue 14 population


@pytest.fixture(scope="module")
def plans_400():
    return co.plan_cohort(400, 21, "demo", Settings())


def test_scan_ranges_and_arms_vary_like_a_clinic(plans_400):
    setups = [co.scan_setup(p) for p in plans_400[:150]]
    fdg = [s for p, s in zip(plans_400, setups) if p.tracer is Tracer.fdg]
    assert np.mean([s[4].endswith("mid-thigh") for s in fdg]) >= 0.7
    assert 0.02 < np.mean([s[4] == "vertex to toes" for s in setups]) < 0.35  # some whole-body scans
    assert np.mean([s[0].arms_up for s in setups]) >= 0.6
    starts = [s[3][1] - (s[1].shift[2] + s[1].table_w(1590.0 * s[0].vscale)) for s in setups
              if s[4].startswith("skull base")]
    assert np.ptp(starts) > 30.0  # the first slice varies by centimetres around the skull base
    lengths = [s[3][1] - s[3][0] for s in setups if s[4] == "skull base to mid-thigh"]
    assert 750 < np.median(lengths) < 1100


def test_vertebra_position_in_the_scan_varies_between_patients(plans_400):
    """The z of T12 as a fraction of the scan: spread >= 0.02 between patients (rigid scaling gave 0.001)."""
    fractions = []
    for plan in plans_400[:60]:
        patient, pose, _, (z0, z1), _ = co.scan_setup(plan)
        level = ph.Builder(patient).level("T12")
        fractions.append((pose.table_w(level.mid * patient.vscale) + pose.shift[2] - z0) / (z1 - z0))
    assert np.std(fractions) >= 0.02


def test_lesion_free_studies_and_follow_ups_that_carry_the_disease_over(plans_400):
    diseases = {(p.index, p.visit): co.plan_disease(p) for p in plans_400}
    baselines = [d for (i, v), d in diseases.items() if v == 0]
    free = np.mean([not d[1] for d in baselines])
    assert 0.2 <= free <= 0.4
    counts = [len(d[1]) for d in baselines if d[1]]
    assert min(counts) == 1 and max(counts) >= 10  # 0 .. many
    carried = total = 0
    for (i, v), (scenario, specs, response) in diseases.items():
        if v == 0:
            continue
        base_scenario, base, _ = diseases[(i, 0)]
        assert scenario == base_scenario and response in {r[0] for r in co.RESPONSES}
        if response == "complete":
            assert specs == []
        old = {(s.location_id, s.ct_finding) for s in base}
        carried += sum((s.location_id, s.ct_finding) in old for s in specs)
        total += len(specs)
    assert carried / total >= 0.8


def les_mimics(plan):
    """The look-alikes ``generate_study`` will draw for a plan (replays its stream up to the draw)."""
    from tasks.synth import lesions as les

    rng = np.random.default_rng(np.random.SeedSequence(plan.seed[0], spawn_key=plan.seed[1:]))
    return les.plan_mimics(plan.tracer, plan.patient.sex, rng)


def test_benign_look_alikes_stay_out_of_the_mask_and_the_truth():
    plan = next(p for p in co.plan_cohort(40, 2, "tiny", Settings()) if p.tracer is Tracer.fdg
                and any(s.benign for s in les_mimics(p)))
    g = co.generate_study(plan)
    benign = [p for p in g.placed if p.spec.benign]
    assert benign and all(p.instance == 0 for p in benign)
    assert len(g.study.truth) == len([p for p in g.placed if not p.spec.benign])
    assert all(g.study.lesions.array[p.box][p.mask].sum() == 0 for p in benign)
    assert any(m.startswith(benign[0].spec.benign) for m in g.study.mimics)
