"""Report figures: does each report agree with its study and the patient's history?

Text-only checks run on any drop; checks that need the synthetic truth say so.

* Indication vs disease: the indication's disease (keyword classes below) must be the impression's when the
  impression names one, and PSMA indications must be prostate (or another PSMA-avid primary) diseases.
* Comparison wording: follow-up statements that describe a lesion the baseline already had must compare
  ("previously", "compared with", "increased", "stable", ...).
* Stated range: "from <top> to <bottom>" (or terse "<top>-<bottom>") against the range the images cover.
"""

from __future__ import annotations

import re
from datetime import datetime

# Disease names only: an organ's adjective ("para-oesophageal node", "nasopharyngeal thickening", "uptake in
# the prostate") names a location, not the patient's disease, so it never counts as one.
DISEASES: dict[str, tuple[str, ...]] = {
    "lymphoma": ("lymphoma", "dlbcl", "r-chop", "hodgkin", "hl", "nhl", "abvd"),
    "lung": ("lung cancer", "lung ca", "lung carcinoma", "nsclc", "sclc", "lung malignancy", "bronchial carcinoma",
             "non-small cell"),
    "head_neck": ("head and neck cancer", "carcinoma of the head and neck", "head and neck squamous", "hnscc",
                  "nasopharyngeal carcinoma", "nasopharyngeal cancer", "npc", "oropharyngeal carcinoma",
                  "oropharyngeal cancer"),
    "colorectal": ("colorectal cancer", "colorectal carcinoma", "crc", "rectal carcinoma", "rectal cancer",
                   "colon carcinoma", "colon cancer"),
    "melanoma": ("melanoma",),
    "oesophageal": ("oesophageal cancer", "esophageal cancer", "oesophageal carcinoma", "esophageal carcinoma",
                    "oesophageal adenocarcinoma", "esophageal adenocarcinoma", "oesoph adenoca", "oesophageal ca"),
    "breast": ("breast cancer", "breast ca", "breast carcinoma"),
    "prostate": ("prostate cancer", "prostate ca", "prostate carcinoma", "prostatic carcinoma",
                 "prostate adenocarcinoma", "pca", "mcrpc", "crpc", "prostatectomy", "psa"),
    "renal": ("renal cell", "mrcc", "rcc"),
    "hepatocellular": ("hepatocellular", "hcc"),
    "unknown_primary": ("unknown primary", "cup"),
}
PSMA_DISEASES = frozenset({"prostate", "renal", "hepatocellular"})
COMPARISON = re.compile(
    r"\b(previous(ly)?|prior|compared|comparison|since|interval|increas\w*|decreas\w*|stable|unchanged|"
    r"progress\w*|regress\w*|new(ly)?|persist\w*|resolv\w*|known|again)\b", re.I)
_INDICATION = re.compile(r"^\s*(?:clinical indication|indication|clinical history|history|ind)\s*:\s*(.*)$",
                         re.I | re.M)
_INDICATION_BLOCK = re.compile(r"^\s*clinical indication\s*:\s*\n\s*(.+)$", re.I | re.M)
_IMPRESSION = re.compile(r"^\s*(?:impression|imp|summary|conclusion)\s*:?(.*?)(?=^\s*[A-Z][A-Za-z /&]+:\s*$|\Z)",
                         re.I | re.M | re.S)
# "from the skull base to the mid-thigh", "vertex through the feet", terse "Skull base-mid thigh"
_RANGE = re.compile(r"(?:from\s+)?(?:the\s+)?\b(vertex|skull\s+base|base\s+of\s+(?:the\s+)?skull|orbits?|neck)\s*"
                    r"(?:-|\u2013|to|through)\s*(?:the\s+)?(mid-?\s?thighs?|proximal\s+thighs?|feet|toes|knees?|"
                    r"upper\s+thighs?|pelvis)\b", re.I)


def diseases_in(text: str) -> set[str]:
    low = text.lower()
    return {d for d, words in DISEASES.items() if any(re.search(rf"\b{re.escape(w)}\b", low) for w in words)}


def indication(text: str) -> str | None:
    m = _INDICATION_BLOCK.search(text) or _INDICATION.search(text)
    return m.group(1).strip() if m and m.group(1).strip() else None


def impression(text: str) -> str:
    return " ".join(m.group(1) for m in _IMPRESSION.finditer(text))


def indication_consistent(text: str, tracer: str) -> bool | None:
    """None when the report states no indication with a recognisable disease."""
    ind = indication(text)
    if ind is None:
        return None
    said = diseases_in(ind)
    if not said:
        return None
    if tracer.upper() == "PSMA" and not said & PSMA_DISEASES:
        return False
    other = diseases_in(impression(text)) - said - {"unknown_primary"}
    return not other


def stated_range(text: str) -> tuple[str, str] | None:
    """(top, bottom) as the image categories of ``tasks.realism.position`` name them, or None."""
    m = _RANGE.search(text)
    if not m:
        return None
    top = m.group(1).lower()
    bottom = m.group(2).lower()
    top = "vertex" if top == "vertex" else ("skull_base" if "skull" in top or "orbit" in top else "neck_or_lower")
    bottom = "knee_or_below" if re.match(r"(feet|toes|knee)", bottom) else (
        "pelvis_or_higher" if bottom == "pelvis" else "mid_thigh")
    return top, bottom


def has_comparison(sentence: str) -> bool:
    return bool(COMPARISON.search(sentence))


_DATE = r"(\d{4}-\d{2}-\d{2}|\d{1,2}\.\d{1,2}\.\d{4}|\d{1,2}/\d{1,2}/\d{4}|\d{1,2} [A-Z][a-z]{2} \d{4})"
_DOB = re.compile(r"(?:DOB|date of birth|born)\W{0,3}" + _DATE, re.I)


def _parse_date(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d %b %Y"):
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    return None


def age_at_exam(text: str) -> float | None:
    """Age in years from the report header (birth date and the first other date, the exam's); the birth date
    is used for this number only. None when either is missing."""
    m = _DOB.search(text)
    if not m:
        return None
    dob = _parse_date(m.group(1))
    exam = next((d for x in re.finditer(_DATE, text) if x.start(1) != m.start(1)
                 and (d := _parse_date(x.group(1))) is not None), None)
    if dob is None or exam is None:
        return None
    age = (exam - dob).days / 365.25
    return age if 0 < age < 120 else None
