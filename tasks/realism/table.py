"""The realism check: every acceptance figure of issue 14 measured on a raw drop folder and its ingested store.

``realism_table(settings)`` reads the manifest, the reports, the anatomy sidecars (each once, and DICOM headers
for the patient's age) from ``settings.raw``, and the volumes and tables from the store ingest wrote (through
``tasks.realism.facts``); it returns one row per figure: (figure, value, target, status "pass" | "fail" | "n/a", note). It works unchanged on a real
hospital drop: figures that need the synthetic ground truth (``truth/``) read "n/a" when it is absent.

Optional synthetic truth it uses when present: ``truth/lesions.parquet`` (locations, sizes, ``benign`` if
the generator writes it), ``truth/report_findings.parquet`` (statement spans), ``truth/studies.parquet``
(per study: ``study_key`` and any of ``age``, ``visit``). The age otherwise comes from the DICOM header
(PatientAge) or the report header (birth date and exam date).
Patient IDs group studies and never leave the realism package; the table holds cohort-level numbers only.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from data_contracts import segmentation, taxonomy
from data_contracts.findings import grade_for_suv
from data_contracts.settings import Settings
from data_contracts.tables import LESIONS
from tasks.evaluate.position import leave_one_group_out_top1
from tasks.ingest.pseudonym import study_pseudonym
from tasks.realism import images, position, reports
from tasks.realism.facts import (
    DropStudy,
    ReportFacts,
    StudyFacts,
    collect,
    match_truth,
    read_drop,
    report_rows,
    truth_table,
)

NODAL_CLASS = ("ln_", "lymph", "node", "station")


@dataclass(frozen=True)
class Figure:
    figure: str
    value: str
    target: str
    status: str  # pass | fail | n/a
    note: str = ""


def _fmt(v: float, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _fig(name: str, value: float | None, target: str, ok, note: str = "", digits: int = 2) -> Figure:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Figure(name, "n/a", target, "n/a", note)
    return Figure(name, _fmt(value, digits), target, "pass" if ok(value) else "fail", note)


def _median(xs) -> float:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return float(np.median(xs)) if xs else float("nan")


def _share(flags) -> float:
    flags = [f for f in flags if f is not None]
    return float(np.mean(flags)) if flags else float("nan")


def _spread(xs) -> str:
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return f"range {min(xs):.2f}-{max(xs):.2f}, n={len(xs)}" if xs else "n=0"



def _tercile_ratio(pairs: list[tuple[float, float]]) -> float:
    """Mean of the second value in the top tercile of the first over its mean in the bottom tercile."""
    pairs = sorted((a, b) for a, b in pairs if not (math.isnan(a) or math.isnan(b)))
    if len(pairs) < 6:
        return float("nan")
    t = len(pairs) // 3
    return float(np.mean([b for _, b in pairs[-t:]]) / np.mean([b for _, b in pairs[:t]]))


# ----------------------------------------------------------------------------------------------- figures
def atlas_top1(facts: list[StudyFacts], truth: pd.DataFrame, atlas_patients: int = 10) -> tuple[float, int]:
    """Top-1 of looking the label up at the same relative scan position in other patients' label maps.

    Each lesion's scan position (fractions of the scanned box) is looked up in up to ``atlas_patients`` other
    patients' label maps (their first study); the site their labels name wins by vote; where no map names a
    site there (fat, a class with several sites), the k-NN position baseline over the other patients'
    lesions answers. No image intensity is used.
    """
    from tasks.evaluate.position import PositionBaseline

    first: dict[str, StudyFacts] = {}
    for f in facts:
        first.setdefault(f.patient, f)
    labelled = [(f, les) for f in facts for les in f.lesion_rows if les.get("truth") is not None]
    hits = 0
    for f, les in labelled:
        others = [o for p, o in first.items() if p != f.patient][:atlas_patients]
        votes: dict[str, int] = defaultdict(int)
        for o in others:
            arr, sites, shape = o.atlas
            idx = [int(round(float(les["position"][a]) * (shape[2 - a] - 1))) for a in (2, 1, 0)]
            site = sites.get(int(arr[idx[0], idx[1], idx[2]]))
            if site:
                votes[site] += 1
        if votes:
            guess = max(sorted(votes), key=lambda s: votes[s])
        else:
            train = [(l["position"], truth.loc[l["truth"], "location_id"]) for g, l in labelled if g.patient != f.patient]
            pred = PositionBaseline.fit([p for p, _ in train], [t for _, t in train]).predict([les["position"]], 1)
            guess = pred[0][0] if pred and pred[0] else None
        hits += guess == truth.loc[les["truth"], "location_id"]
    return (hits / len(labelled) if labelled else float("nan")), len(labelled)



def image_figures(facts: list[StudyFacts]) -> list[Figure]:
    col = lambda k, sel=None: [f.img[k] for f in facts if sel is None or sel(f)]  # noqa: E731
    fdg = lambda f: f.tracer == "FDG"  # noqa: E731
    psma = lambda f: f.tracer == "PSMA"  # noqa: E731
    out = [
        _fig("liver HU (median over studies)", _median(col("liver_hu")), "55 ± 8", lambda v: 47 <= v <= 63,
             _spread(col("liver_hu")), 1),
        _fig("vertebral cancellous HU, L1-L4", _median(col("cancellous_hu")), "180 ± 60", lambda v: 120 <= v <= 240,
             _spread(col("cancellous_hu")), 0),
    ]
    aged = [(f.age, f.img["cancellous_hu"]) for f in facts if f.age is not None and not math.isnan(f.img["cancellous_hu"])]
    rho = float(stats.spearmanr(*zip(*aged))[0]) if len(aged) >= 5 else float("nan")
    out.append(_fig("Spearman(age, cancellous HU)", rho, "< 0 (falls with age)", lambda v: v < 0,
                    f"n={len(aged)} studies with an age (DICOM or report header)"))
    out.append(_fig("liver CT noise, SD HU", _median(col("liver_noise_hu")), "15 ± 5", lambda v: 10 <= v <= 20,
                    _spread(col("liver_noise_hu")), 1))
    noise = [(f.weight, f.img["liver_noise_hu"]) for f in facts]
    out.append(_fig("liver noise, heaviest / lightest tercile", _tercile_ratio(noise), ">= 1.3", lambda v: v >= 1.3,
                    "by weight"))
    size = [(f.img.get("body_diameter_mm", float("nan")), f.img["liver_noise_hu"]) for f in facts]
    out.append(_fig("liver noise, widest / thinnest tercile", _tercile_ratio(size), "info", lambda v: True,
                    "by the body's effective diameter at the liver (what attenuates the beam)"))
    out += [
        _fig("neighbour noise correlation (liver)", _median(col("noise_corr")), "0.3-0.7", lambda v: 0.3 <= v <= 0.7,
             _spread(col("noise_corr"))),
        _fig("SD(5x5 mean) / SD(voxel) (liver)", _median(col("box5_ratio")), ">= 0.35", lambda v: v >= 0.35,
             _spread(col("box5_ratio"))),
        _fig("in-between HU at the skin", _median(col("skin_inbetween")), ">= 0.30", lambda v: v >= 0.30,
             "share of shell voxels"),
        _fig("in-between HU at the lung surface", _median(col("lung_inbetween")), ">= 0.30", lambda v: v >= 0.30,
             "share of shell voxels"),
        _fig("FDG liver SUVmean", _median(col("liver_suv_mean", fdg)), "2.0 ± 0.4", lambda v: 1.6 <= v <= 2.4,
             _spread(col("liver_suv_mean", fdg))),
        _fig("FDG blood pool SUVmean (aorta)", _median(col("blood_pool_suv", fdg)), "1.7 ± 0.3",
             lambda v: 1.4 <= v <= 2.0, _spread(col("blood_pool_suv", fdg))),
        # The 10-15 % is FDG's liver image-quality figure; a PSMA liver (SUV about 5) has more counts, so less
        # noise: pooling both tracers measured a mix (demo seed 4242: FDG 0.11, PSMA 0.07, pooled 0.10).
        _fig("FDG liver PET CV (PET's own grid)", _median(col("liver_pet_cv_native", fdg)), "0.10-0.15",
             lambda v: 0.10 <= v <= 0.15, _spread(col("liver_pet_cv_native", fdg))),
        _fig("PSMA liver PET CV (PET's own grid)", _median(col("liver_pet_cv_native", psma)), "info",
             lambda v: True, _spread(col("liver_pet_cv_native", psma)) + "; higher uptake, less relative noise"),
        _fig("FDG liver PET CV (stored, on the CT grid)", _median(col("liver_pet_cv", fdg)), "info", lambda v: True,
             _spread(col("liver_pet_cv", fdg)) + "; linear resampling smooths the noise"),
        _fig("PSMA kidney SUVmax (median)", _median(col("kidney_suv_max", psma)), ">= 35", lambda v: v >= 35,
             _spread(col("kidney_suv_max", psma)), 1),
    ]
    sal = [v >= images.SALIVARY_PRESENT_SUV for v in col("salivary_suv_max", psma) if not math.isnan(v)]
    lac = [v >= images.LACRIMAL_PRESENT_SUV for v in col("lacrimal_suv_max", psma) if not math.isnan(v)]
    out.append(_fig("PSMA salivary uptake present", _share(sal), ">= 0.9 of PSMA studies", lambda v: v >= 0.9,
                    f"SUVmax >= {images.SALIVARY_PRESENT_SUV}, n={len(sal)}"))
    out.append(_fig("PSMA lacrimal uptake present", _share(lac), ">= 0.9 of PSMA studies", lambda v: v >= 0.9,
                    f"SUVmax >= {images.LACRIMAL_PRESENT_SUV}, n={len(lac)}"))
    return out


def lesion_figures(facts: list[StudyFacts], truth: pd.DataFrame | None, settings: Settings,
                   drop: list[DropStudy]) -> list[Figure]:
    rows = [(f, les) for f in facts for les in f.lesion_rows]
    rho = float("nan")
    if len(rows) >= 5:
        rho = float(stats.spearmanr([l["size_mm"] for _, l in rows], [l["suv_max"] for _, l in rows])[0])
    ratios = [l["suv_max"] / f.img["liver_suv_mean"] for f, l in rows
              if f.tracer == "FDG" and f.img["liver_suv_mean"] > 0]
    out = [_fig("Spearman(lesion size, SUVmax)", rho, ">= 0.3", lambda v: v >= 0.3, f"n={len(rows)} masks"),
           _fig("median FDG lesion SUVmax / liver SUVmean", _median(ratios), "<= 5", lambda v: v <= 5,
                f"n={len(ratios)}", 1)]
    small = float("nan")
    if truth is not None:
        psma_nodes = truth[(truth["pet_finding__tracer"] == "PSMA")
                           & truth["location_id"].map(lambda x: taxonomy.get(x).system.value == "lymph_node")]
        small = float((psma_nodes["size_mm"] < 10).mean()) if len(psma_nodes) else float("nan")
    out.append(_fig("PSMA nodal lesions < 10 mm", small, ">= 0.5", lambda v: v >= 0.5, "truth sizes"))
    # lesion-free or benign-only studies, over every study in the manifest
    study_keys = [d.row.study_key for d in drop]
    free = 0
    lesions_tab = LESIONS.read(settings.table_path("lesions"))
    with_mask = set(lesions_tab["study_id"])
    if truth is not None:
        by_key = {k: g for k, g in truth.groupby("study_key")}
        for key in study_keys:
            g = by_key.get(key)
            free += g is None or ("benign" in g and bool(g["benign"].all()))
        note = "truth: no lesion or benign only"
    else:
        keys = [study_pseudonym(k, settings.pseudonym_key) for k in study_keys]
        free = sum(k not in with_mask for k in keys)
        note = "no lesion in the mask (or quarantined empty)"
    out.append(_fig("lesion-free / benign-only studies", free / max(1, len(study_keys)), ">= 0.2",
                    lambda v: v >= 0.2, note))
    return out


def position_figures(facts: list[StudyFacts], truth: pd.DataFrame | None) -> list[Figure]:
    fdg = [f for f in facts if f.tracer == "FDG"]
    ranges = [(position.scan_top(f.marks), position.scan_bottom(f.marks)) for f in fdg]
    ok = [t in ("vertex", "skull_base") and b == "mid_thigh" for t, b in ranges]
    counts = defaultdict(int)
    for r in ranges:
        counts[f"{r[0]}->{r[1]}"] += 1
    out = [_fig("FDG scans skull base/vertex to mid-thigh", _share(ok), ">= 0.7", lambda v: v >= 0.7,
                ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))]
    arms = [position.arms(f.marks) for f in facts]
    out.append(_fig("arms up", _share([a == "up" for a in arms if a]), ">= 0.6", lambda v: v >= 0.6,
                    f"{sum(a is None for a in arms)} unknown"))
    first: dict[str, StudyFacts] = {}
    for f in facts:
        first.setdefault(f.patient, f)
    fr = [position.vertebra_fractions(f.marks) for f in first.values()]
    sd, gap = position.fraction_spread(fr)
    out.append(_fig("vertebra position fraction SD between patients", sd, ">= 0.02", lambda v: v >= 0.02,
                    f"median over levels; adjacent levels {gap:.3f} apart", 4))
    acc, n = position.level_rule_lopo(fr)
    out.append(_fig("position-only vertebral level rule (LOPO)", acc, "<= 0.40", lambda v: v <= 0.40,
                    f"{n} vertebrae, {len(fr)} patients"))
    if truth is None:
        out.append(Figure("position-only atlas look-up top-1, all lesions", "n/a", "<= 0.40", "n/a", "needs truth/"))
    else:
        acc, n = atlas_top1(facts, truth)
        out.append(_fig("position-only atlas look-up top-1, all lesions", acc, "<= 0.40", lambda v: v <= 0.40,
                        f"label maps of 10 other patients at the same scan position, n={n}"))
        pos, lab, grp = [], [], []
        for f in facts:
            for les in f.lesion_rows:
                if les.get("truth") is not None:
                    pos.append(les["position"])
                    lab.append(truth.loc[les["truth"], "location_id"])
                    grp.append(f.patient)
        out.append(_fig("position-only k-NN on lesions top-1 (LOPO)", leave_one_group_out_top1(pos, lab, grp),
                        "<= 0.40", lambda v: v <= 0.40, "the evaluation's position baseline, n=%d" % len(lab)))
    return out


def label_map_figures(facts: list[StudyFacts], truth: pd.DataFrame | None, drop: list[DropStudy]) -> list[Figure]:
    nodal = set()
    for d in drop:
        for name in d.names.values():
            if any(w in name.lower() for w in NODAL_CLASS):
                nodal.add(name)
    out = [Figure("label map nodal-station classes", str(len(nodal)), "0", "pass" if not nodal else "fail",
                  ", ".join(sorted(nodal)[:3]) + (" ..." if len(nodal) > 3 else ""))]
    rows = [les for f in facts for les in f.lesion_rows]
    out.append(_fig("lesions relabelled in the label map (islands)", _share([l["island"] for l in rows]), "0",
                    lambda v: v == 0, f"label under the mask absent around it; n={len(rows)}"))
    if truth is not None:
        exact = [segmentation.label_sites(l["label"]) == (truth.loc[l["truth"], "location_id"],)
                 for l in rows if l.get("truth") is not None]
        out.append(_fig("label under the mask names the true site alone", _share(exact), "info", lambda v: True,
                        "the leak the old map had: 100 %"))
        scored = [(l["sites"], truth.loc[l["truth"], "location_id"], truth.loc[l["truth"], "location_id"]
                   .startswith("ln_")) for l in rows if l.get("truth") is not None]
        out.append(_fig("derived site = true site (segmentation + position)",
                        _share([bool(s) and s[0] == t for s, t, _ in scored]), "info", lambda v: True,
                        f"n={len(scored)}; nodes "
                        f"{_fmt(_share([bool(s) and s[0] == t for s, t, n in scored if n]))}, others "
                        f"{_fmt(_share([bool(s) and s[0] == t for s, t, n in scored if not n]))}"))
        out.append(_fig("true site among the derived candidates", _share([t in s for s, t, _ in scored]), "info",
                        lambda v: True, "the report decides among several (liver segments, hip parts)"))
    return out



def report_figures(rows: list[ReportFacts], truth: pd.DataFrame | None, report_truth: pd.DataFrame | None
                   ) -> list[Figure]:
    cons = [reports.indication_consistent(r.text, r.tracer) for r in rows]
    out = [_fig("indication consistent with the disease", _share(cons), "1.00", lambda v: v >= 1.0,
                f"n={len(cons)}; {sum(c is None for c in cons)} without a recognisable indication")]
    match = []
    for r in rows:
        said = reports.stated_range(r.text)
        if said is not None and r.marks is not None:
            match.append(said == (position.scan_top(r.marks), position.scan_bottom(r.marks)))
    out.append(_fig("stated scan range matches the images", _share(match), "1.00", lambda v: v >= 1.0,
                    f"n={len(match)} ingested studies whose report states a range"))
    by_patient: dict[str, list[ReportFacts]] = defaultdict(list)  # a patient's studies in manifest order
    for r in rows:
        by_patient[r.patient].append(r)
    carried = []
    if truth is not None and report_truth is not None:
        locs = truth.groupby("study_key")["location_id"].apply(set).to_dict()
        for studies in by_patient.values():
            for base, follow in zip(studies, studies[1:]):
                for _, f in report_truth[report_truth["study_key"] == follow.key].iterrows():
                    carried.append(f["finding__location_id"] in locs.get(base.key, set()) and
                                   reports.has_comparison(f.get("finding__span__text") or ""))
        note = "truth: statements at a baseline site, with comparison wording"
    else:
        for studies in by_patient.values():
            for follow in studies[1:]:
                carried += [reports.has_comparison(x) for x in follow.text.split(".") if "suv" in x.lower()]
        note = "sentences with an SUV in follow-up reports"
    out.append(_fig("follow-up lesions carried over with comparison", _share(carried), ">= 0.80",
                    lambda v: v >= 0.8, f"{note}; n={len(carried)}"))
    if truth is not None and report_truth is not None:
        graded = []
        for _, f in report_truth.iterrows():
            g = truth[(truth["study_key"] == f["study_key"]) & truth["instance"].isin(list(f["instances"]))]
            if len(g) and f["finding__pet_finding__grade"]:
                graded.append(grade_for_suv(float(g["suv_max"].max())).value == f["finding__pet_finding__grade"])
        out.append(_fig("stated uptake grade fits the hottest lesion", _share(graded), "1.00", lambda v: v >= 1.0,
                        f"n={len(graded)} statements"))
        with_lesions, stated = set(truth["study_key"]), set(report_truth["study_key"])
        negative = [r.key not in stated for r in rows if r.key not in with_lesions]
        out.append(_fig("lesion-free studies with a negative report", _share(negative), "1.00", lambda v: v >= 1.0,
                        f"n={len(negative)}; no finding statement"))
    return out


def realism_table(settings: Settings) -> list[Figure]:
    """Every figure, in the issue's order."""
    drop = read_drop(settings)
    facts = collect(settings, drop)
    truth = truth_table(settings, "lesions.parquet")
    report_truth = truth_table(settings, "report_findings.parquet")
    if truth is not None:
        match_truth(facts, truth)
    return [Figure("studies measured", str(len(facts)), "", "n/a",
                   f"{len({f.patient for f in facts})} patients; truth {'present' if truth is not None else 'absent'}"),
            *image_figures(facts), *lesion_figures(facts, truth, settings, drop), *position_figures(facts, truth),
            *label_map_figures(facts, truth, drop),
            *report_figures(report_rows(drop, facts), truth, report_truth)]


def format_table(figures: list[Figure]) -> str:
    w = max(len(f.figure) for f in figures)
    lines = [f"{'figure':<{w}}  {'value':>8}  {'target':<22}  {'status':<6}  note", "-" * (w + 60)]
    lines += [f"{f.figure:<{w}}  {f.value:>8}  {f.target:<22}  {f.status:<6}  {f.note}" for f in figures]
    return "\n".join(lines)
