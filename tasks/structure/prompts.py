"""The versioned prompt of the LLM structuring backend: instructions, the taxonomy, few-shot examples.

The model reads one (already PHI-scrubbed) report and answers an ``LLMAnswer`` (see
``data_contracts.structured_report``): one entry per lesion finding, with the taxonomy location id, side,
CT finding, tracer, uptake grade, SUVmax, long-axis size in mm, and the source sentence quoted verbatim
(``evidence``) so the backend can find its span in the text.

``PROMPT_VERSION`` is stored with every record and is part of the response-cache key; bump it whenever
the meaning of the prompt changes. ``prompt_fingerprint()`` (a hash of the rendered messages) is in the
cache key too, so an edit that forgets the bump still cannot serve stale cached answers.

The few-shot answers are real answers to their report texts: a test validates each against its text with
the same code the backend uses, so an example can never teach the model something the validator rejects.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache

from data_contracts import taxonomy
from data_contracts.findings import CT_FINDINGS, UPTAKE_THRESHOLDS, ct_findings_for

PROMPT_VERSION = "structure-v1"


@dataclass(frozen=True)
class Example:
    report: str
    answer: dict  # an LLMAnswer as JSON-ready data


def _f(evidence, location_id, laterality, ct_finding, tracer, grade, suv_max, size_mm) -> dict:
    return {"evidence": evidence, "location_id": location_id, "laterality": laterality, "ct_finding": ct_finding,
            "tracer": tracer, "uptake_grade": grade, "suv_max": suv_max, "size_mm": size_mm}


_NECK = ("Neck: Bilateral enlarged level II lymph nodes with intense FDG uptake, SUVmax 11.2, the largest on the "
         "right measuring 1.8 cm.")
_LUNG = "Chest: A 14 mm solid nodule in the right upper lobe with moderately increased uptake (SUV max: 5.6)."
_T7 = "Sclerotic lesion in the T7 vertebral body with intense PSMA uptake, SUVmax=14.5."
_RIB = "Focal uptake in the left 6th rib without CT correlate, SUVmax 3.1."
_EIA = "Left external iliac lymph node, 9 x 8 mm, SUVmax of 7.9."
_LIVER = ("Multiple hypodense liver lesions with increased FDG uptake, the largest in segment VII\n"
          "measuring 3.2 x 2.8 cm with SUVmax 9.4.")
_ILIUM = "Osteolytic destruction of the right iliac bone, SUVmax 6.3."

EXAMPLES: tuple[Example, ...] = (
    Example(
        report=("FDG PET/CT [DATE]\nPatient: [NAME]   MRN: [ID]\nINDICATION: Lymphoma, staging.\nFINDINGS:\n"
                f"{_NECK}\n{_LUNG}\nAbdomen: No abnormal uptake in the liver or spleen. Physiological bowel "
                "activity.\n"),
        answer={"findings": [
            _f(_NECK, "ln_cervical_ii_r", "right", "enlarged_lymph_node", "FDG", "intense", 11.2, 18.0),
            _f(_NECK, "ln_cervical_ii_l", "left", "enlarged_lymph_node", "FDG", "intense", 11.2, None),
            _f(_LUNG, "lung_rul", "right", "solid_nodule", "FDG", "moderate", 5.6, 14.0),
        ]},
    ),
    Example(
        report=("PSMA PET/CT. Referring physician: Dr. [NAME].\nHistory: prostate cancer, rising PSA.\n"
                f"{_T7} {_RIB} {_EIA} Prostate bed unremarkable.\n"),
        answer={"findings": [
            _f(_T7, "vertebra_t7", "midline", "osteoblastic", "PSMA", "intense", 14.5, None),
            _f(_RIB, "rib_6_l", "left", "no_ct_correlate", "PSMA", "mild", 3.1, None),
            _f(_EIA, "ln_external_iliac_l", "left", "non_enlarged_lymph_node", "PSMA", "moderate", 7.9, 9.0),
        ]},
    ),
    Example(
        report=(f"FINDINGS: {_LIVER} {_ILIUM}\nNo FDG-avid cervical or thoracic lymphadenopathy.\n"
                "IMPRESSION: Hepatic and osseous metastases, see above.\n"),
        answer={"findings": [
            _f(_LIVER, "liver_s7", "midline", "hypodense_lesion", "FDG", "moderate", 9.4, 32.0),
            _f(_ILIUM, "ilium_r", "right", "osteolytic", "FDG", "moderate", 6.3, None),
        ]},
    ),
)


def _taxonomy_table() -> str:
    lines = []
    for loc in taxonomy.locations():
        syn = ", ".join(loc.synonyms[:3])
        lines.append(f"{loc.id}: {loc.name} [{loc.system.value}, {loc.laterality.value}]"
                     + (f" (also: {syn})" if syn else ""))
    return "\n".join(lines)


def _ct_rules() -> str:
    return "\n".join(f"   - {system.value}: {', '.join(f.value for f in ct_findings_for(system))}"
                     for system in taxonomy.System)


@cache
def system_prompt() -> str:
    mild, intense = UPTAKE_THRESHOLDS
    ct_words = "; ".join(f"{f.value} = {', '.join(info.synonyms[:4])}" for f, info in CT_FINDINGS.items())
    return f"""You extract lesion findings from one PET/CT report into JSON that follows the given schema.

Rules:
1. One entry per abnormal lesion site the report states (pathological tracer uptake and/or a CT lesion).
   Skip negated statements ("no abnormal uptake in the liver"), physiological or normal uptake, history,
   technique, and impression lines that only repeat findings already listed.
2. A sentence naming several sites ("bilateral level II nodes", "nodes in the right axilla and left hilum")
   gives one entry per site, each quoting the same sentence. "Multiple ..., the largest in X ..." gives one
   entry for X with the largest lesion's values.
3. evidence: the sentence (or clause) stating the finding, copied character for character from the report.
   Never paraphrase, shorten words or fix typos; line breaks may be kept or written as spaces.
4. location_id: an id from the location list below. laterality must be the side of that id ("right" for
   *_r and right-sided ids, "left" for *_l and left-sided ids, "midline" for unpaired structures).
5. ct_finding must fit the location's system:
{_ct_rules()}
   Use no_ct_correlate when only uptake is described. Report wording: {ct_words}.
6. tracer: FDG or PSMA, as the report states (the study's tracer applies to every finding).
7. uptake_grade: from SUVmax when given (mild: < {mild:g}; moderate: {mild:g} to < {intense:g}; intense: >= {intense:g}),
   otherwise from the wording (mild/faint/low-grade; increased/moderate/avid; intense/marked/highly avid).
8. suv_max: the number as written, else null. size_mm: the longest stated dimension in millimetres
   (centimetres x 10), else null.
9. Text in square brackets ([NAME], [DATE], [ID], ...) is redacted personal data; ignore it.
10. A report with no lesion findings gives {{"findings": []}}.

Locations (id: name [system, side]):
{_taxonomy_table()}"""


def user_message(report: str) -> dict[str, str]:
    return {"role": "user", "content": f'Report:\n"""\n{report}\n"""'}


@cache
def _example_messages() -> tuple[dict[str, str], ...]:
    out: list[dict[str, str]] = []
    for ex in EXAMPLES:
        out.append(user_message(ex.report))
        out.append({"role": "assistant", "content": json.dumps(ex.answer, ensure_ascii=False)})
    return tuple(out)


def build_messages(report: str) -> list[dict[str, str]]:
    """System prompt, the few-shot pairs, then the (scrubbed) report to structure."""
    return [{"role": "system", "content": system_prompt()}, *_example_messages(), user_message(report)]


def repair_messages(messages: list[dict[str, str]], answer: str, error: str) -> list[dict[str, str]]:
    """The conversation extended with the rejected answer and the validation error, asking for a fix."""
    return [
        *messages,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": (
            f"Your answer could not be used: {error}\n"
            "Return the complete corrected JSON for the same report. Quote every evidence sentence exactly as "
            "it appears in the report, use only location ids from the list, make laterality match the "
            "location, and choose a CT finding that fits the location's system.")},
    ]


@cache
def prompt_fingerprint() -> str:
    """Hash of everything the model is told besides the report (part of the cache key)."""
    rendered = json.dumps([PROMPT_VERSION, system_prompt(), list(_example_messages())], ensure_ascii=False)
    return hashlib.sha256(rendered.encode()).hexdigest()[:16]
