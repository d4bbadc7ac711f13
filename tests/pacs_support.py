"""A real PACS for the hospital-loop tests (fixtures shared through tests/conftest.py): Orthanc with its DICOMweb
plugin on a free loopback port, its own storage folder, and a synthetic DICOM PET/CT study uploaded with the lesion
SEG a segmenter would have stored.

CI installs Orthanc (``.ci/run``); elsewhere the tests skip when it is missing."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
import requests
import SimpleITK as sitk
from pydicom.uid import generate_uid

ORTHANC = shutil.which("Orthanc")
PLUGINS = [p for p in ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",) if Path(p).exists()]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Pacs:
    root: str  # http://127.0.0.1:PORT
    dicomweb: str  # root + /dicom-web

    def studies(self) -> list[dict]:
        return requests.get(f"{self.dicomweb}/studies", timeout=10).json()

    def series(self, study_uid: str) -> list[pydicom.Dataset]:
        answer = requests.get(f"{self.dicomweb}/studies/{study_uid}/series", timeout=10).json()
        return [pydicom.Dataset.from_json(item) for item in answer]


@pytest.fixture(scope="module")
def pacs(tmp_path_factory) -> Pacs:
    if not ORTHANC or not PLUGINS:
        if os.environ.get("CI"):
            pytest.fail("Orthanc with the DICOMweb plugin is not installed (apt-get install orthanc orthanc-dicomweb)")
        pytest.skip("Orthanc with the DICOMweb plugin is not installed")
    folder = tmp_path_factory.mktemp("orthanc")
    http, dicom = _free_port(), _free_port()
    config = {"Name": "petcap-test", "StorageDirectory": str(folder / "db"), "IndexDirectory": str(folder / "db"),
              "HttpPort": http, "DicomPort": dicom, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
              "Plugins": PLUGINS, "DicomWeb": {"Enable": True, "Root": "/dicom-web/"}, "HttpTimeout": 60}
    (folder / "config.json").write_text(json.dumps(config))
    root = f"http://127.0.0.1:{http}"
    with open(folder / "orthanc.log", "w") as log:
        proc = subprocess.Popen([ORTHANC, str(folder / "config.json")], stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{root}/system", timeout=1).ok:
                    break
            except requests.ConnectionError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc did not start: {(folder / 'orthanc.log').read_text()[-2000:]}")
            time.sleep(0.2)
        yield Pacs(root, f"{root}/dicom-web")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def dicom_drop(tmp_path_factory) -> Path:
    """Two tiny synthetic patients, every study written as DICOM series."""
    from data_contracts.settings import Settings, SynthSettings
    from tasks.synth.cohort import synthesize_cohort

    root = tmp_path_factory.mktemp("dicom_drop")
    settings = Settings(home=root.parent / "h", synth=SynthSettings(
        dicom_vendors=("Siemens", "GE", "United Imaging"), workers=1, followup_fraction=0.0, lesion_free_fraction=0.0))
    synthesize_cohort(root, patients=2, seed=21, scale="tiny", settings=settings, progress=False)
    return root


def upload_study(pacs: Pacs, study_dir: Path, accession: str, with_pet: bool = True, with_seg: bool = True,
                 seg_shift_mm: float = 0.0) -> str:
    """Store one synthetic study on the PACS as a department would have it: CT, PET (unless ``with_pet`` is
    false), an accession number, and the segmenter's lesion SEG (optionally shifted off the CT grid).
    Returns the Study Instance UID."""
    import numpy as np

    from data_contracts.geometry import Geometry
    from tasks.pacs.dicom_series import read_series
    from tasks.pacs.seg_export import Algorithm, lesion_seg

    series = ["ct", "pet"] if with_pet else ["ct"]
    datasets = []
    for name in series:
        for f in sorted((study_dir / name).iterdir()):
            ds = pydicom.dcmread(f)
            ds.AccessionNumber = accession
            datasets.append(ds)
    ct = [ds for ds in datasets if ds.Modality == "CT"]
    if with_seg:
        image = sitk.ReadImage(str(study_dir / "lesions.nii.gz"))
        labels = sitk.GetArrayFromImage(image)
        grid = Geometry.of(image)
        seg_ct = read_series(study_dir / "ct")
        for ds in seg_ct:
            ds.AccessionNumber = accession
            if seg_shift_mm:
                ds.ImagePositionPatient = [float(v) + seg_shift_mm for v in ds.ImagePositionPatient]
        instances = sorted(int(v) for v in np.unique(labels) if v)
        seg = lesion_seg(seg_ct, labels, grid if not seg_shift_mm else _shifted(grid, seg_shift_mm),
                         {i: generate_uid() for i in instances}, Algorithm(name="nnunet-lesions", version="1"),
                         series_number=800, description="lesion segmentation")
        if seg_shift_mm:  # the SEG claims to derive from the real CT, but lies elsewhere
            seg.ReferencedSeriesSequence[0].SeriesInstanceUID = ct[0].SeriesInstanceUID
        datasets.append(seg)
    from dicomweb_client.api import DICOMwebClient

    DICOMwebClient(url=pacs.dicomweb).store_instances(datasets)
    return str(ct[0].StudyInstanceUID)


def _shifted(grid, mm: float):
    from dataclasses import replace

    return replace(grid, origin=tuple(v + mm for v in grid.origin))
