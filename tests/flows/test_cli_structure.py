"""`petcap structure [--tracer T] FILE` on any input: exit 0 and a valid StructuredReport JSON."""

import json

import pytest

from data_contracts.structured_report import StructuredReport
from flows.cli import main


@pytest.mark.parametrize("content", [
    b"",
    bytes(range(256)) * 40,  # binary junk
    "Hypermétabolisme intense du lobe supérieur droit (SUVmax 12,3).".encode("latin-1"),  # another encoding
    "肺に集積あり。".encode(),
    b"Lytic lesion in T7 with intense uptake, SUVmax 8.1.\n" * 2000,  # ~100 kB, no tracer named
])
def test_structure_never_fails(tmp_path, capsys, content):
    path = tmp_path / "report.txt"
    path.write_bytes(content)
    assert main(["--home", str(tmp_path / "h"), "structure", str(path)]) == 0
    report = StructuredReport.model_validate_json(capsys.readouterr().out)
    assert all(f.pet_finding.tracer is None for f in report.findings)


def test_structure_tracer_flag(tmp_path, capsys):
    path = tmp_path / "report.txt"
    path.write_text("Mediastinal lymph nodes with intense uptake, SUVmax 7.4.")
    assert main(["--home", str(tmp_path / "h"), "structure", "--tracer", "PSMA", str(path)]) == 0
    (f,) = json.loads(capsys.readouterr().out)["findings"]
    assert (f["location_id"], f["pet_finding"]["tracer"], f["suv_max"]) == ("ln_mediastinal", "PSMA", 7.4)
