"""A captioned study's SEG and TID 1500 SR: written from the caption output, parsed back by highdicom, printed by
dcmtk's dsrdump, stored on Orthanc by STOW-RS and found there next to the source series."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest

from data_contracts.errors import PetcapError
from data_contracts.settings import PacsSettings, Settings
from tasks.new_study.intake import ingest_new_study
from tasks.pacs.export import SEG_NAME, SR_NAME, export_study
from tasks.pacs.push import push_files
from tasks.pacs.seg_export import Algorithm
from tasks.pacs.site_codes import SCHEME, finding_site

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def captioned(dicom_drop, tmp_path_factory) -> tuple[Path, Path, dict]:
    """A DICOM study ingested as caption-study does, with a captions.json as it writes (fixed captions)."""
    study = min(p for p in (dicom_drop / "studies").iterdir() if p.is_dir())
    out = tmp_path_factory.mktemp("captioned")
    ingested, _ = ingest_new_study(study, out, Settings(home=out / "home"))
    tops = ["vertebra_t7", "ln_mediastinal_4r", "lung_rul", "liver_s6", "rib_7_r"]
    lesions = [{"instance": les.instance, "volume_ml": les.volume_ml, "suv_max": les.suv_max,
                "caption": f"lesion {les.instance} caption",
                "top5": [{"location_id": t, "location": t, "confidence": c}
                         for t, c in zip(tops[i % 5:] + tops[:i % 5], (0.9, 0.05, 0.03, 0.01, 0.01))]}
               for i, les in enumerate(sorted(ingested.lesions, key=lambda x: x.instance))]
    captions = {"study_id": ingested.study.study_id, "lesions": lesions}
    (out / "captions.json").write_text(json.dumps(captions))
    return study, out, captions


def test_seg_and_sr_describe_every_lesion(captioned):
    study, out, captions = captioned
    result = export_study(study, out, Algorithm(version="7"))
    ct = [pydicom.dcmread(f, stop_before_pixels=True) for f in sorted((study / "ct").iterdir())]
    seg = pydicom.dcmread(result.seg)
    assert len(seg.SegmentSequence) == len(captions["lesions"])
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == ct[0].SeriesInstanceUID
    assert seg.StudyInstanceUID == ct[0].StudyInstanceUID and seg.PatientID == ct[0].PatientID

    sr = hd.sr.srread(result.sr)
    assert sr.PatientID == ct[0].PatientID and sr.StudyInstanceUID == ct[0].StudyInstanceUID
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(captions["lesions"])
    for group, lesion in zip(groups, captions["lesions"]):
        site = group.finding_sites[0].value
        want = finding_site(lesion["top5"][0]["location_id"]).value.value
        assert site.value == want
        suv = group.get_measurements(name=hd.sr.CodedConcept("126401", "DCM", "SUVbw"))[0]
        assert suv.value == pytest.approx(lesion["suv_max"], abs=1e-3)
        ranks = [m for m in group.get_measurements() if m.name.scheme_designator == SCHEME]
        assert [round(m.value, 4) for m in ranks] == [t["confidence"] for t in lesion["top5"]]
        texts = [item.TextValue for item in group[0].ContentSequence if item.ValueType == "TEXT"]
        assert lesion["caption"] in texts
        assert group.referenced_segment is not None
    assert sr.ContentTemplateSequence[0].TemplateIdentifier == "1500"
    if shutil.which("dsrdump"):
        dump = subprocess.run(["dsrdump", str(result.sr)], capture_output=True, text=True)
        assert dump.returncode == 0 and "Lesion caption" in dump.stdout and "error" not in dump.stderr.lower()


def test_a_lesion_free_study_gets_an_sr_saying_so(captioned, tmp_path):
    study, out, captions = captioned
    shutil.copytree(out, tmp_path / "out")
    (tmp_path / "out" / "captions.json").write_text(json.dumps({**captions, "lesions": []}))
    result = export_study(study, tmp_path / "out", Algorithm())
    assert result.seg is None
    sr = hd.sr.srread(result.sr)
    assert sr.content.get_volumetric_roi_measurement_groups() == []
    assert "No abnormality detected" in _coded_values(sr)


def test_a_correction_writes_an_sr_that_names_its_predecessor(captioned, tmp_path):
    study, out, captions = captioned
    shutil.copytree(out, tmp_path / "out")
    first = export_study(study, tmp_path / "out", Algorithm(version="7"))
    before = pydicom.dcmread(first.sr)
    corrected = {**captions, "corrections": {str(captions["lesions"][0]["instance"]): {"location_id": "vertebra_t8"}}}
    (tmp_path / "out" / "captions.json").write_text(json.dumps(corrected))
    second = export_study(study, tmp_path / "out", Algorithm(version="7"), previous_sr=first.sr)
    after = hd.sr.srread(second.sr)
    ref = after.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert ref.ReferencedSOPInstanceUID == before.SOPInstanceUID
    site = after.content.get_volumetric_roi_measurement_groups()[0].finding_sites[0].value
    assert site.meaning == "T8 vertebra"


def test_push_stores_seg_and_sr_next_to_the_source_series(pacs, captioned, tmp_path):
    from tests.pacs_support import upload_study

    study, out, _ = captioned
    study_uid = upload_study(pacs, study, "ACC9", with_seg=False)
    result = export_study(study, out, Algorithm(version="7"))
    uids = push_files(PacsSettings(url=pacs.dicomweb), [result.seg, result.sr], "study")
    series = {str(s.Modality): s for s in pacs.series(study_uid)}
    assert {"CT", "PT", "SEG", "SR"} <= set(series)
    assert len(uids) == 2


def test_a_stow_rejection_is_named(pacs, captioned, tmp_path):
    _, out, _ = captioned
    broken = tmp_path / "broken.dcm"
    ds = pydicom.dcmread(out / SEG_NAME)
    del ds.StudyInstanceUID  # no study to file it under: the PACS refuses it
    ds.save_as(broken)
    with pytest.raises(PetcapError) as e:
        push_files(PacsSettings(url=pacs.dicomweb), [broken], "study")
    assert e.value.reason == "stow_rejected"


def _coded_values(ds: pydicom.Dataset) -> list[str]:
    """Meanings of every CODE value in an SR content tree."""
    out = []
    for item in ds.get("ContentSequence", []):
        out += [c.CodeMeaning for c in item.get("ConceptCodeSequence", [])]
        out += _coded_values(item)
    return out


def test_export_reads_the_private_store_without_importing_ingestion():
    """Export finds the caption output's volume store by ``data_contracts.settings.STORE_NAME`` and imports no
    ingestion or patch code for it (the new-study intake it took the name from pulled ingestion and the patch
    kernels)."""
    heavy = ("tasks.new_study", "tasks.ingest", "tasks.patches")
    code = f"import sys, tasks.pacs.export; print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert out.stdout.strip() == "[]"
