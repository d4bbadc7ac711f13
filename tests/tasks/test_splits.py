"""Patient-level splits: per-vendor ratios, all three splits per vendor, stability under additions, the
assertions where splits are written, and the per-vendor / per-tracer summary from the tables."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timezone

import pytest

from data_contracts.findings import Tracer, Vendor
from data_contracts.records import Acquisition, CaptionSample
from data_contracts.settings import Settings, SplitSettings
from data_contracts.tables import CAPTION_SAMPLES, SPLITS, STUDIES, StudyRow
from tasks.splits import SPLIT_NAMES, SplitError, assign_splits, read_splits, update_splits, with_splits, write_splits

CFG = SplitSettings()
RATIO = dict(zip(SPLIT_NAMES, CFG.ratios))


def patients(n: int, salt: int) -> list[str]:
    return [f"P{(salt * 1_000_003 + i * 7919) % 16**12:012x}" for i in range(n)]


def counts(rows, vendor) -> Counter:
    return Counter(r.split for r in rows if r.vendor == vendor)


def test_every_vendor_gets_all_splits_in_the_configured_ratios():
    cohort = {**{p: Vendor.united_imaging for p in patients(320, 1)}, **{p: Vendor.siemens for p in patients(70, 2)},
              **{p: Vendor.ge for p in patients(3, 3)}}
    rows = assign_splits([], cohort, CFG)
    assert len(rows) == len({r.patient_id for r in rows}) == len(cohort)  # one split per patient
    for vendor, n in ((Vendor.united_imaging, 320), (Vendor.siemens, 70)):
        c = counts(rows, vendor)
        assert all(abs(c[s] - RATIO[s] * n) <= 1 for s in SPLIT_NAMES), c
        assert min(c[s] for s in SPLIT_NAMES) >= 1
    assert counts(rows, Vendor.ge) == Counter(train=1, val=1, test=1)  # a tiny vendor still gets val and test
    # deterministic, whatever the order the patients come in
    shuffled = dict(random.Random(0).sample(sorted(cohort.items()), len(cohort)))
    again = assign_splits([], shuffled, CFG, now=rows[0].assigned_at)
    assert sorted(again, key=lambda r: r.patient_id) == sorted(rows, key=lambda r: r.patient_id)
    # the paper's cohort size gives the paper's split
    paper = assign_splits([], {p: Vendor.ge for p in patients(1867, 4)}, CFG)
    assert counts(paper, Vendor.ge) == Counter(train=1647, val=100, test=120)


def test_adding_patients_never_moves_an_earlier_one():
    rows = assign_splits([], {p: Vendor.siemens for p in patients(200, 5)}, CFG)
    before = {r.patient_id: r.split for r in rows}
    grown = assign_splits(rows, {p: Vendor.siemens for p in patients(2, 6)}, CFG)
    assert len(grown) == 202 and {r.patient_id: r.split for r in grown[:200]} == before
    # one at a time, for a new vendor: at every step nobody moves and the counts track the ratios
    rows = []
    for i, p in enumerate(patients(150, 7), start=1):
        previous = {r.patient_id: r.split for r in rows}
        rows = assign_splits(rows, {p: Vendor.ge}, CFG)
        assert {r.patient_id: r.split for r in rows if r.patient_id in previous} == previous
        c = counts(rows, Vendor.ge)
        if i == 2:
            assert c["val"] + c["test"] == 1
        if i >= 3:
            assert c["val"] >= 1 and c["test"] >= 1
            assert all(abs(c[s] - RATIO[s] * i) <= 2 for s in SPLIT_NAMES), (i, c)


def test_writing_asserts_nobody_moves_and_nobody_is_twice(tmp_path):
    path = tmp_path / "splits.parquet"
    rows = assign_splits([], {p: Vendor.ge for p in patients(20, 8)}, CFG)
    write_splits(path, rows, [])
    stored = SPLITS.records(SPLITS.read(path))
    moved = [r.model_copy(update={"split": "test" if r.split != "test" else "train"}) if i == 0 else r
             for i, r in enumerate(stored)]
    with pytest.raises(SplitError, match="assignments never change"):
        write_splits(path, moved, stored)
    with pytest.raises(SplitError, match="two splits"):
        write_splits(path, stored + [stored[0].model_copy(update={"split": "val"})], stored)
    with pytest.raises(SplitError, match="dropped"):
        write_splits(path, stored[1:], stored)


def _study(patient: str, n: int, vendor: Vendor, tracer: Tracer) -> StudyRow:
    """A study row; ``n`` makes its pseudonym unique."""
    acq = Acquisition(vendor=vendor, tracer=tracer, ct_spacing_mm=(1.0, 1.0, 3.0), ct_shape=(10, 10, 10),
                      pet_spacing_mm=(4.0, 4.0, 4.0), pet_shape=(5, 5, 5), injected_dose_mbq=300.0,
                      uptake_minutes=60.0, patient_weight_kg=80.0, source_format="nifti")
    return StudyRow(patient_id=patient, study_id=f"S{n:012x}", acquisition=acq, content_hash="0" * 64,
                    store_path="x", lesion_count=2, ingested_at=datetime(2025, 1, 1, tzinfo=timezone.utc))


def _sample(study: StudyRow, instance: int) -> CaptionSample:
    return CaptionSample(sample_id=f"{study.study_id}-{instance:03d}", patient_id=study.patient_id,
                         study_id=study.study_id, instance=instance, vendor=study.vendor, tracer=study.tracer,
                         location_id="liver_s7", ct_finding="hypodense_lesion", caption="a lesion", finding_index=0)


def test_update_splits_from_the_tables_and_its_summary(tmp_path):
    settings = Settings(home=tmp_path)
    rng = random.Random(1)
    studies, samples = [], []
    for i, p in enumerate(patients(120, 9)):
        vendor = (Vendor.united_imaging, Vendor.siemens, Vendor.ge)[i % 3]
        for visit in range(1 + (i % 4 == 0)):  # some patients have a second study, with the other tracer
            study = _study(p, len(studies), vendor, (Tracer.fdg, Tracer.psma)[(i + visit) % 2])
            studies.append(study)
            samples += [_sample(study, k) for k in range(1, rng.randint(1, 4) + 1)]
    STUDIES.write(STUDIES.frame(studies), settings.table_path("studies"))
    CAPTION_SAMPLES.write(CAPTION_SAMPLES.frame(samples), settings.table_path("caption_samples"))

    summary = update_splits(settings)
    assert (summary.patients, summary.new_patients, summary.written) == (120, 120, True)
    splits = read_splits(settings)
    t = summary.table
    for (vendor, tracer, split), g in t.groupby(["vendor", "tracer", "split"]):
        mine = [s for s in studies if (s.vendor.value, s.tracer.value, splits[s.patient_id]) == (vendor, tracer, split)]
        row = g.iloc[0]
        assert row.studies == len(mine) and row.patients == len({s.patient_id for s in mine})
        assert row.lesions == sum(x.study_id in {s.study_id for s in mine} for x in samples)
    assert t.lesions.sum() == len(samples) and set(t.vendor) == {v.value for v in Vendor}
    for vendor in Vendor:
        assert set(t[t.vendor == vendor.value].split) == set(SPLIT_NAMES)  # every vendor has all three
    joined = with_splits(CAPTION_SAMPLES.read(settings.table_path("caption_samples")), settings)
    assert joined.groupby("patient_id").split.nunique().max() == 1 and joined.split.notna().all()
    assert "United Imaging" in str(summary) and "patients" in str(summary)

    # nothing new: the table is not touched; two new patients: only they are assigned
    mtime = settings.table_path("splits").stat().st_mtime_ns
    assert update_splits(settings).written is False
    assert settings.table_path("splits").stat().st_mtime_ns == mtime
    extra = [_study(p, len(studies) + k, Vendor.ge, Tracer.fdg) for k, p in enumerate(patients(2, 10))]
    STUDIES.write(STUDIES.frame(studies + extra), settings.table_path("studies"))
    later = update_splits(settings)
    assert later.new_patients == 2
    after = read_splits(settings)
    assert {p: after[p] for p in splits} == splits and len(after) == 122


def test_split_settings_are_validated_and_overridable(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="sum to 1"):
        SplitSettings(ratios=(0.8, 0.1, 0.2))
    monkeypatch.setenv("PETCAP_SPLITS__RATIOS", "[0.8, 0.1, 0.1]")
    monkeypatch.setenv("PETCAP_PATCHES__WORKERS", "3")
    s = Settings(home=tmp_path)
    assert s.splits.ratios == (0.8, 0.1, 0.1) and s.patches.workers == 3
    assert s.patch_store_url == str(tmp_path / "patches.zarr")
    assert sum(CFG.ratios) == pytest.approx(1.0) and round(CFG.ratios[1] * 1867) == 100
