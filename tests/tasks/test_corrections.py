"""Clinicians' corrections: recorded once (the table never shrinks), and the next linking run makes the corrected
location the lesion's training label, its caption remade from the report's CT and PET findings."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone

from data_contracts.caption import caption_text
from data_contracts.tables import CAPTION_SAMPLES, CORRECTIONS, FINDINGS, CorrectionRow
from tasks.corrections import latest_corrections, record_correction
from tasks.link import link_dataset


def _row(sample, location: str, minutes: int) -> CorrectionRow:
    return CorrectionRow(study_id=sample.study_id, instance=sample.instance, location_id=location,
                         previous_location_id=sample.location_id, corrected_by="dr.test",
                         at=datetime(2026, 12, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes),
                         model_version="2", sr_instance_uid="1.2.3")


def test_the_next_link_uses_the_newest_correction_as_the_label(cohort, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(cohort.home, home)
    settings = cohort.model_copy(update={"home": home, "raw_dir": cohort.raw_dir, "store_url": str(home / "volumes.zarr"),
                                         "tables_dir": home / "tables"})
    samples = CAPTION_SAMPLES.records(CAPTION_SAMPLES.read(settings.table_path("caption_samples")))
    target = samples[0]
    new = "vertebra_t9" if target.location_id != "vertebra_t9" else "vertebra_t10"
    record_correction(settings, _row(target, "rib_7_r", 0))
    record_correction(settings, _row(target, new, 5))  # a second opinion, later: it wins
    record_correction(settings, _row(target, new, 5))  # the same row twice: kept once
    assert len(CORRECTIONS.read(settings.corrections_path)) == 2
    assert latest_corrections(settings)[(target.study_id, target.instance)].location_id == new

    summary = link_dataset(settings, "rules")
    assert summary.corrected == 1
    after = {s.sample_id: s for s in CAPTION_SAMPLES.records(CAPTION_SAMPLES.read(settings.table_path("caption_samples")))}
    fixed = after[target.sample_id]
    finding = next(r.finding for r in FINDINGS.records(FINDINGS.read(settings.table_path("findings")))
                   if (r.study_id, r.finding_index) == (fixed.study_id, fixed.finding_index))
    assert fixed.location_id == new
    assert fixed.caption == caption_text(new, finding.ct_finding, finding.pet_finding)
    assert all(after[s.sample_id].location_id == s.location_id for s in samples[1:] if s.sample_id in after)
