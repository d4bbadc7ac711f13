"""Where a person's name stands in a report: the name detectors of the PHI scrubber (``phi_scrubber``).

Each detector returns ``(start, end)`` spans of the original text; the scrubber merges them with its other
hits and replaces them with ``[NAME]``. Detectors, from surest to least sure:

* ``dicom_names`` — DICOM person names, ``GARCIA^EMMA`` and ``LI^LI NA`` (a space inside a component);
* ``titled_names`` — a capitalised name after a title: ``Dr. Alan Grant``, ``Mrs Doe`` (the title stays);
* ``cued_names`` — a name after a cue word: ``PET/CT report for Garcia, Emma``, ``… for Ivan Ivanov``,
  ``Examination of Jan Novak``, ``Patient Ivan Ivanov``, ``your patient Emma Garcia``, ``Re: SMITH, John``.
  After a document noun (``report for``, ``results of``, ``prepared for``) or ``patient`` the cue is
  strong: a run of capitalised words is a name unless its last word is clinical or header vocabulary
  (``report for Hodgkin Lymphoma``); a single word must end the clause (not ``result of FCH PET/CT``). After a
  bare ``for`` / ``of`` (``suspicious for``, ``history of``) it takes two name words, or a ``Surname, Given``
  pair, that are not vocabulary and end the clause, so ``history of Hodgkin Lymphoma`` stays;
* ``signature_lines`` — a line that is only initials and a surname (``H. Tanaka``, ``A. Keller, MD``);
* ``surname_given_lines`` — a header line that starts ``Surname, Given`` (``GARCIA, Emma   MRN …``,
  ``Smith, John | 1961-03-14``) with at least one word outside the vocabulary.

``name_end`` (the end of a run of name-shaped words) is shared with the labelled-field detector
(``Patient: …``, ``Name: …``). The vocabulary that protects clinical words (``is_vocabulary``) is the
taxonomy's and the findings' words plus common English, oncology and institution words and eponyms.
"""

from __future__ import annotations

import re
from functools import cache

# Upper-case letters of Latin scripts (Latin-1 and Latin Extended-A: Ł, Ś, Ž ...), and any Latin letter.
_UP = "A-ZÀ-ÖØ-Þ\u0100-\u017f"
_LETTER = "A-Za-zÀ-ÖØ-öø-ÿ\u0100-\u017f"

# Words that end a name value on a header line, or that a fallback never treats as a name.
NOT_NAME = frozenset("""
mrn dob id sex age gender male female pet ct pet/ct fdg psma exam examination study date clinical indication
history findings finding impression technique comparison conclusion conclusions report referring physician
accession acc the and with for of whole body scan reason procedure modality protocol tracer dose weight
height none unknown n/a dear md phd mbbs frcr frcp facr mrcp rn dds born aged mr# nhs ssn pid
""".split())
TITLES = frozenset("mr mrs ms miss mx dr prof professor doctor sr".split())
# Name particles written in lower case inside a name: "Juan de la Cruz", "Anna van der Berg".
_PARTICLES = frozenset("de la del della der den van von da di do dos du le bin binti al el ter ten y".split())

NAME_TOKEN = re.compile(
    rf"[{_LETTER}][{_LETTER}'’\-]*(?:\^[{_LETTER}'’\-]*(?: [{_UP}][{_UP}'’\-]*(?![\w^]))*)+"  # DOE^JANE, LI^LI NA
    r"|(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\.(?=\s)"  # a title inside the value: "Dr. Alan Grant"
    rf"|[{_UP}][{_LETTER}'’\-]+"  # Jane, DOE, O'Neil, Smith-Jones, Łukasz
    rf"|[{_UP}]\.?(?![\w])"  # initial
)
_NAME_SEP = re.compile(rf" (?=\S)|, ?(?=[{_UP}])")
_PARTICLE = re.compile(r"(?:(?:" + "|".join(sorted(_PARTICLES, key=len, reverse=True)) + rf") )+(?=[{_UP}])")


def name_end(text: str, pos: int, max_tokens: int = 5) -> int | None:
    """End of a run of capitalised name words starting at ``pos`` ("Jane Doe", "DOE, JANE", "J. Doe")."""
    return _name_run(text, pos, max_tokens)[0]


def _name_run(text: str, pos: int, max_tokens: int = 5) -> tuple[int | None, list[str]]:
    """End of the name run at ``pos`` and its words (titles left out; particles like "de la" let through)."""
    end, words = None, []
    i = pos
    for _ in range(max_tokens):
        p = _PARTICLE.match(text, i) if words else None
        if p:  # "de la Cruz": particles join the words around them
            i = p.end()
        m = NAME_TOKEN.match(text, i)
        if not m:
            break
        word = m.group().rstrip(".").lower()
        if word in NOT_NAME or text[m.end():m.end() + 3].lstrip(" \t").startswith(":"):
            break
        if word not in TITLES:  # a title alone ("Dr. [NAME]") is no name
            end = m.end()
            words.append(m.group())
        sep = _NAME_SEP.match(text, m.end())
        if not sep:
            break
        i = sep.end()
    return end, words


# --- DICOM names and titles -------------------------------------------------------------------------------

_DICOM_PN = re.compile(rf"(?<![\w^])[{_LETTER}][{_LETTER}'’\-]*"
                       rf"(?:\^[{_LETTER}'’\-]*(?: [{_UP}][{_UP}'’\-]*(?![\w^]))*)+")
_TITLE = re.compile(r"(?<![\w])(?:(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sr)\.?|Professor|Doctor|(?:MR|MRS|MS|DR|PROF)\.)"
                    r"[ \t]+")


def dicom_names(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _DICOM_PN.finditer(text)]


def titled_names(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _TITLE.finditer(text):
        end = name_end(text, m.end(), max_tokens=3)
        if end is not None:
            out.append((m.end(), end))
    return out


# --- names after a cue word -------------------------------------------------------------------------------

_DOC_NOUNS = (r"report|reports|results?|study|exam|examination|scan|scans|images?|letter|summary|findings"
              r"|pet/ct|pet-ct|pet|ct|spect|mri|imaging|prepared|requested|ordered|performed|done|copy|record")
_STRONG_CUE = re.compile(rf"(?<![\w/])(?:(?:{_DOC_NOUNS})[ \t]+(?:for|of|on)|patient|pt\.?|re|regarding|subject)"
                         r"(?![\w'])[ \t]*:?[ \t]*", re.IGNORECASE)
_BARE_CUE = re.compile(r"(?<![\w])(?:for|of)[ \t]+")
# What may follow a name that a bare cue found: the end of the clause, or a header field.
_AFTER_NAME = re.compile(r"[ \t]*(?:$|[\n\r,;|(]|\.(?:\s|$)| {2,}|\t"
                         r"|(?:mrn|dob|d\.o\.b\.?|id|born|aged?|nhs|hospital|accession|acc|sex)(?![\w]))",
                         re.IGNORECASE)


def cued_names(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _STRONG_CUE.finditer(text):
        end, words = _name_run(text, m.end())
        if end is None or is_vocabulary(words[-1]) or all(is_vocabulary(w) for w in words):
            continue  # "report for Hodgkin Lymphoma", "results of FDG PET"
        if len(words) >= 2 or _AFTER_NAME.match(text, end):  # one word must end the clause: not "of FCH PET/CT"
            out.append((m.end(), end))
    for m in _BARE_CUE.finditer(text):
        end, words = _name_run(text, m.end())
        if end is None or not _AFTER_NAME.match(text, end):
            continue
        fresh = [w for w in words if not is_vocabulary(w)]
        pair = "," in text[m.end():end] and len(words) >= 2
        if (len(words) >= 2 and len(fresh) == len(words)) or (pair and fresh):
            out.append((m.end(), end))
    return out


# --- "Surname, Given" header lines ------------------------------------------------------------------------

_SURNAME_GIVEN = re.compile(rf"^[ \t]*(?=[{_UP}][{_LETTER}'’\-]*,[ \t]*[{_UP}])", re.MULTILINE)


def surname_given_lines(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _SURNAME_GIVEN.finditer(text):
        end, words = _name_run(text, m.end(), max_tokens=4)
        if (end is not None and len(words) >= 2 and _AFTER_NAME.match(text, end)
                and not all(is_vocabulary(w) for w in words)):
            out.append((m.end(), end))
    return out


# --- signature lines ---------------------------------------------------------------------------------------

# A line that is only a signature: initials and a surname, perhaps a degree ("A. Keller", "A. Keller, MD").
_SIGNATURE = re.compile(rf"^[ \t]*((?:[{_UP}]\.[ \t]*){{1,3}}[{_UP}][{_LETTER}'’\-]+(?:[ \t]+[{_UP}][{_LETTER}'’\-]+)?)"
                        r"(?:,?[ \t]+(?:MD|PhD|MBBS|FRCR|FRCP|FACR|DO|RN|MSc)\.?)*[ \t]*$", re.MULTILINE)


def signature_lines(text: str) -> list[tuple[int, int]]:
    return [(m.start(1), m.end(1)) for m in _SIGNATURE.finditer(text)]


# --- vocabulary: words that are no name -------------------------------------------------------------------

# Words a surname may share with the report's own vocabulary: propagated only when capitalised.
COMMON = frozenset("""
a an the and or of in on at to for with without by from as is are was were be been may can will no not
this that these those there here which who left right bilateral mild moderate intense increased uptake lesion
node nodes mass lung liver bone long white black brown green young king hill wood bell ward hall may june
april august mark grant rose page baker cook mason wall field lane head neck chest back
""".split())

# Indication, oncology, procedure and institution words, and eponyms of diseases: capitalised after "for" /
# "of" in real reports ("history of Hodgkin Lymphoma", "Department of Nuclear Medicine"), never a patient.
_CLINICAL = frozenset("""
lymphoma lymphomas hodgkin hodgkin's non-hodgkin carcinoma carcinomas cancer cancers tumour tumor tumours tumors
neoplasm neoplasia malignancy malignant benign metastasis metastases metastatic disease diseases staging
restaging re-staging follow-up followup surveillance evaluation assessment response therapy treatment
chemotherapy radiotherapy immunotherapy surgery resection recurrence recurrent relapse relapsed refractory
suspected suspicion known primary secondary unknown melanoma myeloma sarcoma leukemia leukaemia adenocarcinoma
squamous small large non-small nsclc sclc dlbcl hl nhl cup prostate prostatic breast colorectal colon rectal
pancreatic ovarian endometrial uterine gastric oesophageal esophageal renal urothelial hepatocellular hcc
cholangiocarcinoma neuroendocrine net gist mesothelioma germ testicular seminoma glioma glioblastoma fever
origin infection inflammation sarcoidosis vasculitis abscess cell cells grade stage type high low diffuse
follicular mantle marginal zone classical nodular sclerosis mixed cellularity lymphocyte rich predominant
positive negative biochemical psa rising elevated whole-body mri spect nm fdg-pet psma-pet dotatate choline
fluciclovine fes fapi gallium fluorine nuclear medicine radiology radiologist oncology department division
hospital clinic clinical university institute center centre imaging molecular diagnostic diagnostics health
service services trust foundation medical school college faculty laboratory unit ward
burkitt burkitt's ewing ewing's wilms wilms' kaposi kaposi's merkel hurthle hürthle warthin warthin's
waldenstrom waldenström castleman castleman's langerhans erdheim pancoast virchow krukenberg hashimoto
crohn crohn's li-fraumeni hippel-lindau sezary sézary
information preparation demographics details identification label labels consent summary data notes
fch fec mibg dotatate dotatoc dotanoc fapi fes facbc fet dopa fdopa pib naf nahf ga ge lu tc in suv suvmax
amyloid tau
chest abdomen abdominal pelvis pelvic thorax thoracic neck head skull brain body vertex thigh thighs feet
extremities extremity skeleton skeletal""".split())


_STOPWORDS = frozenset("a an the and or of in on at to for with without by from as is are was were be been "
                       "no not this that these those there here which who all any".split())


def is_vocabulary(word: str) -> bool:
    """Whether ``word`` is a clinical word or a stopword, never taken as a name on a cue alone.

    Common English words that are also surnames (Brown, King, Hill) do not count: after "report for" they
    are a name.
    """
    w = word.lower().strip(".,")
    return w in _clinical_words() or w in _CLINICAL or w in NOT_NAME or w in _STOPWORDS or w.isdigit()


@cache
def _clinical_words() -> frozenset[str]:
    """Lower-case words of the clinical vocabulary: taxonomy terms, CT findings and uptake wording."""
    from data_contracts import findings, taxonomy

    phrases: list[str] = []
    for loc in taxonomy.locations():
        phrases += [*loc.terms, *loc.stems]
    for info in findings.CT_FINDINGS.values():
        phrases += [info.phrase, *info.synonyms]
    for syn in findings.UPTAKE_SYNONYMS.values():
        phrases += list(syn)
    return frozenset(w for p in phrases for w in re.findall(r"[a-z]+", p.lower()))


@cache
def vocabulary() -> frozenset[str]:
    """Clinical words plus common English words: a name word in one of them is propagated only capitalised."""
    return _clinical_words() | COMMON
