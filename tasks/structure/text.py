"""Report text → sentences, with offsets into the original text.

Reports arrive hard-wrapped, as numbered or bulleted lists, with section headings ("FINDINGS:",
"CHEST:"), figure captions ("Fig. 2. Axial fused ...") and abbreviations ("approx.", "e.g.", "SUVmax 8.2.").
This module finds the sentence boundaries; it never rewrites the text, so every ``Sentence`` keeps the
``start``/``end`` offsets of its source characters and ``report[start:end]`` is the evidence span.

Line breaks: a line break is a boundary when the next line is blank, a heading or a list item, or when the
line looks complete (ends a sentence, or is a short unpunctuated line of a terse list); otherwise it is a
wrap inside a sentence and the two lines are read as one. ``Sentence.norm`` is the sentence with every
whitespace character replaced by a space (same length, so offsets carry over).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Section names a heading line may carry; the value is the section kind the extractor cares about.
_SECTION_WORDS: dict[str, str] = {
    "findings": "findings", "finding": "findings", "pet/ct findings": "findings", "pet findings": "findings",
    "results": "findings", "result": "findings", "report": "findings", "description": "findings",
    "impression": "impression", "impressions": "impression", "conclusion": "impression",
    "conclusions": "impression", "summary": "impression", "opinion": "impression", "assessment": "impression",
    "diagnosis": "impression", "interpretation": "impression", "imp": "impression", "imp.": "impression",
    "impr": "impression", "final impression": "impression", "key findings": "impression",
    "other findings": "findings", "additional findings": "findings", "incidental findings": "findings",
    "ind": "skip", "hx": "skip", "tech": "skip", "technique and findings": "findings", "cc": "skip",
    "history": "skip", "clinical history": "skip", "indication": "skip", "indications": "skip",
    "clinical indication": "skip", "clinical information": "skip", "clinical details": "skip",
    "clinical question": "skip", "reason for exam": "skip", "reason for study": "skip", "technique": "skip",
    "procedure": "skip", "protocol": "skip", "comparison": "skip", "comparisons": "skip",
    "radiopharmaceutical": "skip", "acquisition": "skip", "examination": "skip", "exam": "skip",
    "study": "skip",
    # Header fields: the line is dropped (it may hold a name or an identifier); the section carries on.
    "patient": "phi", "name": "phi", "patient name": "phi", "dob": "phi", "date of birth": "phi", "mrn": "phi",
    "id": "phi", "patient id": "phi", "accession": "phi", "accession number": "phi", "date": "phi",
    "study date": "phi", "exam date": "phi", "referring physician": "phi", "referring": "phi",
    "physician": "phi", "signed": "phi", "reported by": "phi", "dictated by": "phi", "sex": "phi",
    "age": "phi", "weight": "phi", "blood glucose": "phi", "glucose": "phi", "height": "phi",
    "injected activity": "phi", "dose": "phi", "pt": "phi", "ref": "phi",
}
# Body-part headings ("CHEST:", "Liver:") open a findings sub-section; their words may serve as context.
_BODY_HEADINGS = re.compile(
    r"^(?:head(?:\s*(?:and|&|/)\s*neck)?|neck|chest|thorax|lungs?|mediastinum|abdomen(?:\s*(?:and|&|/)\s*pelvis)?|"
    r"pelvis|liver|spleen|pancreas|adrenals?|kidneys?|bones?|skeleton|musculoskeletal|skeletal|osseous|"
    r"lymph nodes?|nodes|soft tissues?|thyroid|prostate|breasts?|other|extremities|brain|gastrointestinal|"
    r"genitourinary|hepatobiliary|abd(?:omen)?\s*(?:and|&|/)\s*pelvis|abd|msk|h\s*[/&]\s*n|"
    r"head\s*/\s*neck|bone|lymph\s+nodes?|nodal|viscera|visceral|pleura|heart|a\s*/\s*p|c\s*/\s*a\s*/\s*p)$",
    re.IGNORECASE,
)

_LABEL = r"[A-Za-z][A-Za-z /&,()\-]{0,38}[A-Za-z)]|[A-Za-z]"
_HEADING_ONLY = re.compile(rf"^\s*(?P<label>{_LABEL})\s*:?\s*$")
_HEADING_INLINE = re.compile(rf"^\s*(?P<label>{_LABEL})\s*:\s+(?=\S)")
_LIST_MARKER = re.compile(r"^\s*(?:\(?\d{1,2}[.)]|\(?[a-hA-H]\)|[-*\u2022\u00b7\u2013\u2014>]|#)\s+")
_FIGURE = re.compile(r"^\s*(?:fig(?:ure)?s?\.?\s*\d+[A-Za-z]?(?:\s*[,&-]\s*\d*[A-Za-z])*\s*[.:)\u2014-]?)\s+",
                     re.IGNORECASE)

# Tokens after which a period does not end a sentence.
_ABBREVIATIONS = {
    "approx", "appr", "e.g", "eg", "i.e", "ie", "fig", "figs", "vs", "cf", "dr", "no", "nos", "nr", "max", "min",
    "ca", "incl", "resp", "seg", "segs", "ant", "post", "sup", "inf", "lat", "med", "prox", "dist", "rt", "lt",
    "bil", "bilat", "st", "mr", "mrs", "ms", "pt", "pts", "hx", "dx", "sx", "vert", "est", "abd", "ax",
    "diam", "meas", "prev", "sig", "mid", "ext", "int", "sag", "cor", "tx", "al", "mult",
}
_MIN_WRAP_WIDTH = 60
_PANEL = re.compile(r"\(?[a-h]\)?\s+(?=[A-Z0-9])")  # a lower-case panel label before a capital: "b FDG PET shows"
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)")
# Words after which a line break cannot end a phrase even when the next line looks like a label or item.
_CUT_WORDS = {"the", "a", "an", "in", "of", "and", "or", "with", "to", "at", "rt", "lt", "r", "l", "right", "left",
              "station", "level", "segment", "rib", "bilateral", "measuring"}
_CONTINUE_WORDS = {
    "the", "a", "an", "in", "of", "and", "or", "with", "to", "at", "on", "measuring", "measures", "within",
    "from", "by", "for", "as", "is", "are", "was", "were", "has", "shows", "demonstrates", "involving",
    "suvmax", "suv", "max", "maximum", "up", "showing", "without", "no", "lymph", "fdg", "psma", "left",
    "right", "bilateral", "level", "segment", "increased", "intense", "mild", "moderate", "focal",
}


@dataclass(frozen=True)
class Sentence:
    start: int  # offset of the first character in the report
    end: int  # offset after the last character
    text: str  # report[start:end], unchanged
    section: str  # "findings" | "impression" | "skip" | "body" (no heading seen yet)
    heading: str | None  # nearest heading label above ("CHEST", "Liver"), lower-cased
    item: bool = False  # first sentence of a numbered/bulleted item or figure caption

    @property
    def norm(self) -> str:
        """The text with every whitespace character as a space: same length, so offsets carry over."""
        return re.sub(r"\s", " ", self.text)


@dataclass
class _Line:
    start: int
    end: int  # without the newline
    body_start: int  # after a heading label / list marker
    text: str
    kind: str  # "blank" | "heading" | "text"
    label: str | None = None
    item: bool = False


def _section_kind(label: str) -> str | None:
    key = re.sub(r"\s+", " ", label.strip().lower())
    if key in _SECTION_WORDS:
        return _SECTION_WORDS[key]
    if _BODY_HEADINGS.match(key):
        return "findings"
    return None


def _is_heading_label(label: str) -> bool:
    if "suv" in label.lower():
        return False
    if _section_kind(label) is not None:
        return True
    letters = [c for c in label if c.isalpha()]
    return len(letters) >= 3 and all(c.isupper() for c in letters) and len(label.split()) <= 5


def _classify(text: str) -> list[_Line]:
    lines: list[_Line] = []
    pos = 0
    for raw in text.splitlines(keepends=True):
        body = raw.rstrip("\r\n")
        start, end = pos, pos + len(body)
        pos += len(raw)
        if not body.strip():
            lines.append(_Line(start, end, end, body, "blank"))
            continue
        m = _HEADING_ONLY.match(body)
        if m and _is_heading_label(m["label"]):
            lines.append(_Line(start, end, end, body, "heading", m["label"].strip()))
            continue
        line = _Line(start, end, start, body, "text")
        m = _HEADING_INLINE.match(body)
        if m and _is_heading_label(m["label"]):
            line.label = m["label"].strip()
            line.body_start = start + m.end()
        rest = text[line.body_start:end]
        mk = _LIST_MARKER.match(rest) or _FIGURE.match(rest)
        if mk:
            line.item = True
            line.body_start += mk.end()
        elif line.label is None:
            line.body_start += len(rest) - len(rest.lstrip())
        lines.append(line)
    return lines


def _ends_with_abbreviation(tail: str) -> bool:
    token = re.split(r"[\s(\[]", tail)[-1].lower()
    return token.endswith(".") and (token.rstrip(".") in _ABBREVIATIONS or re.fullmatch(r"[a-z]\.", token) is not None)


def _indent(line: _Line) -> int:
    return len(line.text) - len(line.text.lstrip())


def _wraps(prev: _Line, nxt: _Line, width: int, first: _Line) -> bool:
    """Whether the break between two text lines is a wrap inside a sentence (``first``: the block's first
    line, whose indentation a hanging indent exceeds)."""
    tail = prev.text.rstrip()
    head = nxt.text.lstrip()
    if not head or not tail:
        return False
    ending = re.search(r"([A-Za-z]+)$", tail)
    last_word = ending.group(1).lower() if ending else ""  # "" when the line ends in a number or a sign
    if tail.count("(") > tail.count(")"):
        return True  # inside parentheses: "(station\n8)" is not a new item "8)"
    if nxt.item or nxt.label is not None:
        # A label or number may still continue a phrase cut after a side or a station word ("rt\nadrenal:").
        return not tail.endswith((".", "!", "?", ":", ";")) and last_word in _CUT_WORDS
    if _indent(nxt) > _indent(first) and not tail.endswith((".", "!", "?")):
        return True  # a hanging indent: the item goes on
    if tail.endswith((":", ";")) and (head[0].isdigit() or head[0].islower()):
        return True  # "SUVmax:" with the value on the next line; "...; size 32 mm."
    if tail.endswith((".", "!", "?", ":", ";")) and not _ends_with_abbreviation(tail):
        return False  # a finished sentence; abbreviation endings ("approx.") still wrap
    if head[0].islower() or head[0] in "(,;/&-" or head[0].isdigit():
        return True
    if tail.endswith((",", "-", "(")) or last_word in _CONTINUE_WORDS or last_word.endswith("ly"):
        return True  # a sentence cannot end on "the", "with", "measuring", "mildly", ...
    # A wrap happens where the next word no longer fits: if it would have fit, the break was the writer's.
    first_word = head.split()[0]
    return len(prev.text.rstrip()) + 1 + len(first_word) > width


def _blocks(text: str, lines: list[_Line]):
    """Runs of lines read as one piece of prose: (start, end, section, heading, item).

    A "skip" section (history, technique, comparison) ends at its next heading or at the first blank line
    after some of its text; a header field line ("Name: ...", "MRN: ...") is dropped on its own.
    """
    # The writer's wrap width: the longest line, and never less than a narrow editor's 60 columns.
    width = max([_MIN_WRAP_WIDTH, *(len(ln.text.rstrip()) for ln in lines if ln.kind == "text")])
    section, heading = "body", None
    skip_has_text = False
    cur: list | None = None
    prev: _Line | None = None
    first: _Line | None = None
    for ln in lines:
        if ln.kind == "blank":
            if cur:
                yield tuple(cur)
            cur, prev = None, None
            if section == "skip" and skip_has_text:
                section, heading = "body", None
            continue
        if ln.label is not None and _section_kind(ln.label) == "phi":
            if cur:
                yield tuple(cur)
            cur, prev = None, None
            continue
        if ln.kind == "heading" or ln.label is not None:
            section = _section_kind(ln.label) or "findings"  # an unknown capitalised label: a body part
            heading = ln.label.lower()
            skip_has_text = False
        if section == "skip" and ln.kind == "text":
            skip_has_text = True
            if ln.kind == "heading":
                if cur:
                    yield tuple(cur)
                cur, prev = None, None
                continue
        if cur is not None and prev is not None and _wraps(prev, ln, width, first):
            cur[1] = ln.end
        else:
            if cur:
                yield tuple(cur)
            cur = [ln.body_start, ln.end, section, heading, ln.item]
            first = ln
        prev = ln
    if cur:
        yield tuple(cur)


def _split_block(text: str, start: int, end: int):
    """Sentence boundaries inside one block: (start, end) pairs, trimmed."""
    piece = text[start:end]
    cuts = [0]
    for m in _SENTENCE_END.finditer(piece):
        before = piece[:m.start()]
        token = re.split(r"[\s(\[]", before)[-1].lower() if before else ""
        after = piece[m.end():].lstrip()
        if not after:
            continue
        if token.rstrip(".") in _ABBREVIATIONS or re.fullmatch(r"[a-z]", token):
            continue  # "approx. 2 cm", "Fig. 2", "R. axilla"
        if after[0].islower() and not _PANEL.match(after):
            continue  # "b FDG-PET/CT shows ...": a figure panel's label starts a sentence
        if re.fullmatch(r"\s*\(?\d{1,2}", piece[cuts[-1]:m.start()]):
            continue  # an inline item number ("... mass. 2. Right hilar ..."), not a sentence
        cuts.append(m.end())
    cuts.append(len(piece))
    for a, b in zip(cuts, cuts[1:]):
        seg = piece[a:b]
        lead = len(seg) - len(seg.lstrip())
        mk = _LIST_MARKER.match(seg[lead:]) or _FIGURE.match(seg[lead:])
        if mk and a > 0:
            lead += mk.end()  # an inline item or caption label: "... mass. 2. Right hilar ...", "Fig. 3: ..."
        trail = len(seg) - len(seg.rstrip())
        s, e = start + a + lead, start + b - trail
        if e > s:
            yield s, e


def split_report(text: str) -> list[Sentence]:
    """Every sentence of the report in order, with its section and nearest heading."""
    out: list[Sentence] = []
    for b_start, b_end, section, heading, item in _blocks(text, _classify(text)):
        for i, (s, e) in enumerate(_split_block(text, b_start, b_end)):
            out.append(Sentence(s, e, text[s:e], section, heading, item and i == 0))
    return out
