"""PHI scrubber for report structuring: report text with names, dates and identifiers replaced by placeholders.

Reports must not leave the hospital with a patient's identity in them. Every report is scrubbed before
anything reads it for structuring (``tasks.structure.backend``), and the LLM backend sends only the scrubbed
text, to an endpoint vetted by ``tasks.structure.endpoint_guard``.

What ``scrub`` removes (placeholder in brackets):

* names — the value of a name field (``Patient:``, ``Name:``, ``Pt:``, ``Patient Name:``, ``Referring
  physician:``, ``Signed by`` ...), DICOM person names (``DOE^JANE``), a capitalised name after a title
  (``Mr./Mrs./Ms./Dr./Prof. Surname``: the title stays, ``Dr. [NAME]``), and every later occurrence of a
  word found in one of those (a surname from the header repeated in the text) → ``[NAME]``;
* dates — numeric (``03/14/1961``, ``14.03.1961``, ``1961-03-14``, DICOM ``19610314``), written
  (``14 March 1961``, ``March 14, 1961``, ``14-Mar-61``, ``March 1961``), and whatever a birth-date or
  date field holds (``DOB: 1961``) → ``[DATE]``; ages over 89 → ``[AGE]`` (HIPAA safe harbour);
* identifiers — the value of an ID field (``MRN``, ``Patient ID``, ``Accession No.``, ``NHS number`` ...),
  any run of 6+ digits, any token with a 5-digit run or 7+ digits (``A1234567``, ``ACC-2021-0042``),
  DICOM UIDs → ``[ID]``; phone numbers → ``[PHONE]``; e-mail addresses → ``[EMAIL]``.

What it keeps: the clinical numbers a finding needs — ``SUVmax 8.2``, ``2.1 x 1.5 cm``, ``level II``,
``T7``, ``370 MBq``, ``60 min``, years alone (``in 2019``).

Limits (say so where it matters): a name in running prose with no cue — no field label, no title, not
repeated from a header — cannot be told from a word without a trained NER model; addresses and postcodes
are not detected. The guard is a second line of defence behind a local endpoint, not a certified
de-identification.

Offsets: scrubbing is deterministic, and the LLM backend's spans refer to the *scrubbed* text, so span text
kept in tables carries no PHI. ``scrub_detailed(text).to_original(start, end)`` maps a span back onto the
original report where a caller holds it. Nothing here logs text.
"""

from __future__ import annotations

import bisect
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache

from tasks.structure import phi_names
from tasks.structure.phi_names import NOT_NAME, TITLES, name_end

NAME, DATE, ID, PHONE, EMAIL, AGE = "NAME", "DATE", "ID", "PHONE", "EMAIL", "AGE"


def placeholder(kind: str) -> str:
    return f"[{kind}]"


# ----------------------------------------------------------------------------------------------------------
# Scrubbing: detectors propose (start, end, kind) spans on the original text; overlapping spans merge; the
# output is built in one pass, so offsets can be mapped back.


@dataclass(frozen=True)
class Replacement:
    start: int  # in the original text
    end: int
    out_start: int  # in the scrubbed text (the placeholder)
    out_end: int
    kind: str


@dataclass(frozen=True)
class Scrubbed:
    text: str
    replacements: tuple[Replacement, ...]

    @property
    def counts(self) -> dict[str, int]:
        """How many spans of each kind were removed (no text: safe to log)."""
        return dict(Counter(r.kind for r in self.replacements))

    def to_original(self, start: int, end: int) -> tuple[int, int]:
        """Map a [start, end) span of the scrubbed text onto the original; a placeholder maps to what it hid."""
        outs = [r.out_start for r in self.replacements]

        def shift(r: Replacement) -> int:
            return r.end - r.out_end

        i = bisect.bisect_right(outs, start) - 1
        if i < 0:
            s = start
        else:
            r = self.replacements[i]
            s = r.start if start < r.out_end else start + shift(r)
        j = bisect.bisect_left(outs, end) - 1
        if j < 0:
            e = end
        else:
            r = self.replacements[j]
            e = r.end if end <= r.out_end else end + shift(r)
        return s, e


@dataclass(frozen=True)
class _Hit:
    start: int
    end: int
    kind: str
    rank: int  # lower wins the kind when hits merge


def scrub(text: str) -> str:
    """``text`` with names, dates and identifiers replaced by ``[NAME]``, ``[DATE]``, ``[ID]`` ... (see module)."""
    return scrub_detailed(text).text


def scrub_detailed(text: str) -> Scrubbed:
    """The scrubbed text and where each placeholder came from (for mapping spans back to the original)."""
    hits: list[_Hit] = []
    hits += _labelled(text)
    hits += _pattern_hits(text)
    hits += [_Hit(s, e, NAME, 5) for detect in (phi_names.dicom_names, phi_names.titled_names,
                                                phi_names.cued_names, phi_names.surname_given_lines,
                                                phi_names.signature_lines)
             for s, e in detect(text)]
    hits += _propagated(text, hits)
    return _apply(text, _merge(hits))


def _merge(hits: list[_Hit]) -> list[_Hit]:
    """Union overlapping hits (never leave a partial identifier); the best-ranked kind names the union."""
    out: list[_Hit] = []
    for h in sorted(hits, key=lambda h: (h.start, -h.end)):
        if h.end <= h.start:
            continue
        if out and h.start < out[-1].end:
            last = out[-1]
            best = last if last.rank <= h.rank else h
            out[-1] = _Hit(last.start, max(last.end, h.end), best.kind, best.rank)
        else:
            out.append(h)
    return out


def _apply(text: str, hits: list[_Hit]) -> Scrubbed:
    parts: list[str] = []
    reps: list[Replacement] = []
    pos = out_len = 0
    for h in hits:
        parts.append(text[pos:h.start])
        out_len += h.start - pos
        ph = placeholder(h.kind)
        parts.append(ph)
        reps.append(Replacement(h.start, h.end, out_len, out_len + len(ph), h.kind))
        out_len += len(ph)
        pos = h.end
    parts.append(text[pos:])
    return Scrubbed("".join(parts), tuple(reps))


# --- labelled header fields -------------------------------------------------------------------------------

# Strong labels name PHI on their own ("MRN 1234567", "DOB 1961", "signed by J Smith"); weak labels are
# ordinary words and count only with a separator ("Patient: ...", "ID: ...", "Date: ...").
_LABELS: dict[str, dict[str, tuple[str, ...]]] = {
    NAME: {
        "strong": ("signed by", "electronically signed by", "reported by", "dictated by", "verified by",
                   "read by", "transcribed by", "approved by", "requested by", "ordered by", "referred by"),
        "weak": ("patient", "patient name", "patient's name", "pt", "pt name", "pat", "pat. name", "pat name",
                 "name of patient", "full name", "legal name", "maiden name", "birth name", "preferred name",
                 "name", "surname", "first name",
                 "last name", "given name", "family name", "referring physician", "referring doctor",
                 "referring clinician", "referrer", "physician", "radiologist", "reporting physician",
                 "attending", "consultant", "technologist", "radiographer", "cc", "guardian", "next of kin"),
    },
    DATE: {
        "strong": ("dob", "d.o.b.", "d.o.b", "date of birth", "birth date", "birthdate", "born"),
        "weak": ("date", "exam date", "study date", "scan date", "report date", "date of exam",
                 "date of examination", "date of service", "dos", "admission date", "discharge date",
                 "date of scan", "acquisition date", "dictated", "signed"),
    },
    ID: {
        "strong": ("mrn", "mr#", "mr no", "medical record number", "medical record no", "medical record",
                   "record number", "hospital number", "hospital no", "nhs number", "nhs no", "nhs",
                   "accession number", "accession no", "accession", "acc no", "patient id", "patient number",
                   "pid", "ssn", "social security number", "insurance number", "study id", "exam id",
                   "order number", "visit number", "encounter number", "case number", "health card"),
        "weak": ("id", "acc", "order", "visit", "encounter", "case", "ref", "reference", "chart", "account"),
    },
    PHONE: {
        "strong": ("tel", "tel.", "phone", "telephone", "fax", "pager", "mobile", "cell", "bleep", "ext"),
        "weak": ("contact",),
    },
}

_NUMBER_WORD = r"(?:[ \t]*(?:no\.?|nr\.?|num(?:ber)?\.?|#))?"
_SEP_WEAK = r"[ \t]*(?:[:=#]|-(?=[ \t]))[ \t]*"
_SEP_STRONG = rf"(?:{_SEP_WEAK}|[ \t]+)"


def _label_regex(labels: tuple[str, ...], strong: bool) -> re.Pattern[str]:
    alt = "|".join(re.escape(lab).replace(r"\ ", r"[ \t]+")
                   for lab in sorted(labels, key=len, reverse=True))
    sep = _SEP_STRONG if strong else _SEP_WEAK
    return re.compile(rf"(?<![\w'])(?:{alt})(?![\w']){_NUMBER_WORD}{sep}", re.IGNORECASE)


@cache
def _label_regexes() -> tuple[tuple[str, re.Pattern[str]], ...]:
    return tuple((kind, _label_regex(groups[strength], strength == "strong"))
                 for kind, groups in _LABELS.items() for strength in ("strong", "weak"))


@cache
def _any_label_ahead() -> re.Pattern[str]:
    """The start of the next field of a header line ("  MRN:", " DOB 01/02/1961"), where a value ends."""
    labels = sorted({lab for g in _LABELS.values() for ls in g.values() for lab in ls}, key=len, reverse=True)
    alt = "|".join(re.escape(lab).replace(r"\ ", r"[ \t]+") for lab in labels)
    return re.compile(rf"[ \t]+(?:{alt})(?![\w']){_NUMBER_WORD}[ \t]*[:=#]", re.IGNORECASE)


_AFTER_EXAM_WORDS = frozenset("exam examination study procedure protocol series drug tracer radiopharmaceutical "
                              "file department hospital institution device scanner".split())
_CLAUSE_END = re.compile(r"\n|\r|\t| {2,}|[,;|]|\.(?=\s|$)")


def _clause_end(text: str, pos: int) -> int | None:
    """End of a free-text field value: line end, a wide gap, a separator, or the next field's label."""
    m = _CLAUSE_END.search(text, pos)
    end = m.start() if m else len(text)
    nxt = _any_label_ahead().search(text, pos, end)
    if nxt:
        end = nxt.start()
    while end > pos and text[end - 1] in " \t":
        end -= 1
    return end if end > pos else None


_ID_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-_/]*(?:[ ](?=\d)\d[\d\-]*)*")
_PHONE_VALUE = re.compile(r"\+?\(?\d[\d ()\-.]{3,}\d")


def _labelled(text: str) -> list[_Hit]:
    hits = []
    for kind, rx in _label_regexes():
        for m in rx.finditer(text):
            pos = m.end()
            if kind == NAME and _preceding_word(text, m.start()) in _AFTER_EXAM_WORDS:
                continue  # "Exam name: PET/CT" names an examination, not a person
            end = _field_value_end(kind, text, pos, has_sep=bool(re.search(r"[:=#\-]", m.group())))
            if end is not None:
                hits.append(_Hit(pos, end, kind, 0))
    return hits


def _preceding_word(text: str, pos: int) -> str:
    m = re.search(r"([A-Za-z]+)[ \t]*$", text[max(0, pos - 40):pos])
    return m.group(1).lower() if m else ""


def _field_value_end(kind: str, text: str, pos: int, has_sep: bool) -> int | None:
    if kind == NAME:
        end = name_end(text, pos)
        if end is None and pos < len(text) and text[pos].isalpha():
            first = re.match(r"([^\s,;:]+)\s*(.?)", text[pos:])
            word, after = first.group(1).lower().rstrip("."), first.group(2)
            if word not in NOT_NAME and not (word in TITLES and after == "["):
                end = _clause_end(text, pos)  # a name written in lower case: the whole value goes
        return end
    if kind == DATE:
        for rx in _date_regexes():
            m = rx.match(text, pos)
            if m:
                return m.end()
        return _clause_end(text, pos) if has_sep else _year_end(text, pos)
    if kind == ID:
        m = _ID_VALUE.match(text, pos)
        if m and re.search(r"\d", m.group()):
            return m.end()
        return _clause_end(text, pos) if has_sep else None
    if kind == PHONE:
        m = _PHONE_VALUE.match(text, pos)
        return m.end() if m else None
    return None


def _year_end(text: str, pos: int) -> int | None:
    m = re.compile(r"(?:19|20)\d{2}(?!\d)").match(text, pos)  # "born 1961"
    return m.end() if m else None


# --- patterns anywhere in the text ------------------------------------------------------------------------

_MONTH = (r"(?P<month>Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?"
          r"|Sep(?:t(?:ember)?)?|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)(?![a-z])\.?")
_ORD = r"(?:st|nd|rd|th)?"
_NOT_BEFORE = r"(?<![\w.])"
_NOT_AFTER = r"(?![\w]|\.\d)"


@cache
def _date_regexes() -> tuple[re.Pattern[str], ...]:
    i = re.IGNORECASE
    return (
        # 1961-03-14, 1961/3/14, 2021-03-14T10:22:00
        re.compile(rf"{_NOT_BEFORE}(?:19|20)\d{{2}}([-/.])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])"
                   rf"(?:[T ]\d{{1,2}}:\d{{2}}(?::\d{{2}})?)?{_NOT_AFTER}"),
        # 03/14/1961, 14.03.61, 14-3-1961 (one separator throughout, so "12.5-14.25" is not a date)
        re.compile(rf"{_NOT_BEFORE}\d{{1,2}}([/.\-])\d{{1,2}}\1(?:\d{{4}}|\d{{2}}){_NOT_AFTER}"),
        # DICOM DA: 19610314
        re.compile(rf"{_NOT_BEFORE}(?:19|20)\d{{2}}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01]){_NOT_AFTER}"),
        # 14 March 1961, 14th of March, 14-Mar-61
        re.compile(rf"{_NOT_BEFORE}\d{{1,2}}{_ORD}(?:[ \-/.]+|\s+of\s+){_MONTH}"
                   rf"(?:,?[ \-/.]+(?:\d{{4}}|'?\d{{2}}))?(?![\w])", i),
        # March 14, 1961; Mar 14
        re.compile(rf"(?<![\w]){_MONTH}[ \-/.]+\d{{1,2}}{_ORD}(?:,?[ \-/]+\d{{4}})?(?![\w]|\.\d)", i),
        # March 1961
        re.compile(rf"(?<![\w]){_MONTH},?[ \-/]+(?:19|20)\d{{2}}(?![\w])", i),
    )


def _month_ok(m: re.Match[str]) -> bool:
    """A lower-case "may" or "dec" is a word ("may represent"), not a month."""
    month = m.groupdict().get("month")
    return not (month and month.islower() and (len(month) <= 3 or month == "may"))


_EMAIL = re.compile(r"[\w.+\-]+@[\w\-]+(?:\.[\w\-]+)+")
_PHONE = re.compile(rf"{_NOT_BEFORE}(?:\+\d{{1,3}}[ .\-]?)?(?:\(\d{{2,5}}\)[ .\-]?|\d{{2,5}}[ .\-])"
                    rf"\d{{3,4}}[ .\-]\d{{3,4}}{_NOT_AFTER}")
_UID = re.compile(r"(?<![\w.])\d+(?:\.\d+){4,}(?![\w.])")
_TOKEN = re.compile(r"(?<![\w\-/])[A-Za-z0-9][A-Za-z0-9\-_/]*(?![\w\-/])")
_MEASUREMENT = re.compile(r"^\d+(?:[x×]\d+)+(?:mm|cm)?$", re.IGNORECASE)
_AGE_OVER_89 = (
    re.compile(r"(?<![\w.])(?:9\d|1[0-2]\d)(?=\s*-?\s*(?:years?|yrs?|y/?o)(?![a-z]))", re.IGNORECASE),
    re.compile(r"(?<![\w])(?:aged?|age:)\s*:?\s*(9\d|1[0-2]\d)(?!\d|\.\d)", re.IGNORECASE),
)


def _pattern_hits(text: str) -> list[_Hit]:
    hits = [_Hit(m.start(), m.end(), EMAIL, 1) for m in _EMAIL.finditer(text)]
    for rx in _date_regexes():
        hits += [_Hit(m.start(), m.end(), DATE, 2) for m in rx.finditer(text) if _month_ok(m)]
    hits += [_Hit(m.start(), m.end(), PHONE, 3) for m in _PHONE.finditer(text)]
    for rx in _AGE_OVER_89:
        for m in rx.finditer(text):
            g = 1 if rx.groups else 0
            hits.append(_Hit(m.start(g), m.end(g), AGE, 4))
    hits += [_Hit(m.start(), m.end(), ID, 6) for m in _UID.finditer(text)]
    for m in _TOKEN.finditer(text):
        tok = m.group()
        digits = sum(c.isdigit() for c in tok)
        if (re.search(r"\d{5,}", tok) or digits >= 7) and not _MEASUREMENT.match(tok):
            hits.append(_Hit(m.start(), m.end(), ID, 6))
    return hits


def _propagated(text: str, hits: list[_Hit]) -> list[_Hit]:
    """Every other occurrence of a name word or ID value found in a field, a title or a DICOM name."""
    names: set[str] = set()
    ids: set[str] = set()
    for h in hits:
        value = text[h.start:h.end]
        if h.kind == NAME:
            names.update(w for w in re.split(r"[^\w'’\-]+|[\d_]+", value)
                         if len(w) >= 2 and w.lower() not in NOT_NAME)
        elif h.kind == ID and len(value) >= 4:
            ids.add(value)
    out = []
    for w in names:
        forms = {w, w.title(), w.upper()} | ({w.lower()} if w.lower() not in phi_names.vocabulary() else set())
        rx = re.compile(r"(?<![\w^])(?:" + "|".join(map(re.escape, sorted(forms))) + r")(?![\w])")
        out += [_Hit(m.start(), m.end(), NAME, 7) for m in rx.finditer(text)]
    for v in ids:
        out += [_Hit(m.start(), m.end(), ID, 7)
                for m in re.finditer(r"(?<![\w])" + re.escape(v) + r"(?![\w])", text)]
    return out
