"""The synthetic report generator: every house style, exact ground truth, varied spellings, determinism."""

from __future__ import annotations

import math
import re
from collections import Counter
from datetime import datetime, timedelta

import numpy as np
import pytest

from data_contracts import taxonomy
from data_contracts.caption import caption_text
from data_contracts.findings import (
    CT_FINDINGS,
    UPTAKE_SYNONYMS,
    CTFinding,
    Tracer,
    Vendor,
    ct_findings_for,
    grade_for_suv,
)
from data_contracts.records import LesionTruth, PetFinding
from data_contracts.tables import REPORT_TRUTH, ReportFindingTruth
from data_contracts.taxonomy import Laterality
from tasks.synth import report_styles as st
from tasks.synth.raw import RawStudy, Volume
from tasks.synth.report_styles import decap
from tasks.synth.reports import HOUSE_STYLES, render_report

C = CTFinding
FAMILY, GIVEN, MRN = "QUILLFEATHER", "ROSALIND", "MRN4839201"

# Where each style's FINDINGS lie: ground-truth spans must fall between these markers, impressions outside.
FINDINGS_BOUNDS = {
    "numbered": ("\nFINDINGS:\n", "\nIMPRESSION:\n"),
    "prose": ("\nFindings: ", "\nImpression: "),
    "terse": ("\nFindings:\n", "\nImp:\n"),
    "impression_first": ("\nFINDINGS:\n", "\nReported by "),
    "caption": ("p.i.,", "\nOther findings: "),
}


def _volume(dtype=np.float32) -> Volume:
    return Volume(np.zeros((2, 2, 2), dtype), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


def _lesion(i: int, loc: str, ct: CTFinding, suv: float, size: float, tracer=Tracer.fdg, key="S1", **kw):
    pet = PetFinding(tracer=tracer, grade=grade_for_suv(suv))
    return LesionTruth(study_key=key, instance=i, location_id=loc, ct_finding=ct, pet_finding=pet, suv_max=suv,
                       size_mm=size, center_mm=(0.0, 0.0, 0.0), caption=caption_text(loc, ct, pet), **kw)


def _study(truth, tracer=Tracer.fdg, sex="M", key="S1", name=f"{FAMILY}^{GIVEN}", birth="19560314") -> RawStudy:
    inj = datetime(2024, 5, 2, 8, 12)
    return RawStudy(study_key=key, patient_id=MRN, patient_name=name, birth_date=birth, sex=sex, age=68,
                    height_m=1.76, weight_kg=78.4, vendor=Vendor.united_imaging, tracer=tracer,
                    injected_dose_mbq=312.4, injection_time=inj, acquisition_time=inj + timedelta(minutes=62),
                    ct=_volume(np.int16), pet=_volume(), lesions=_volume(np.uint8), anatomy=_volume(np.uint8),
                    truth=truth)


def _fdg_study() -> RawStudy:
    """Bilateral level II nodes, a nodule, two lytic T7 lesions, a missed liver lesion, a CT-occult rib focus,
    an unreported splenic lesion."""
    return _study([
        _lesion(1, "ln_cervical_ii_r", C.enlarged_lymph_node, 12.34, 21.4),
        _lesion(2, "ln_cervical_ii_l", C.enlarged_lymph_node, 10.06, 15.2),
        _lesion(3, "lung_rul", C.solid_nodule, 8.25, 20.6),
        _lesion(4, "vertebra_t7", C.osteolytic, 6.44, 18.0),
        _lesion(5, "vertebra_t7", C.osteolytic, 7.9, 9.0),
        _lesion(6, "liver_s7", C.hypodense_lesion, 9.14, 32.2, in_mask=False),
        _lesion(7, "rib_7_r", C.no_ct_correlate, 4.4, 6.0),
        _lesion(8, "spleen", C.hypodense_lesion, 3.0, 12.0, reported=False),
    ])


def _random_study(rng: np.random.Generator, key: str) -> RawStudy:
    """0-8 lesions at random taxonomy locations; some share a location or sit at its mirror, some unreported."""
    from tasks.synth.report_plan import mirror

    tracer = Tracer.fdg if rng.random() < 0.69 else Tracer.psma
    locs = taxonomy.locations()
    truth: list[LesionTruth] = []
    for i in range(1, int(rng.integers(0, 9)) + 1):
        if truth and rng.random() < 0.35:
            base = truth[int(rng.integers(len(truth)))]
            loc, ct = taxonomy.get(base.location_id), base.ct_finding
            if rng.random() < 0.5 and mirror(loc):
                loc = taxonomy.get(mirror(loc))
        else:
            loc = locs[int(rng.integers(len(locs)))]
            options = ct_findings_for(loc.system)
            ct = options[int(rng.integers(len(options)))]
        truth.append(_lesion(i, loc.id, ct, float(rng.uniform(1.5, 25)), float(rng.uniform(5, 60)), tracer=tracer,
                             key=key, in_mask=bool(rng.random() < 0.9), reported=bool(rng.random() < 0.85)))
    return _study(truth, tracer=tracer, sex="M" if rng.random() < 0.6 else "F", key=key)


@pytest.fixture(scope="module")
def corpus() -> list[tuple[RawStudy, object]]:
    """400 random studies rendered, styles in turn (about 0.7 s)."""
    rng = np.random.default_rng(20240502)
    out = []
    for k in range(400):
        study = _random_study(rng, f"S{k:03d}")
        out.append((study, render_report(study, np.random.default_rng(k), HOUSE_STYLES[k % len(HOUSE_STYLES)])))
    return out


def _round_half_up(x: float, step: float) -> float:
    return math.floor(x / step + 0.5) * step


# --------------------------------------------------------------------------------------------------- styles


@pytest.mark.parametrize("style", HOUSE_STYLES)
def test_every_style_renders_the_example_study(style):
    study = _fdg_study()
    r = render_report(study, np.random.default_rng(3), style)
    assert r.style == style
    flat = " ".join(r.text.split())  # prose may wrap a date across lines
    assert FAMILY.lower() in flat.lower() and MRN in flat  # PHI in the header, for the PHI guard downstream
    assert any(d in flat for d in ("1956-03-14", "14.03.1956", "03/14/1956", "14 Mar 1956"))
    # seven reported lesions → six statements, one per (location, CT finding); the splenic one is not described
    assert sorted((f.finding.location_id, f.instances) for f in r.findings) == sorted([
        ("ln_cervical_ii_r", (1,)), ("ln_cervical_ii_l", (2,)), ("lung_rul", (3,)), ("vertebra_t7", (4, 5)),
        ("liver_s7", (6,)), ("rib_7_r", (7,))])
    by_loc = {f.finding.location_id: f.finding for f in r.findings}
    # the size is the largest T7 lesion's (18 mm), the SUVmax and grade the more avid small one's (7.9): the peak
    assert by_loc["vertebra_t7"].suv_max in (7.9, None) and by_loc["vertebra_t7"].size_mm == 18.0
    assert by_loc["lung_rul"].suv_max in (8.3, None)  # 8.25 rounds half up
    assert by_loc["rib_7_r"].size_mm is None and by_loc["rib_7_r"].ct_finding is C.no_ct_correlate
    begin, end = FINDINGS_BOUNDS[style]
    lo, hi = r.text.index(begin), r.text.index(end)
    assert all(lo < f.finding.span.start and f.finding.span.end <= hi for f in r.findings)


def test_style_layouts_look_like_their_house():
    study = _fdg_study()
    texts = {s: [render_report(study, np.random.default_rng(k), s).text for k in range(6)] for s in HOUSE_STYLES}
    numbered = texts["numbered"][0]
    for heading in ("CLINICAL INDICATION:", "TECHNIQUE:", "FINDINGS:", "IMPRESSION:"):
        assert heading in numbered
    assert re.search(r"^1\. ", numbered, re.M) and re.search(r"^(CHEST|THORAX):$", numbered, re.M)
    assert "blood glucose" in numbered and "MBq" in numbered and "62 min" in numbered
    for prose in texts["prose"]:  # hard-wrapped: no line over 80 columns, sentences broken across lines
        assert max(len(line) for line in prose.splitlines()) <= 80
        assert not re.search(r"^\d{1,2}\. ", prose, re.M)
    terse = " ".join(texts["terse"])
    assert re.search(r"\b(Rt|Lt|rt|lt|R|L)\b", terse) and "Imp:" in terse and "Ind:" in terse
    assert re.search(r"\b(RUL|LN|Th7|D7|T7)\b", terse)
    first = texts["impression_first"][0]
    assert first.index("FINDINGS:") > max(first.find("IMPRESSION:"), first.find("CONCLUSION:")) > 0
    assert all(re.search(r"^(Fig\. |Figure )\d", t, re.M) for t in texts["caption"])


def test_prose_wraps_inside_finding_sentences(corpus):
    prose = [f for _, r in corpus if r.style == "prose" for f in r.findings]
    assert sum("\n" in f.finding.span.text for f in prose) > len(prose) // 3


# ------------------------------------------------------------------------------------------- ground truth


def test_spans_slice_the_text_and_lie_in_the_findings(corpus):
    for _, r in corpus:
        begin, end = FINDINGS_BOUNDS[r.style]
        lo, hi = r.text.index(begin), r.text.index(end)
        starts = [f.finding.span.start for f in r.findings]
        assert starts == sorted(starts)
        assert [f.finding_index for f in r.findings] == list(range(len(r.findings)))
        for f in r.findings:
            span = f.finding.span
            assert span.text == r.text[span.start:span.end] and span.text.strip() == span.text != ""
            assert lo < span.start < span.end <= hi


def test_reported_lesions_are_covered_exactly_once_and_unreported_never(corpus):
    for study, r in corpus:
        covered = Counter(i for f in r.findings for i in f.instances)
        assert set(covered) == {t.instance for t in study.truth if t.reported}
        assert set(covered.values()) <= {1}


def test_finding_values_are_the_representative_and_hottest_lesions_as_written(corpus):
    for study, r in corpus:
        truth = {t.instance: t for t in study.truth}
        for f in r.findings:
            sf, lesions = f.finding, [truth[i] for i in f.instances]
            flat = " ".join(sf.span.text.split())  # hard wraps may fall between a number and its unit
            assert {t.location_id for t in lesions} == {sf.location_id}  # grouping is by exact location
            assert {t.ct_finding for t in lesions} == {sf.ct_finding}
            if sf.ct_finding is C.no_ct_correlate:
                rep = max(lesions, key=lambda t: (t.suv_max, t.size_mm, -t.instance))
                assert sf.size_mm is None
            else:
                rep = max(lesions, key=lambda t: (t.size_mm, t.suv_max, -t.instance))
            hottest = max(lesions, key=lambda t: (t.suv_max, -t.instance))  # grade and SUVmax: the group's peak
            assert sf.pet_finding == hottest.pet_finding and sf.laterality is taxonomy.get(sf.location_id).laterality
            if sf.suv_max is not None:
                assert sf.suv_max == pytest.approx(_round_half_up(hottest.suv_max, 0.1), abs=1e-9)
                assert re.search(rf"(?<![\d.]){re.escape(f'{sf.suv_max:.1f}')}(?![\d])", flat)
            if sf.size_mm is not None:
                assert sf.size_mm == max(1, math.floor(rep.size_mm + 0.5))
                mm, cm = int(sf.size_mm), f"{sf.size_mm / 10:.1f}"
                assert re.search(rf"(?<![\d.]){mm}(?:[ -]?mm|\s?[x×])|(?<![\d.]){re.escape(cm)}(?:[ -]?cm|\s?[x×])",
                                 flat), (sf.size_mm, sf.span.text)
            if len(lesions) > 1:
                assert re.search(r"larg|up to|max |most intense|multiple|several|numerous|mult\.|two|three|x\d|"
                                 r"\b[2-9]\b|foci|areas", flat, re.I), sf.span.text


def test_bilateral_statements_yield_one_finding_per_side_with_the_same_span(corpus):
    pairs = 0
    for _, r in corpus:
        by_span = Counter((f.finding.span.start, f.finding.span.end) for f in r.findings)
        for key, n in by_span.items():
            assert n <= 2
            if n == 2:
                a, b = [f.finding for f in r.findings if (f.finding.span.start, f.finding.span.end) == key]
                assert {a.laterality, b.laterality} == {Laterality.left, Laterality.right}
                assert a.ct_finding is b.ct_finding and a.pet_finding == b.pet_finding
                assert re.search(r"bilateral|both", a.span.text, re.I)
                if a.suv_max is not None:  # each side's own value is written
                    assert f"{a.suv_max:.1f}" in a.span.text and f"{b.suv_max:.1f}" in a.span.text
                pairs += 1
    assert pairs >= 10


def test_findings_validate_and_round_trip_through_the_report_truth_table(corpus):
    rows = [f for _, r in corpus for f in r.findings]
    assert len(rows) > 800
    df = REPORT_TRUTH.frame(rows)  # validates every row: laterality, CT finding allowed for the system, keys
    back = REPORT_TRUTH.records(df)
    assert back == rows
    assert all(ReportFindingTruth.from_json(f.to_json()) == f for f in rows[:50])


def test_impression_restatements_repeat_findings_values(corpus):
    """An impression that quotes an SUVmax quotes one of the findings' written values (dedup by key holds)."""
    checked = 0
    for _, r in corpus:
        start = {"numbered": "\nIMPRESSION:\n", "prose": "\nImpression: ", "terse": "\nImp:\n",
                 "caption": "\nSummary: "}.get(r.style)
        if start is None:
            head = r.text[: r.text.index("\nFINDINGS:\n")]
        else:
            head = r.text[r.text.index(start):]
        written = {f"{f.finding.suv_max:.1f}" for f in r.findings if f.finding.suv_max is not None}
        for value in re.findall(r"(?:SUV|SUVmax|SUV max|SUV\(max\))\D{0,6}?(\d+\.\d)", head):
            assert value in written
            checked += 1
    assert checked > 50


# ---------------------------------------------------------------------------------------------- negatives


def test_negative_and_physiological_sentences_are_present_and_never_contradict(corpus):
    negatives = Counter()
    for study, r in corpus:
        locs = [taxonomy.get(f.finding.location_id) for f in r.findings]
        flat = " ".join(r.text.split())
        denials = 0
        for neg in st.NEGATIVES:
            for text in (neg.full.format(T=study.tracer.value), neg.terse.format(T=study.tracer.value)):
                if text in flat or decap(text) in flat:
                    negatives[neg.full] += 1
                    denials += 1
                    for p in neg.forbids:
                        hit = [loc.id for loc in locs
                               if (loc.system.value == p[7:] if p.startswith("system:") else loc.id.startswith(p))]
                        assert not hit, (text, hit)
        assert denials >= 1, r.text
        organs = ("brain", "myocardium") if study.tracer is Tracer.fdg else ("salivary", "kidneys")
        assert any(w in r.text for w in organs) or "Physiol" in r.text
    for required in ("No abnormal uptake in the liver.", "No suspicious osseous lesions.",
                     "No {T}-avid pulmonary nodules."):
        assert negatives[required] > 5, negatives


def test_negatives_respect_the_studys_findings():
    """A study with liver, lung and bone findings never says its liver, lungs or bones are clear."""
    study = _study([_lesion(1, "liver_s4", C.hypodense_lesion, 6.0, 20.0), _lesion(2, "lung_lll", C.mass, 9.0, 30.0),
                    _lesion(3, "sacrum", C.osteoblastic, 5.0, 15.0)])
    for seed in range(60):
        text = render_report(study, np.random.default_rng(seed), HOUSE_STYLES[seed % 5]).text
        for denial in ("No abnormal uptake in the liver", "No abnl uptake liver", "pulmonary nodules",
                       "pulm nodules", "osseous lesions", "No bone mets", "No lytic or sclerotic",
                       "osseous metastatic disease", "skeletal"):
            assert denial not in text, (seed, denial)


def test_a_study_without_reported_lesions_gets_a_negative_report():
    study = _study([_lesion(1, "spleen", C.hypodense_lesion, 3.0, 12.0, reported=False)])
    for style in HOUSE_STYLES:
        r = render_report(study, np.random.default_rng(1), style)
        assert r.findings == []
        assert "No evidence of FDG-avid malignancy." in r.text or "No FDG-avid disease." in r.text


# ------------------------------------------------------------------------------------- variety of wording


def test_suv_and_size_spellings_vary(corpus):
    text = "\n".join(f.finding.span.text for _, r in corpus for f in r.findings)
    suv = {
        "SUVmax 8.2": r"SUVmax \d+\.\d", "SUV max: 8.2": r"SUV max: \d+\.\d", "SUVmax=8.2": r"SUVmax=\d+\.\d",
        "SUVmax of 8.2": r"SUVmax of \d+\.\d", "maximum SUV 8.2": r"maximum SUV \d+\.\d",
        "(SUVmax 8.2)": r"\(SUVmax \d+\.\d\)", "SUVmax: 8.2": r"SUVmax: \d+\.\d",
        "respectively": r"SUV\S* (of )?\d+\.\d and \d+\.\d, respectively",
    }
    size = {
        "21 mm": r"(?<![\d.x×] )\b\d+ mm", "2.1 cm": r"(?<![\d.x×] )\b\d+\.\d cm", "21mm": r"\b\d+mm",
        "2.1 x 1.5 cm": r"\d+\.\d [x×] \d+\.\d cm", "21 x 15 mm": r"\b\d+ [x×] \d+ mm", "21x15mm": r"\d+x\d+mm",
        "21-mm": r"\b\d+-mm", "2.1-cm": r"\d+\.\d-cm",
    }
    seen_suv = {k for k, rx in suv.items() if re.search(rx, text)}
    seen_size = {k for k, rx in size.items() if re.search(rx, text)}
    assert seen_suv == set(suv), set(suv) - seen_suv
    assert seen_size == set(size), set(size) - seen_size


def test_locations_grades_and_groupings_vary(corpus):
    text = "\n".join(f.finding.span.text for _, r in corpus for f in r.findings)
    for pattern in (r"\bright\b", r"\bleft\b", r"\bR\b", r"\bL\b", r"\brt\b", r"\blt\b", r"\bRt\b", r"\bLt\b",
                    r"\bbilateral\b", r"\bboth\b", r"\bmultiple\b", r"the largest", r"the larger", r"FDG-avid",
                    r"PSMA-avid", r"hypermetabolic", r"without CT correlate", r"\bLN\b", r"\bx[2-9]\b"):
        assert re.search(pattern, text), pattern
    phrases = Counter()
    for _, r in corpus:
        for f in r.findings:
            phrases[f.finding.location_id] += 1
    assert len(phrases) > 100  # most of the 134 taxonomy locations appear


def test_every_ct_and_uptake_synonym_has_a_wording():
    for ct, info in CT_FINDINGS.items():
        written = set(st.NO_CT_CLAUSES) if ct is C.no_ct_correlate else {w.synonym for w in st.CT_WORDINGS[ct]}
        assert written == set(info.synonyms), ct
    for grade, synonyms in UPTAKE_SYNONYMS.items():
        assert st.uptake_vocabulary(grade) == set(synonyms), grade


def test_noun_phrases_name_their_location_and_finding():
    """Every location with every CT finding its system allows can be worded, in full and terse registers."""
    rng = np.random.default_rng(0)
    for loc in taxonomy.locations():
        for ct in ct_findings_for(loc.system):
            if ct is C.no_ct_correlate:
                continue
            for count in (1, 3):
                for terse in (False, True):
                    phrase = st.noun_phrase(loc, ct, count, rng, terse, 14).text
                    assert phrase and "  " not in phrase


@pytest.mark.parametrize("phrase, article", [("8 mm node", "an"), ("11-mm node", "an"), ("RUL nodule", "an"),
                                             ("T7 lesion", "a"), ("SUVmax of 8.2", "an"), ("enlarged node", "an"),
                                             ("1.8 cm lesion", "a"), ("lytic lesion", "a"), ("L3 lesion", "an")])
def test_indefinite_article(phrase, article):
    assert st.indefinite(phrase) == article


# --------------------------------------------------------------------------------- determinism and errors


def test_same_seed_same_report_other_seed_other_report():
    study = _fdg_study()
    for style in (*HOUSE_STYLES, None):
        a = render_report(study, np.random.default_rng(11), style)
        b = render_report(study, np.random.default_rng(11), style)
        c = render_report(study, np.random.default_rng(12), style)
        assert a.text == b.text and a.findings == b.findings and a.style == b.style
        assert c.text != a.text
    assert {render_report(study, np.random.default_rng(k)).style for k in range(40)} == set(HOUSE_STYLES)


def test_bad_inputs_name_the_study():
    study = _fdg_study()
    with pytest.raises(ValueError, match=r"S1.*unknown report style 'haiku'"):
        render_report(study, np.random.default_rng(0), "haiku")
    psma = _study([_lesion(1, "prostate", C.mass, 9.0, 20.0, tracer=Tracer.psma)], tracer=Tracer.fdg)
    with pytest.raises(ValueError, match=r"S1: lesion 1 has PSMA uptake"):
        render_report(psma, np.random.default_rng(0), "numbered")
    with pytest.raises(ValueError, match=r"S1: birth date '1956-03-14'"):
        render_report(_study([], birth="1956-03-14"), np.random.default_rng(0), "numbered")


def test_report_agrees_with_its_disease_history_and_images():
    from data_contracts import segmentation
    from tasks.realism import reports as check
    from tasks.synth.reports import ReportContext

    anat = np.zeros((40, 4, 4), np.uint16)  # 1 mm slices: femur cut by the bottom slice, the whole skull inside
    anat[0:5, 1:3, 1:3] = segmentation.label_of()["femur_left"]
    anat[25:32, 1:3, 1:3] = segmentation.label_of()["skull"]
    study = _fdg_study()
    study.anatomy = Volume(anat, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))
    context = ReportContext(disease="lymphoma", prior_sites=frozenset({"vertebra_t7"}), response="progression")
    for k, style in enumerate(HOUSE_STYLES):
        r = render_report(study, np.random.default_rng(k), style, context)
        assert check.indication_consistent(r.text, "FDG") is True, style
        assert check.diseases_in(check.indication(r.text)) == {"lymphoma"}
        said = check.stated_range(r.text)  # key-image captions state no technique; terse notes "Vertex-mid thigh"
        assert said in ((("vertex", "mid_thigh"),) if style in ("numbered", "prose", "terse") else
                        (None, ("vertex", "mid_thigh"))), style
        for f in r.findings:
            assert check.has_comparison(f.finding.span.text), (style, f.finding.span.text)
            word = ("incr", "increased") if f.finding.location_id == "vertebra_t7" else ("new",)
            assert any(w in f.finding.span.text for w in word), (style, f.finding.span.text)
    plain = render_report(study, np.random.default_rng(0), "numbered")  # a baseline: no comparison wording
    assert not any("prior study" in f.finding.span.text for f in plain.findings)
    assert "metastatic" not in render_report(study, np.random.default_rng(1), "numbered", context).text.split(
        "IMPRESSION")[-1]


def test_section_denials_count_and_the_otherwise_unremarkable_line():
    """Beside findings one denial (and, with the given chance, an "otherwise unremarkable" line after it);
    a section without findings one or two, never that line; every sentence a denial of this section."""
    from tasks.synth.report_layouts import ReportWriter

    study = _study([])
    full = {n.full.format(T="FDG") for n in st.NEGATIVES if n.section == "chest"}
    other = {o.format(T="FDG") for o in st.OTHER_NEGATIVES["full"]}
    counts = Counter()
    for seed in range(40):
        c = ReportWriter(study, np.random.default_rng(seed), [])
        beside = c.section_denials("chest", True, False, other_chance=1.0)
        assert len(beside) == 2 and beside[0] in full and beside[1] in other
        assert len(c.section_denials("chest", True, False)) == 1  # no chance given: no extra line
        alone = c.section_denials("chest", False, False, other_chance=1.0)
        assert set(alone) <= full and not set(alone) & other
        counts[len(alone)] += 1
    assert set(counts) == {1, 2}  # one or two, drawn
