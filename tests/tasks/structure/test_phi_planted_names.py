"""A planted name never reaches an LLM request: every house style the generator writes, every header form.

Names are planted into synthetic reports (``tasks.synth.reports.render_report``, every house style, each
name format the generator writes) and into common real header forms, the ``openai`` backend structures them
against a local server that logs every request body, and no name word, MRN or birth date is found in any
body (issue 18).
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from functools import cache

import numpy as np
from data_contracts.caption import caption_text
from data_contracts.findings import CTFinding, Tracer, Vendor, grade_for_suv
from data_contracts.records import LesionTruth, PetFinding
from data_contracts.settings import LLMSettings, Settings
from tasks.structure import prompts
from tasks.structure.llm import structure_reports
from tasks.structure.phi_scrubber import scrub
from tasks.synth.cohort import _FAMILY, _GIVEN
from tasks.synth.raw import RawStudy, Volume
from tasks.synth.reports import HOUSE_STYLES, render_report
from tests.tasks.structure.fake_openai_server import FakeOpenAIServer, answer

# Every surname and given name the cohort draws, plus shapes it does not: particles, apostrophes, hyphens,
# letters beyond Latin-1, one-syllable names, names that are also English words.
GIVEN = [g for sex in ("F", "M") for g in _GIVEN[sex]]
NAMES = [(f, GIVEN[i % len(GIVEN)]) for i, f in enumerate(_FAMILY)] + [
    ("DE LA CRUZ", "JUAN"), ("VAN DER BERG", "ANNA"), ("O'NEIL", "MARY-KATE"), ("MÜLLER", "JÜRGEN"),
    ("ŁUKASIEWICZ", "ŻANETA"), ("NG", "YU"), ("BROWN", "ROSE"), ("KING", "MARK"), ("HILL", "GRANT"),
]
GIVEN_EXTRA = {g for _, g in NAMES}

# Real header forms (RIS exports, letters, DICOM SR text): {F} family, {G} given, as written there.
HEADER_FORMS = [
    "Patient Name: {FAMILY}, {Given}    MRN: {mrn}    DOB: {dob}",
    "PATIENT: {FAMILY}^{GIVEN}   ID: {mrn}",
    "Name: {Given} {Family}\nDOB: {dob}\nHospital number: {mrn}",
    "Re: {Given} {Family}, DOB {dob}, MRN {mrn}",
    "RE: {FAMILY}, {Given} (MRN {mrn})",
    "Report for: {Given} {Family}",
    "PET/CT report for {Family}, {Given}, MRN {mrn}.",
    "Results for {FAMILY}, {GIVEN} - {dob}",
    "Examination of {Given} {Family} on {dob}.",
    "Patient {Given} {Family}, a 63-year-old, was referred for staging.",
    "Dear Dr. Keller, thank you for referring your patient {Given} {Family} (DOB {dob}).",
    "{FAMILY}, {Given}    {dob}    {mrn}",
    "{Family}, {Given} | {dob} | F",
    "Last name: {Family}   First name: {Given}   Pat. ID: {mrn}",
    "Pt name: {Given} {FAMILY}; Pt ID {mrn}",
    "Patient: Mr. {Given} {Family}",
    "Imaging report of Mrs {Family}, {dob}.",
    "Name of patient: {Family} {Given}",
]

# The body repeats the names the header gave (a name with no cue anywhere cannot be told from a word).
BODY = ("\nFINDINGS: Enlarged left axillary lymph node, 2.1 x 1.5 cm, SUVmax 12.4. Sclerotic lesion in T7, "
        "SUVmax 6.1. {given_said}{Family} was informed.\nIMPRESSION: Nodal and osseous disease.")


def _volume(dtype) -> Volume:
    return Volume(np.zeros((2, 2, 2), dtype), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


def _study(k: int, family: str, given: str, tracer: Tracer) -> RawStudy:
    lesions = [("ln_axillary_l", CTFinding.enlarged_lymph_node, 12.4, 21.0),
               ("vertebra_t7", CTFinding.osteolytic, 6.1, 14.0), ("lung_rul", CTFinding.solid_nodule, 3.2, 9.0)]
    truth = [LesionTruth(study_key=f"S{k}", instance=i, location_id=loc, ct_finding=ct,
                         pet_finding=PetFinding(tracer=tracer, grade=grade_for_suv(suv)), suv_max=suv, size_mm=size,
                         center_mm=(0.0, 0.0, 0.0), caption=caption_text(loc, ct, PetFinding(
                             tracer=tracer, grade=grade_for_suv(suv))))
             for i, (loc, ct, suv, size) in enumerate(lesions[: 1 + k % 3], start=1)]
    injected = datetime(2024, 5, 2, 8, 12) + timedelta(days=k)
    return RawStudy(study_key=f"S{k}", patient_id=f"H{4400000 + 37 * k}", patient_name=f"{family}^{given}",
                    birth_date=f"19{40 + k % 50:02d}0{1 + k % 9}1{k % 10}", sex="F", age=70, height_m=1.7,
                    weight_kg=70.0, vendor=Vendor.siemens, tracer=tracer, injected_dose_mbq=300.0,
                    injection_time=injected, acquisition_time=injected + timedelta(minutes=60),
                    ct=_volume(np.int16), pet=_volume(np.float32), lesions=_volume(np.uint8),
                    anatomy=_volume(np.uint16), truth=truth)


@cache
def _rendered() -> list[tuple[str, RawStudy]]:
    out = []
    for k, (family, given) in enumerate(NAMES):
        for s, style in enumerate(HOUSE_STYLES):
            study = _study(k * len(HOUSE_STYLES) + s, family, given, (Tracer.fdg, Tracer.psma)[k % 2])
            out.append((render_report(study, np.random.default_rng(1000 * k + s), style).text, study))
    return out


def _header_form_reports() -> list[tuple[str, RawStudy]]:
    out = []
    for j, form in enumerate(HEADER_FORMS):
        for k in (j, j + 17, j + 31):  # three names per form
            family, given = NAMES[k % len(NAMES)]
            study = _study(900 + 3 * j + k, family, given, Tracer.fdg)
            fields = dict(FAMILY=family, GIVEN=given, Family=family.title(), Given=given.title(),
                          mrn=study.patient_id, dob=f"{study.birth_date[6:]}.{study.birth_date[4:6]}."
                                                    f"{study.birth_date[:4]}")
            said = "{Given} tolerated the scan well; " if "{G" in form else ""
            out.append(((form + BODY.replace("{given_said}", said)).format(**fields), study))
    return out


def _identifiers(study: RawStudy) -> list[str]:
    """What must never be sent: each name word, the MRN and the birth date as the generator writes it."""
    family, given = study.patient_name.split("^")
    words = {w for w in re.split(r"[\s^]+", f"{family} {given}") if len(w) >= 2}  # "MIN-JUN" whole: "60 min"
    words -= {"DE", "LA", "VAN", "DER"}  # particles alone are ordinary words ("de novo", "la")
    born = datetime.strptime(study.birth_date, "%Y%m%d")
    dates = {born.strftime(f) for f in ("%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d %b %Y")}
    return sorted(words) + [study.patient_id] + sorted(dates)


def _found(identifier: str, sent: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(identifier)}(?![\w])", sent, re.IGNORECASE) is not None


def test_the_corpus_covers_every_style_and_name_format():
    reports = _rendered()
    assert len(reports) == len(NAMES) * len(HOUSE_STYLES)
    texts = [t for t, _ in reports]
    formats = {"FAMILY, Given": 0, "Given Family": 0, "FAMILY^GIVEN": 0, "Family, Given": 0}
    for text, study in reports:
        family, given = study.patient_name.split("^")
        formats["FAMILY, Given"] += f"{family.upper()}, {given.title()}" in text
        formats["Given Family"] += f"{given.title()} {family.title()}" in text
        formats["FAMILY^GIVEN"] += f"{family}^{given}" in text
        formats["Family, Given"] += f"{family.title()}, {given.title()}" in text
    assert min(formats.values()) >= 5, formats
    assert sum("PET/CT report for" in t for t in texts) >= 5 and sum(t.startswith("Patient:") for t in texts) >= 5


def test_scrub_removes_every_planted_name_in_every_style_and_header_form():
    missed = []
    for text, study in _rendered() + _header_form_reports():
        out = scrub(text)
        missed += [(study.patient_name, i, out[:200]) for i in _identifiers(study) if _found(i, out)]
    assert missed == []


def test_no_planted_name_reaches_any_request_body(tmp_path):
    # every style with every fifth name (each name format several times), and every header form
    reports = [r for k, r in enumerate(_rendered()) if (k // len(HOUSE_STYLES)) % 5 == 0]
    reports += _header_form_reports()[::3]
    with FakeOpenAIServer(responder=lambda body, n: answer([])) as server:
        settings = Settings(home=tmp_path, llm=LLMSettings(
            backend="openai", base_url=server.base_url, model="test-model", timeout_s=5.0, max_retries=0,
            concurrency=8, cache_dir=None))
        results = structure_reports([t for t, _ in reports], settings)
    assert all(r.ok for r in results) and len(server.requests) == len(reports)

    # Every request is the fixed prompt (system, few-shot examples, schema) plus one user message: the fixed
    # part is checked once, the user messages each against every identifier planted anywhere.
    fixed = prompts.build_messages("")[:-1]
    assert all(b["messages"][:-1] == fixed for b in server.bodies)
    identifiers = {i for _, study in reports for i in _identifiers(study)}
    in_fixed = {i for i in identifiers if _found(i, json.dumps(fixed, ensure_ascii=False))}
    assert in_fixed == set()
    planted = re.compile(r"(?<![\w])(?:" + "|".join(map(re.escape, sorted(identifiers, key=len, reverse=True)))
                         + r")(?![\w])", re.IGNORECASE)
    sent = [b["messages"][-1]["content"] for b in server.bodies]
    assert [m for s in sent for m in planted.findall(s)] == []
    # The clinical content did go out.
    assert sum("SUVmax 12.4" in s for s in sent) >= len(reports) // 3
