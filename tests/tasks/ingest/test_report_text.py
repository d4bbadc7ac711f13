"""Report files in any encoding a hospital system writes are read; one that cannot be is one quarantine row."""

from __future__ import annotations

import codecs

import pytest

from data_contracts.tables import ManifestRow
from tasks.ingest.errors import IngestError
from tasks.ingest.report_text import read_report_text, read_reports, report_source

TEXT = "Befund: Läsion im Leberségment VII, SUVmax 8,4 – „deutlich“ ↑\r\nImpression: metastasis."


@pytest.mark.parametrize("encode", [
    lambda t: t.encode("utf-8"),
    lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    lambda t: t.encode("utf-16"),  # with BOM (little endian here)
    lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
], ids=["utf8", "utf8-bom", "utf16-bom", "utf16be-bom"])
def test_unicode_encodings_read_back_exactly(tmp_path, encode):
    path = tmp_path / "r.txt"
    path.write_bytes(encode(TEXT))
    assert read_report_text(path, "reports/S1.txt") == TEXT.replace("\r\n", "\n")


def test_latin1_and_windows_1252_reports_read(tmp_path):
    latin = "Lésion hépatique, SUVmax 8,4; Größe 12 mm"
    (tmp_path / "a.txt").write_bytes(latin.encode("latin-1"))
    assert read_report_text(tmp_path / "a.txt", "s") == latin
    smart = "“Hepatic” lesion – 12 mm"
    (tmp_path / "b.txt").write_bytes(smart.encode("cp1252"))
    assert read_report_text(tmp_path / "b.txt", "s") == smart


@pytest.mark.parametrize("data, reason", [
    ("Lesion".encode("utf-16-le"), "undecodable_report"),  # UTF-16 without a BOM: NULs
    (b"%PDF-1.4\x00\x01\x02binary", "undecodable_report"),
    (codecs.BOM_UTF8 + b"\xff\xfe\xfa bad", "undecodable_report"),
    (b"   \r\n ", "empty_report"),
])
def test_undecodable_reports_are_named(tmp_path, data, reason):
    path = tmp_path / "r.txt"
    path.write_bytes(data)
    with pytest.raises(IngestError) as e:
        read_report_text(path, "reports/S1.txt")
    assert (e.value.reason, e.value.source) == (reason, "reports/S1.txt")


def test_missing_report_is_named(tmp_path):
    with pytest.raises(IngestError) as e:
        read_report_text(tmp_path / "nope.txt", "reports/S1.txt")
    assert e.value.reason == "missing_report"


def test_one_bad_report_never_stops_the_others(tmp_path):
    (tmp_path / "reports").mkdir()
    rows = []
    for i, data in enumerate([b"fine one", None, "Läsion".encode("latin-1"), b"\x00\x00\x00", b"fine two"]):
        key = f"ACC{i}"
        if data is not None:
            (tmp_path / "reports" / f"{key}.txt").write_bytes(data)
        rows.append((ManifestRow(study_key=key, patient_id="p", vendor="GE", tracer="FDG", ct_path="c",
                                 pet_path="p", lesions_path="l", report_path=f"reports/{key}.txt"), f"S{i}"))
    kept, texts, quarantine = read_reports(rows, tmp_path)
    assert [sid for _, sid in kept] == ["S0", "S2", "S4"] and texts == ["fine one", "Läsion", "fine two"]
    assert [(q.item, q.reason, q.source, q.stage) for q in quarantine] == [
        ("S1", "missing_report", "reports/S1.txt", "structure"), ("S3", "undecodable_report", "reports/S3.txt",
                                                                  "structure")]
    assert not [q for q in quarantine if "ACC" in q.model_dump_json()]  # the raw key never appears
    assert report_source("Sabc", "reports/ACC9.txt") == "reports/Sabc.txt"
