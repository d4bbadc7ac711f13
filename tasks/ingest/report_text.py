"""Read a free-text report file whatever encoding the hospital's system wrote it in.

Tried in order: a byte-order mark (UTF-8 with BOM, UTF-16 LE/BE with BOM), strict UTF-8, then Latin-1
(Windows-1252 first, whose extra letters fill Latin-1's control range: a "smart quote" from a Windows report
system reads as itself). Latin-1 decodes every byte, so a binary or mis-encoded file is recognised by what it
decodes to: NUL or other control characters (a UTF-16 file without a BOM, a PDF, an image) make it
``undecodable_report``. Line endings become ``\\n``.

Every reader of report files (linking, structuring evaluation, ``petcap structure FILE``) goes through
``read_report_text``, so one bad file is one ``IngestError`` (-> one quarantine row) and never a
``UnicodeDecodeError`` that stops a delivery.
"""

from __future__ import annotations

import codecs
import logging
import re
from datetime import datetime, timezone
from pathlib import Path

from data_contracts.tables import ManifestRow, QuarantineRow
from tasks.ingest.errors import IngestError

log = logging.getLogger(__name__)

_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # \t \n \f \r are text; the rest are not
MAX_BYTES = 1_000_000  # a radiology report is a few kB; a bigger file is not a report


def decode_report(data: bytes, source: str) -> str:
    """The text of a report file's bytes, or ``IngestError("undecodable_report")``."""
    if len(data) > MAX_BYTES:
        raise IngestError("undecodable_report", source, f"{len(data)} bytes: too large for a report")
    text = None
    for bom, codec in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(codec)
            except UnicodeDecodeError as e:
                raise IngestError("undecodable_report", source,
                                  f"starts with a {codec} byte-order mark but byte {e.start} is not {codec}") from None
            break
    if text is None:
        for codec in ("utf-8", "cp1252", "latin-1"):
            try:
                text = data.decode(codec)
                break
            except UnicodeDecodeError:
                continue
    bad = _CONTROL.search(text)
    if bad:
        count = len(_CONTROL.findall(text))
        raise IngestError("undecodable_report", source,
                          f"{count} control characters (first U+{ord(bad.group()):04X} at character {bad.start()}) "
                          "after trying UTF-8, a UTF-8/UTF-16 byte-order mark and Latin-1: not a text report")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise IngestError("empty_report", source, "the report file holds no text")
    return text


def read_report_text(path: Path, source: str) -> str:
    """The text of the report at ``path``; ``source`` is how errors name it (pseudonymous, never the raw key)."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise IngestError("missing_report", source, "the manifest names a report file that does not exist") from None
    except IsADirectoryError:
        raise IngestError("missing_report", source, "the report path is a folder, not a file") from None
    except OSError as e:
        raise IngestError("unreadable_file", source, f"cannot read the report: {e.strerror}") from None
    return decode_report(data, source)


def report_source(study_id: str, report_path: str) -> str:
    """How a report file is named in quarantine rows and logs: by the study's pseudonym, never the raw key."""
    return f"reports/{study_id}{''.join(Path(report_path).suffixes) or '.txt'}"


def read_reports(rows: list[tuple[ManifestRow, str]], raw_root: Path,
                 stage: str = "structure") -> tuple[list[tuple[ManifestRow, str]], list[str], list[QuarantineRow]]:
    """The report texts of (manifest row, study pseudonym) pairs: (the pairs whose report was read, their texts,
    one quarantine row per report that is missing or cannot be decoded). One bad file never stops the others."""
    kept, texts, quarantine = [], [], []
    for row, sid in rows:
        source = report_source(sid, row.report_path)
        try:
            texts.append(read_report_text(raw_root / row.report_path, source))
            kept.append((row, sid))
        except IngestError as e:
            log.warning("quarantined report of %s: %s (%s): %s", sid, e.reason, e.source, e.detail)
            quarantine.append(QuarantineRow(stage=stage, item=sid, source=e.source, reason=e.reason, detail=e.detail,
                                            at=datetime.now(timezone.utc)))
    return kept, texts, quarantine
