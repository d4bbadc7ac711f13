"""The report header: patient, exam and acquisition facts as a department writes them, and the technique.

``draw_header`` draws the written forms (dose units, glucose units, scanner name, indication fitting the
disease) from the study; ``technique_sentence`` and ``terse_extent`` state the range the images cover.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np

from data_contracts.findings import Tracer
from tasks.synth import report_styles as st
from tasks.synth.raw import RawStudy
from tasks.synth.report_styles import chance, pick

TOP_WORDS = {"vertex": ("from the vertex", "from vertex"), "skull_base": ("from the skull base",
              "from the base of the skull"), "neck_or_lower": ("from the neck",)}
BOTTOM_WORDS = {"mid_thigh": ("to the mid-thigh", "to mid-thigh"), "knee_or_below": ("to the feet", "to the toes"),
                 "pelvis_or_higher": ("to the pelvis",)}

_TERSE_TOP = {"vertex": "Vertex", "skull_base": "Skull base", "neck_or_lower": "Neck"}
_TERSE_BOTTOM = {"mid_thigh": "mid thigh", "knee_or_below": "toes", "pelvis_or_higher": "pelvis"}


@dataclass(frozen=True)
class Header:
    family: str
    given: str
    mrn: str
    dob: date
    exam: datetime
    tracer_label: str
    dose: str
    uptake_min: int
    glucose: str | None
    weight: str
    height: str
    scanner: str
    indication: tuple[str, str]  # (full, terse)
    reader: str
    scan_range: tuple[str, str] | None = None  # (top, bottom) the images cover (``imaged_range``)


def draw_header(study: RawStudy, rng: np.random.Generator, disease: str = "",
            scan_range: tuple[str, str] | None = None) -> Header:
    parts = study.patient_name.split("^")
    family, given = parts[0], (parts[1] if len(parts) > 1 else "")
    if not family:
        raise ValueError(f"study {study.study_key}: empty patient family name in {study.patient_name!r}")
    try:
        dob = datetime.strptime(study.birth_date, "%Y%m%d").date()
    except ValueError:
        raise ValueError(f"study {study.study_key}: birth date {study.birth_date!r} is not YYYYMMDD") from None
    uptake = round((study.acquisition_time - study.injection_time).total_seconds() / 60)
    if uptake <= 0:
        raise ValueError(f"study {study.study_key}: acquisition at or before injection ({uptake} min)")
    glucose = None
    if study.tracer is Tracer.fdg:
        glucose = f"{rng.integers(75, 141)} mg/dL" if chance(rng, 0.5) else f"{rng.uniform(4.2, 7.8):.1f} mmol/L"
    dose = f"{study.injected_dose_mbq:.0f} MBq"
    if chance(rng, 0.2):
        dose += f" ({study.injected_dose_mbq / 37:.1f} mCi)"
    psa = f"{rng.uniform(0.2, 25):.1f}"
    options = st.DISEASE_INDICATIONS.get(disease) or st.indications(study.tracer, study.sex)
    full, short = options[int(rng.integers(len(options)))]
    return Header(
        family=family, given=given, mrn=study.patient_id, dob=dob, exam=study.acquisition_time,
        tracer_label=pick(rng, st.TRACER_LABELS[study.tracer]), dose=dose, uptake_min=uptake, glucose=glucose,
        weight=f"{study.weight_kg:.0f} kg", height=f"{study.height_m * 100:.0f} cm",
        scanner=pick(rng, st.SCANNERS[study.vendor.value]), indication=(full.format(psa=psa), short.format(psa=psa)),
        reader=pick(rng, st.READERS), scan_range=scan_range,
    )


def written_name(h: Header, rng: np.random.Generator) -> str:
    given = h.given.title()
    return pick(rng, (f"{h.family.upper()}, {given}", f"{given} {h.family.title()}", f"{h.family}^{h.given}",
                      f"{h.family.title()}, {given}")).strip(", ")


def written_date(d: date | datetime, rng: np.random.Generator) -> str:
    return d.strftime(pick(rng, ("%Y-%m-%d", "%d.%m.%Y", "%m/%d/%Y", "%d %b %Y")))


def technique_sentence(h: Header, rng: np.random.Generator) -> str:
    if h.scan_range is not None:
        extent = f"{pick(rng, TOP_WORDS[h.scan_range[0]])} {pick(rng, BOTTOM_WORDS[h.scan_range[1]])}"
    else:
        extent = "over the whole body"
    text = (f"Whole-body PET/CT was acquired {extent} on a {h.scanner}, {h.uptake_min} minutes after intravenous "
            f"injection of {h.dose} {h.tracer_label}. Low-dose CT was performed for attenuation correction and "
            f"anatomical localisation.")
    if h.glucose:
        text += f" Blood glucose before injection: {h.glucose}."
    return text



def terse_extent(h: Header) -> str:
    """The imaged range in a terse note ("Skull base-mid thigh", "Vertex-toes"); "Whole body" if unknown."""
    if h.scan_range is None:
        return "Whole body"
    return f"{_TERSE_TOP[h.scan_range[0]]}-{_TERSE_BOTTOM[h.scan_range[1]]}"
