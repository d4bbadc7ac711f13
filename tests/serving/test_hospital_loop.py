"""The hospital loop end to end on a real Orthanc: pull -> ingest (caption-study's) -> caption -> DICOM SEG + SR
pushed back -> a clinician's correction round-trips (regenerated caption, corrected SR referencing the first,
a corrections row the next refresh turns into a training label)."""

from __future__ import annotations

import shutil
import subprocess

import highdicom as hd
import pydicom
import pytest

from data_contracts.settings import PacsSettings
from data_contracts.tables import CORRECTIONS
from serving.hospital_loop import correct_lesion_files, export_and_push
from serving.study import caption_study_files
from tasks.pacs.pull import pull_studies
from tests.pacs_support import upload_study


def test_pull_caption_push_and_correct(pacs, dicom_drop, trained, tmp_path):
    settings, loc, cap = trained
    source = min(p for p in (dicom_drop / "studies").iterdir() if p.is_dir())
    study_uid = upload_study(pacs, source, "ACC77")
    home = tmp_path / "home"  # a home of its own: tables (corrections) must not land in the shared cohort's
    hospital = settings.model_copy(update={"home": home, "raw_dir": tmp_path / "drop", "tables_dir": home / "tables",
                                           "store_url": str(home / "volumes.zarr"),
                                           "pacs": PacsSettings(url=pacs.dicomweb)})
    pulled = pull_studies(hospital, study_uids=[study_uid])
    assert len(pulled.pulled) == 1
    study = hospital.raw.study_dir(pulled.pulled[0])

    out = tmp_path / "out"
    result = caption_study_files(study, out, hospital, loc.checkpoint, cap.checkpoint, model_version="3")
    assert result.lesions > 0
    dicom = export_and_push(study, out, hospital, "3", push=True)
    series = {str(s.Modality): s for s in pacs.series(study_uid)}
    assert {"CT", "PT", "SEG", "SR"} <= set(series) and len(dicom["pushed"]) == 2
    sr = hd.sr.srread(dicom["sr"])
    ct_series = pydicom.dcmread(next((study / "ct").iterdir()), stop_before_pixels=True).SeriesInstanceUID
    seg = pydicom.dcmread(dicom["seg"])
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct_series
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == result.lesions
    assert all(g.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID for g in groups)
    algorithm = [item for item in groups[0][0].ContentSequence if item.ConceptNameCodeSequence[0].CodeMeaning ==
                 "Algorithm Version"]
    assert algorithm and algorithm[0].TextValue == "3"
    if shutil.which("dsrdump"):
        assert subprocess.run(["dsrdump", dicom["sr"]], capture_output=True).returncode == 0

    first = result.captions.lesions[0]
    target = "vertebra_t8" if first.top5[0]["location_id"] != "vertebra_t8" else "vertebra_t9"
    fix = correct_lesion_files(study, out, hospital, loc.checkpoint, cap.checkpoint, first.instance, target,
                               "dr.test", "3", push=True)
    assert (fix.previous_location_id, fix.location_id) == (first.top5[0]["location_id"], target)
    corrected = hd.sr.srread(fix.sr)
    ref = corrected.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == sr.SOPInstanceUID
    site = corrected.content.get_volumetric_roi_measurement_groups()[0].finding_sites[0].value
    assert site.meaning in ("T8 vertebra", "T9 vertebra")
    rows = CORRECTIONS.records(CORRECTIONS.read(hospital.corrections_path))
    assert [(r.instance, r.location_id, r.corrected_by, r.model_version) for r in rows] == \
        [(first.instance, target, "dr.test", "3")]
    assert sum(str(s.Modality) == "SR" for s in pacs.series(study_uid)) >= 1
    stored_srs = [s for s in pacs.series(study_uid) if str(s.Modality) == "SR"]
    assert int(stored_srs[0].get("NumberOfSeriesRelatedInstances", 2)) >= 1
