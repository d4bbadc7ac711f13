"""A synthetic whole-body PET/CT cohort written as a hospital would deliver it (``petcap synth``).

``synthesize_cohort(out, patients, seed, scale)`` draws each patient from ``numpy.random.SeedSequence(seed)``
spawned per patient index (so patient i is the same whatever the cohort size or the number of worker
processes), generates one study -- a quarter of patients get a follow-up study under the same patient ID,
for patient-level splits -- and hands it to ``tasks.synth.writers.write_raw_study`` (DICOM for the vendors
in ``settings.synth.dicom_vendors``, NIfTI for the rest) with its report from
``tasks.synth.reports.render_report``. The manifest (CSV) and the ground truth (lesions, report findings;
read by evaluation alone) are written last, atomically, so a rerun into the same folder gives the same
result.

Per study (``synthesize_study``): patient anatomy (``phantom``) rasterised on the vendor's CT and PET grids
(``scanners``), lesions planned (``lesions``), placed (``lesion_placement``) and imaged (``lesion_imaging``),
CT with noise, PET with physiology, PSF and count noise; the lesion SUVmax recorded in the truth is measured
on that final PET.
"""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from data_contracts import tables
from data_contracts.findings import Tracer, Vendor
from data_contracts.records import LesionTruth
from data_contracts.settings import RawLayout, Settings, get_settings
from data_contracts.tables import ManifestRow, ReportFindingTruth
from tasks.synth import lesion_imaging as imaging
from tasks.synth import lesion_placement as placement
from tasks.synth import lesions as les
from tasks.synth import phantom as ph
from tasks.synth import scanners as sc
from tasks.synth.raw import RawStudy, Volume
from tasks.synth.segmenter import segmenter_labels

VENDORS = (Vendor.siemens, Vendor.ge, Vendor.united_imaging)

_FAMILY = ("MUELLER", "SCHMIDT", "WANG", "LI", "ZHANG", "GARCIA", "SMITH", "JOHNSON", "NGUYEN", "ROSSI",
           "KOWALSKI", "IVANOV", "TANAKA", "SATO", "KIM", "PARK", "DUBOIS", "MARTIN", "JANSEN", "NIELSEN",
           "OKAFOR", "SILVA", "COHEN", "LEVI", "BROWN", "WILSON", "HUANG", "CHEN", "LIU", "YANG", "ZHAO",
           "WEBER", "FISCHER", "MEYER", "BAUER", "HOFFMANN", "KLEIN", "WOLF", "NOVAK", "HORVATH")
_GIVEN = {
    "M": ("PETER", "JOHN", "WEI", "HAO", "JAVIER", "LUCA", "PIOTR", "IVAN", "KENJI", "MIN-JUN", "PIERRE",
          "JAN", "LARS", "CHIDI", "JOAO", "DAVID", "THOMAS", "MICHAEL", "STEFAN", "ANDREAS", "JUN", "LEI"),
    "F": ("ANNA", "MARIA", "LI NA", "FANG", "LUCIA", "GIULIA", "AGNIESZKA", "OLGA", "YUKI", "JI-WOO", "CLAIRE",
          "EMMA", "INGRID", "NGOZI", "ANA", "SARAH", "JULIA", "SUSANNE", "PETRA", "MEI", "XIU", "HANNA"),
}


@dataclass(frozen=True)
class StudyPlan:
    """Everything drawn at patient level that a study needs (picklable; sent to a worker)."""

    index: int  # patient index in the cohort
    visit: int  # 0 = baseline, 1 = follow-up
    seed: tuple[int, ...]  # SeedSequence entropy + spawn key of this study
    study_key: str
    patient_id: str
    patient_name: str
    birth_date: str
    age: int
    patient: ph.Patient
    vendor: Vendor
    tracer: Tracer
    source_format: str
    scale: str
    study_date: datetime
    lesion_range: tuple[int, int]
    min_lesion_voxels: int
    lesion_free_fraction: float = 0.0


@dataclass
class StudyResult:
    row: ManifestRow
    truth: list[LesionTruth]
    report_truth: list[ReportFindingTruth]
    generate_s: float
    write_s: float
    shape_ct: tuple[int, int, int]
    shape_pet: tuple[int, int, int]


@dataclass
class CohortSummary:
    out: Path
    patients: int
    studies: int
    scale: str
    vendors: dict[str, int] = field(default_factory=dict)
    tracers: dict[str, int] = field(default_factory=dict)
    formats: dict[str, int] = field(default_factory=dict)
    lesions: int = 0
    lesions_in_mask: int = 0
    lesions_reported: int = 0
    generate_s_per_study: float = 0.0  # mean, phantom + lesions + CT + PET + report
    write_s_per_study: float = 0.0  # mean, files
    wall_s: float = 0.0

    def __str__(self) -> str:
        def fmt(d: dict[str, int]) -> str:
            return ", ".join(f"{k} {v}" for k, v in sorted(d.items()))

        return (f"synthetic cohort at {self.out} ({self.scale}): {self.patients} patients, {self.studies} studies\n"
                f"  vendors: {fmt(self.vendors)}\n  tracers: {fmt(self.tracers)}\n  formats: {fmt(self.formats)}\n"
                f"  lesions: {self.lesions} ({self.lesions_in_mask} in the mask, {self.lesions_reported} reported)\n"
                f"  per study: {self.generate_s_per_study:.2f} s generation + {self.write_s_per_study:.2f} s "
                f"writing; wall {self.wall_s:.1f} s")


# ------------------------------------------------------------------------------------------ planning


def plan_cohort(patients: int, seed: int, scale: str, settings: Settings) -> list[StudyPlan]:
    """Draw every patient and study; deterministic per (seed, patient index)."""
    cfg = settings.synth
    children = np.random.SeedSequence(seed).spawn(patients)
    plans: list[StudyPlan] = []
    mix = np.asarray(cfg.vendor_mix, float)
    dicom = {Vendor(v) for v in cfg.dicom_vendors}
    for i, child in enumerate(children):
        rng = np.random.default_rng(child)
        vendor = VENDORS[int(rng.choice(3, p=mix / mix.sum()))]
        tracer = Tracer.fdg if rng.random() < cfg.fdg_fraction else Tracer.psma
        sex = "M" if tracer is Tracer.psma else ("M" if rng.random() < 0.5 else "F")
        patient = ph.sample_patient(rng, sex)
        age = int(rng.integers(38, 86) if tracer is Tracer.fdg else rng.integers(52, 88))
        name = f"{_FAMILY[int(rng.integers(len(_FAMILY)))]}^{_GIVEN[sex][int(rng.integers(len(_GIVEN[sex])))]}"
        patient_id = f"{int(rng.integers(10, 99))}{i:05d}{int(rng.integers(0, 10))}"  # MRN-like, unique
        first = datetime(2019, 1, 1) + timedelta(days=int(rng.integers(0, 5 * 365)))
        birth = first - timedelta(days=int(age * 365.25 + rng.integers(0, 365)))
        visits = 2 if rng.random() < cfg.followup_fraction else 1
        for visit in range(visits):
            date = first + timedelta(days=int(visit * rng.integers(90, 270)))
            start = date.replace(hour=int(rng.integers(8, 15)), minute=int(rng.integers(0, 60)))
            accession = f"{int(rng.integers(100, 999))}{i:05d}{visit}"
            plans.append(StudyPlan(
                index=i, visit=visit, seed=(seed, i, visit), study_key=f"PETCT_{accession}", patient_id=patient_id,
                patient_name=name, birth_date=birth.strftime("%Y%m%d"), age=age + (date - first).days // 365,
                patient=patient, vendor=vendor, tracer=tracer,
                source_format="dicom" if vendor in dicom else "nifti", scale=scale, study_date=start,
                lesion_range=tuple(cfg.lesions_per_patient), min_lesion_voxels=settings.ingest.min_lesion_voxels,
                lesion_free_fraction=cfg.lesion_free_fraction))
    return plans


# ------------------------------------------------------------------------------------------ one study


@dataclass
class Generated:
    """A generated study in memory, before writing (tests use this directly)."""

    study: RawStudy
    placed: list[placement.Placed]
    labels_ct: np.ndarray  # internal labels on the CT grid
    labels_pet: np.ndarray
    ct_grid: ph.Grid
    pet_grid: ph.Grid
    pose: ph.Pose
    profile: sc.ScannerProfile
    scenario: str
    true_pet: np.ndarray  # SUV before blur and noise


# Scan ranges per tracer: (name, probability). Most oncological PET/CT runs from the skull base (or the vertex)
# to the mid-thigh; whole-body FDG (to the toes: melanoma, myeloma, sarcoma) is a few per cent of a clinic's
# FDG scans. Where a scan starts and stops varies by centimetres.
SCAN_RANGES: dict[Tracer, tuple[tuple[str, float], ...]] = {
    Tracer.fdg: (("skull base to mid-thigh", 0.62), ("vertex to mid-thigh", 0.3), ("vertex to toes", 0.08)),
    Tracer.psma: (("skull base to mid-thigh", 0.5), ("vertex to mid-thigh", 0.25), ("vertex to toes", 0.25)),
}
ARMS_UP = {"skull base to mid-thigh": 0.85, "vertex to mid-thigh": 0.8, "vertex to toes": 0.45}
SKULL_BASE_W, MID_THIGH_W = 1590.0, 700.0  # reference-man landmarks (mm above the soles)


def _scan_range(patient: ph.Patient, pose: ph.Pose, kind: str, rng: np.random.Generator) -> tuple[float, float]:
    """(z0, z1) in LPS of a scan of ``kind``: landmarks of this patient plus centimetres of variation."""
    tz = pose.shift[2]
    z_of = lambda w: float(pose.table_w(w * patient.vscale)) + tz  # noqa: E731
    if kind.startswith("skull base"):
        top = z_of(SKULL_BASE_W) + float(rng.uniform(-15.0, 45.0))
    else:
        top = z_of(ph.REF_HEIGHT) + float(rng.uniform(5.0, 35.0))
    if kind.endswith("mid-thigh"):
        bottom = z_of(MID_THIGH_W) + float(np.clip(rng.normal(0.0, 45.0), -90.0, 90.0))
    else:
        bottom = z_of(0.0) - float(rng.uniform(15.0, 40.0))
    return bottom, top


def _pose(patient: ph.Patient, rng: np.random.Generator, builder: ph.Builder, tracer: Tracer
          ) -> tuple[ph.Pose, float, tuple[float, float], str]:
    """Where the patient lies (table height under the back, lateral offset, head position along z, the
    patient's proportions) and what the scan covers."""
    lean = builder.trunk_profile()
    fat = builder.fat_profile(lean)
    back = float(np.max(fat.cv + 0.9 * fat.b))  # the flattened back (phantom ``flat_back``)
    centre_y = float(rng.uniform(-25.0, 15.0))
    z_feet = -float(patient.height_mm + rng.uniform(40.0, 250.0))
    pose = ph.Pose(patient.roll_deg, (float(rng.uniform(-15.0, 15.0)), centre_y, z_feet),
                   ph.proportions_warp(patient))
    table_y = centre_y + back * np.cos(np.deg2rad(patient.roll_deg)) + 2.0
    names, p = zip(*SCAN_RANGES[tracer])
    kind = names[int(rng.choice(len(names), p=np.asarray(p) / sum(p)))]
    return pose, table_y, _scan_range(patient, pose, kind, rng), kind


# Follow-up response per patient: (name, probability, size factor range, uptake factor range, P(resolved),
# new lesions range). Progression grows the known lesions, and in two of three adds one or two new ones: a
# follow-up report mostly compares known disease (more new lesions per progression lower the share of
# follow-up statements carried over with a comparison, whose target is >= 80 %; measured with 0-2:
# docs/realism/*.md, e.g. demo_seed8484.md 0.95).
RESPONSES = (("complete", 0.2, (0.0, 0.0), (0.0, 0.0), 1.0, (0, 0)),
             ("partial", 0.3, (0.45, 0.8), (0.35, 0.75), 0.3, (0, 0)),
             ("stable", 0.2, (0.9, 1.1), (0.85, 1.15), 0.0, (0, 0)),
             ("progression", 0.3, (1.1, 1.5), (1.1, 1.6), 0.0, (0, 2)))


GOLDEN = 0.6180339887498949


def _lesion_free(plan: StudyPlan) -> bool:
    """Whether a patient has no disease: a golden-ratio sequence over patient indices from a seeded start, so
    that any run of consecutive patients holds the intended share (a small cohort is not left without
    lesion-free studies by chance) and patient i stays the same whatever the cohort size."""
    start = np.random.SeedSequence(plan.seed[0]).generate_state(1)[0] / 2.0**32
    return bool((start + plan.index * GOLDEN) % 1.0 < plan.lesion_free_fraction)


def plan_disease(plan: StudyPlan) -> tuple[str, list[les.LesionSpec], str]:
    """(scenario, lesion specs, response) of a study, drawn at patient level so that a follow-up carries the
    baseline's disease over: the same lesions, grown, shrunk or resolved by a response, plus new ones on
    progression. Some patients have no disease (``lesion_free_fraction``; at 0 no study is lesion-free, no
    follow-up a complete response)."""
    rng = np.random.default_rng(np.random.SeedSequence(plan.seed[0], spawn_key=(plan.seed[1], 99)))
    lo, hi = plan.lesion_range
    free = _lesion_free(plan)
    n = 0 if free else int(np.clip(lo + rng.geometric(0.22) - 1, lo, hi))
    scenario, specs = les.plan_lesions(plan.tracer, plan.patient.sex, n, rng)
    if plan.visit == 0:
        return scenario, specs, ""
    # lesion_free_fraction 0: every study has disease, so no complete response either
    responses = [r for r in RESPONSES if plan.lesion_free_fraction > 0 or r[0] != "complete"]
    w = np.array([r[1] for r in responses])
    name, _, size_f, suv_f, p_gone, new = responses[int(rng.choice(len(responses), p=w / w.sum()))]
    out = []
    for s in specs:
        if rng.random() < p_gone:
            continue
        out.append(les.LesionSpec(**{**s.__dict__, "size_mm": s.size_mm * float(rng.uniform(*size_f)),
                                     "target_suv": max(s.target_suv * float(rng.uniform(*suv_f)), 1.5)}))
    k = int(rng.integers(new[0], new[1] + 1)) if specs else 0
    if k:
        _, extra = les.plan_lesions(plan.tracer, plan.patient.sex, k, rng)
        group0 = max((s.group for s in specs), default=-1) + 1
        out += [les.LesionSpec(**{**s.__dict__, "group": s.group + group0}) for s in extra]
    return scenario, out, name


def scan_setup(plan: StudyPlan) -> tuple[ph.Patient, ph.Pose, float, tuple[float, float], str]:
    """(patient with this study's arm position, pose, table height, z range, scan range name) of a study,
    from its own random stream."""
    rng = np.random.default_rng(np.random.SeedSequence(plan.seed[0], spawn_key=(*plan.seed[1:], 2)))
    pose, table_y, z_range, scan_range = _pose(plan.patient, rng, ph.Builder(plan.patient), plan.tracer)
    patient = replace(plan.patient, arms_up=bool(rng.random() < ARMS_UP[scan_range]))
    return patient, pose, table_y, z_range, scan_range


def generate_study(plan: StudyPlan, specs: list[les.LesionSpec] | None = None) -> Generated:
    """Phantom, lesions, CT and PET of one study (no files). Deterministic per ``plan.seed``.

    ``specs``: lesions to place instead of the planned ones (tests pin findings and locations with it).
    """
    ss = np.random.SeedSequence(plan.seed[0], spawn_key=plan.seed[1:])
    rng = np.random.default_rng(ss)
    prof = sc.profile(plan.vendor, plan.scale)
    scenario, planned, response = plan_disease(plan)
    patient, pose, table_y, z_range, scan_range = scan_setup(plan)
    ops = ph.Builder(patient).build()
    ct_grid, pet_grid = sc.grids(prof, z_range)
    labels_ct = ph.rasterize(ops, ct_grid, pose, table_y)
    labels_pet = ph.rasterize(ops, pet_grid, pose, table_y)

    if specs is None:
        specs = planned
    else:
        scenario = "given"
    mimics = les.plan_mimics(plan.tracer, patient.sex, rng)
    placed = placement.place_lesions(specs + mimics, labels_ct, ct_grid, pose, ph.structure_bounds(ops), rng,
                               min_voxels=plan.min_lesion_voxels)
    placement.number_instances(placed)

    tables_ct = sc.ct_tables(prof, rng, age=plan.age, girth=patient.girth)
    hu = sc.ct_base(labels_ct, tables_ct, ct_grid.spacing[0])
    imaging.apply_ct(hu, labels_ct, placed, tables_ct.hu, rng)
    sc.add_ct_noise(hu, labels_ct, tables_ct, rng)
    anat = segmenter_labels(labels_ct)  # what a real whole-body segmenter outputs: no stations, no lesions

    suv = sc.suv_table(plan.tracer, rng, brown_fat=patient.brown_fat)
    true = sc.pet_true(labels_pet, suv)
    imaging.pet_activity(true, pet_grid, ct_grid, placed, prof.pet_fwhm_mm, rng)
    calibration = float(prof.suv_calibration * rng.normal(1.0, 0.006))
    pet = sc.pet_image(true, pet_grid, prof, calibration, rng)
    imaging.measure(pet, pet_grid, ct_grid, placed)

    dose = round(prof.dose_per_kg(plan.tracer) * patient.weight_kg * float(rng.uniform(0.9, 1.1)), 1)
    lo, hi = prof.uptake_range(plan.tracer)
    injection = plan.study_date
    acquisition = injection + timedelta(minutes=float(round(rng.uniform(lo, hi), 1)))
    mimic_names = [f"{p.spec.benign} ({p.spec.location_id})" for p in placed if p.spec.benign]
    if patient.brown_fat and plan.tracer is Tracer.fdg:
        mimic_names.append("brown fat")
    vol = lambda a, g: Volume(a, g.spacing, g.origin)  # noqa: E731
    study = RawStudy(
        study_key=plan.study_key, patient_id=plan.patient_id, patient_name=plan.patient_name,
        birth_date=plan.birth_date, sex=patient.sex, age=plan.age,
        height_m=round(patient.height_mm / 1000, 2),
        weight_kg=patient.weight_kg, vendor=plan.vendor, tracer=plan.tracer, injected_dose_mbq=dose,
        injection_time=injection, acquisition_time=acquisition, ct=vol(hu, ct_grid), pet=vol(pet, pet_grid),
        lesions=vol(imaging.lesion_mask(hu.shape, placed), ct_grid), anatomy=vol(anat, ct_grid),
        truth=imaging.truths(plan.study_key, placed, plan.tracer), source_format=plan.source_format,
        pet_calibration=calibration, scan_range=scan_range, arms_up=patient.arms_up, mimics=mimic_names,
        response=response)
    return Generated(study, placed, labels_ct, labels_pet, ct_grid, pet_grid, pose, prof, scenario, true)


def synthesize_study(plan: StudyPlan, out: Path) -> StudyResult:
    """Generate one study, write its report and files into ``out``; return its rows and timings."""
    from tasks.synth.reports import ReportContext, render_report
    from tasks.synth.writers import write_raw_study

    t0 = time.perf_counter()
    gen = generate_study(plan)
    ss = np.random.SeedSequence(plan.seed[0], spawn_key=(*plan.seed[1:], 1))
    # The patient's disease and, for a follow-up, the baseline's lesion sites (what comparison wording refers to)
    prior = None
    if plan.visit > 0:
        _, baseline, _ = plan_disease(replace(plan, visit=0))
        prior = frozenset(spec.location_id for spec in baseline)
    context = ReportContext(disease="" if gen.scenario == "given" else gen.scenario, prior_sites=prior,
                            response=gen.study.response)
    rendered = render_report(gen.study, np.random.default_rng(ss), context=context)
    gen.study.report = rendered.text
    t1 = time.perf_counter()
    row = write_raw_study(gen.study, out)
    t2 = time.perf_counter()
    return StudyResult(row, gen.study.truth, list(rendered.findings), t1 - t0, t2 - t1, gen.ct_grid.shape,
                       gen.pet_grid.shape)


# ------------------------------------------------------------------------------------------ the cohort


def synthesize_cohort(out: Path, patients: int, seed: int, scale: str = "demo", settings: Settings | None = None,
                      progress: bool = True) -> CohortSummary:
    """Write ``patients`` synthetic patients (some with two studies) into the raw drop folder ``out``."""
    settings = settings or get_settings()
    if patients < 1:
        raise ValueError(f"patients must be >= 1, got {patients}")
    if scale not in sc.SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose from {sc.SCALES}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    plans = plan_cohort(patients, seed, scale, settings)
    results: dict[str, StudyResult] = {}
    workers = min(settings.synth.workers, len(plans))
    bar = _progress(len(plans), progress)
    if workers <= 1:
        for plan in plans:
            results[plan.study_key] = synthesize_study(plan, out)
            bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(synthesize_study, plan, out): plan.study_key for plan in plans}
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                bar.update(1)
    bar.close()
    ordered = [results[p.study_key] for p in plans]
    layout = RawLayout(out)
    tables.MANIFEST.write(tables.MANIFEST.frame([r.row for r in ordered]), layout.manifest)
    truth = [t for r in ordered for t in r.truth]
    tables.TRUTH.write(tables.TRUTH.frame(truth) if truth else pd.DataFrame(columns=tables.TRUTH.columns),
                       layout.truth_lesions)
    rt = [f for r in ordered for f in r.report_truth]
    tables.REPORT_TRUTH.write(tables.REPORT_TRUTH.frame(rt) if rt else
                              pd.DataFrame(columns=tables.REPORT_TRUTH.columns), layout.truth_report_findings)
    return CohortSummary(
        out=out, patients=patients, studies=len(plans), scale=scale,
        vendors=dict(Counter(r.row.vendor.value for r in ordered)),
        tracers=dict(Counter(r.row.tracer.value for r in ordered)),
        formats=dict(Counter(p.source_format for p in plans)),
        lesions=len(truth), lesions_in_mask=sum(t.in_mask for t in truth),
        lesions_reported=sum(t.reported for t in truth),
        generate_s_per_study=float(np.mean([r.generate_s for r in ordered])),
        write_s_per_study=float(np.mean([r.write_s for r in ordered])),
        wall_s=time.perf_counter() - t0)


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc="synth", unit="study", disable=not enabled)
