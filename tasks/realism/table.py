"""The realism check: every acceptance figure of issue 14 measured on a raw drop folder and its ingested store.

``realism_table(settings)`` reads the manifest, the reports, the anatomy sidecars (and DICOM headers for the
patient's age) from ``settings.raw``, and the volumes and tables from the store ingest wrote; it returns one
row per figure: (figure, value, target, status "pass" | "fail" | "n/a", note). It works unchanged on a real
hospital drop: figures that need the synthetic ground truth (``truth/``) read "n/a" when it is absent.

Optional synthetic truth it uses when present: ``truth/lesions.parquet`` (locations, sizes, ``benign`` if
the generator writes it), ``truth/report_findings.parquet`` (statement spans), ``truth/studies.parquet``
(per study: ``study_key`` and any of ``age``, ``visit``). The age otherwise comes from the DICOM header
(PatientAge) or the report header (birth date and exam date).
Patient IDs group studies and never leave this module; the table holds cohort-level numbers only.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import ndimage, stats

from data_contracts import segmentation, taxonomy
from data_contracts.findings import grade_for_suv
from data_contracts.settings import Settings
from data_contracts.tables import LESIONS, MANIFEST, STUDIES, ManifestRow
from tasks.evaluate.position import leave_one_group_out_top1
from data_contracts import volume_store as store
from data_contracts.geometry import Geometry
from tasks.ingest.pseudonym import study_pseudonym
from tasks.landmarks import Landmarks, canonical_class, canonical_lut
from tasks.realism import images, position, reports
from tasks.sites import study_lesion_sites

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


# ----------------------------------------------------------------------------------------------- inputs
def _names(raw_root: Path, row: ManifestRow) -> dict[str, str]:
    """The label map's sidecar names, or the segmentation class set when the drop has none."""
    if row.anatomy_path:
        side = raw_root / Path(row.anatomy_path).with_name(
            Path(row.anatomy_path).name.removesuffix(".gz").removesuffix(".nii") + ".json")
        if side.is_file():
            return json.loads(side.read_text(encoding="utf-8"))
    return segmentation.names_json()


def _dicom_age(raw_root: Path, row: ManifestRow) -> float | None:
    folder = raw_root / row.ct_path
    if not folder.is_dir():
        return None
    import pydicom

    first = next(iter(sorted(folder.glob("*.dcm"))), None)
    if first is None:
        return None
    age = str(pydicom.dcmread(first, stop_before_pixels=True, specific_tags=["PatientAge"]).get("PatientAge", ""))
    return float(age[:3]) if age[:3].isdigit() else None


def _site_of_name(name: str) -> str | None:
    """The one taxonomy site a label-map structure names, if it names exactly one."""
    from data_contracts import anatomy

    if name in anatomy.structure_location():
        return anatomy.structure_location()[name]
    cls = canonical_class(name)
    sites = segmentation.class_sites().get(cls, ()) if cls else ()
    return sites[0] if len(sites) == 1 else None


def _label_sites(names: dict[str, str]) -> dict[int, str]:
    return {int(k): site for k, v in names.items() if (site := _site_of_name(v)) is not None}


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


def native_pet_cv(raw_root: Path, row: ManifestRow, st: store.StoredStudy, anat: np.ndarray) -> float:
    """Liver PET CV on the PET's own grid (the store's PET is resampled onto the CT grid, which smooths the
    noise): the raw PET read as ingest reads it, the label map and lesions moved onto it (nearest neighbour)."""
    import SimpleITK as sitk

    from tasks.ingest.readers import read_pet

    try:
        series, _ = read_pet(raw_root / row.pet_path, row.pet_path)
    except Exception:  # noqa: BLE001 - a figure, not ingestion: unreadable means not measured
        return float("nan")
    pet_img = series.image

    def onto_pet(array: np.ndarray) -> np.ndarray:
        img = sitk.GetImageFromArray(array.astype(np.uint16))
        img.SetSpacing(st.geometry.spacing)
        img.SetOrigin(st.geometry.origin)
        img.SetDirection(st.geometry.direction)
        return sitk.GetArrayFromImage(sitk.Resample(img, pet_img, sitk.Transform(), sitk.sitkNearestNeighbor, 0))

    geom = Geometry.of(pet_img)
    roi = images.organ_roi(onto_pet(anat), onto_pet(np.asarray(st.lesions[...])), ("liver",), geom, erode_mm=8.0)
    if roi is None:
        return float("nan")
    suv = sitk.GetArrayViewFromImage(pet_img)[roi[0]][roi[1]].astype(np.float64)
    return float(suv.std() / suv.mean()) if suv.mean() > 0 else float("nan")


def _truth(settings: Settings, name: str) -> pd.DataFrame | None:
    path = settings.raw.truth / name
    return pd.read_parquet(path) if path.is_file() else None


@dataclass
class StudyFacts:
    key: str
    study_id: str
    patient: str  # raw patient ID: grouping only
    tracer: str
    weight: float
    age: float | None
    marks: Landmarks
    img: dict[str, float]
    lesion_rows: list[dict]  # per ingested lesion: size_mm, suv_max, position (3,), label, island, truth idx
    report: str | None
    atlas: object = None  # (zarr label array, raw label -> site or None, geometry shape) for atlas look-ups


def _lesion_facts(st: store.StoredStudy, anat: np.ndarray, inst: np.ndarray) -> list[dict]:
    out = []
    for les in st.lesion_records:
        z0, y0, x0, z1, y1, x1 = les.bbox
        pad = 2
        box = (slice(max(0, z0 - pad), z1 + pad), slice(max(0, y0 - pad), y1 + pad), slice(max(0, x0 - pad), x1 + pad))
        mask = inst[box] == les.instance
        under = anat[box][mask]
        nz = under[under > 0]
        label = int(np.bincount(nz).argmax()) if nz.size else 0
        shell = ndimage.binary_dilation(mask, iterations=2) & ~mask
        island = bool(label) and label not in set(np.unique(anat[box][shell]).tolist())
        out.append({"instance": les.instance, "size_mm": (6.0 * les.volume_ml * 1000.0 / math.pi) ** (1 / 3),
                    "suv_max": les.suv_max, "position": st.geometry.scan_position(les.centroid_mm),
                    "centroid": les.centroid_mm, "label": label, "island": island})
    return out


def collect(settings: Settings) -> list[StudyFacts]:
    raw_root = settings.raw.root
    manifest = MANIFEST.records(MANIFEST.read(settings.raw.manifest), source=str(settings.raw.manifest))
    studies = {s.study_id: s for s in STUDIES.records(STUDIES.read(settings.table_path("studies")))}
    ages = {}
    truth_studies = _truth(settings, "studies.parquet")
    if truth_studies is not None and "age" in truth_studies:
        ages = dict(zip(truth_studies["study_key"], truth_studies["age"].astype(float)))
    facts = []
    for row in manifest:
        sid = study_pseudonym(row.study_key, settings.pseudonym_key)
        if sid not in studies:
            continue
        st = store.open_study(settings.store_url, sid)
        if st.anatomy is None:
            continue
        lut = canonical_lut(_names(raw_root, row))
        raw_anat = np.asarray(st.anatomy[...])
        anat = lut[np.minimum(raw_anat, len(lut) - 1)]
        inst = np.asarray(st.lesions[...])
        marks = Landmarks.from_labels(anat, st.geometry)
        img = images.study_image_figures(np.asarray(st.ct[...]), st.pet_on(st.geometry), anat, inst, st.geometry,
                                         marks)
        report = None
        if row.report_path and (raw_root / row.report_path).is_file():
            report = (raw_root / row.report_path).read_text(encoding="utf-8", errors="replace")
        age = ages.get(row.study_key) or _dicom_age(raw_root, row) or (reports.age_at_exam(report) if report else None)
        img["liver_pet_cv_native"] = native_pet_cv(raw_root, row, st, anat)
        rows = _lesion_facts(st, anat, inst)
        derived = study_lesion_sites(anat, inst, st.geometry, st.lesion_records, marks)
        for r in rows:
            r["sites"] = derived.get(r["instance"], ())
        facts.append(StudyFacts(row.study_key, sid, row.patient_id, row.tracer.value,
                                studies[sid].acquisition.patient_weight_kg, age, marks, img, rows, report,
                                (st.anatomy, _label_sites(_names(raw_root, row)), st.geometry.shape)))
    return facts


def _match_truth(facts: list[StudyFacts], truth: pd.DataFrame) -> None:
    """Each ingested lesion gets the index of the truth lesion nearest its centroid (within half its size)."""
    by_key = {k: g for k, g in truth.groupby("study_key")}
    for f in facts:
        g = by_key.get(f.key)
        for les in f.lesion_rows:
            les["truth"] = None
            if g is None:
                continue
            d = [math.dist(c, les["centroid"]) for c in g["center_mm"]]
            j = int(np.argmin(d)) if d else -1
            if j >= 0 and d[j] <= max(5.0, float(g["size_mm"].iloc[j]) / 2):
                les["truth"] = g.index[j]


# ----------------------------------------------------------------------------------------------- figures
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
    noise = [(f.weight, f.img["liver_noise_hu"]) for f in facts if not math.isnan(f.img["liver_noise_hu"])]
    ratio = float("nan")
    if len(noise) >= 6:
        noise.sort()
        t = len(noise) // 3
        ratio = float(np.mean([n for _, n in noise[-t:]]) / np.mean([n for _, n in noise[:t]]))
    out.append(_fig("liver noise, heaviest / lightest tercile", ratio, ">= 1.3", lambda v: v >= 1.3, "by weight"))
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
        _fig("liver PET CV (PET's own grid)", _median(col("liver_pet_cv_native")), "0.10-0.15",
             lambda v: 0.10 <= v <= 0.15, _spread(col("liver_pet_cv_native"))),
        _fig("liver PET CV (stored, on the CT grid)", _median(col("liver_pet_cv")), "info", lambda v: True,
             _spread(col("liver_pet_cv")) + "; linear resampling smooths the noise"),
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


def lesion_figures(facts: list[StudyFacts], truth: pd.DataFrame | None, settings: Settings) -> list[Figure]:
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
    manifest = MANIFEST.read(settings.raw.manifest)
    free = 0
    lesions_tab = LESIONS.read(settings.table_path("lesions"))
    with_mask = set(lesions_tab["study_id"])
    if truth is not None:
        by_key = {k: g for k, g in truth.groupby("study_key")}
        for key in manifest["study_key"]:
            g = by_key.get(key)
            free += g is None or ("benign" in g and bool(g["benign"].all()))
        note = "truth: no lesion or benign only"
    else:
        keys = [study_pseudonym(k, settings.pseudonym_key) for k in manifest["study_key"]]
        free = sum(k not in with_mask for k in keys)
        note = "no lesion in the mask (or quarantined empty)"
    out.append(_fig("lesion-free / benign-only studies", free / max(1, len(manifest)), ">= 0.2",
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


def label_map_figures(facts: list[StudyFacts], truth: pd.DataFrame | None, settings: Settings) -> list[Figure]:
    raw_root = settings.raw.root
    manifest = MANIFEST.records(MANIFEST.read(settings.raw.manifest), source=str(settings.raw.manifest))
    nodal = set()
    for row in manifest:
        for name in _names(raw_root, row).values():
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


@dataclass(frozen=True)
class ReportFacts:
    """One manifest study's report, with its image landmarks when the study is in the store."""

    key: str
    patient: str  # raw patient ID: grouping only
    tracer: str
    text: str
    marks: Landmarks | None


def report_rows(settings: Settings, facts: list[StudyFacts]) -> list[ReportFacts]:
    """Every manifest study with a report (quarantined ones too: a lesion-free study has no mask to ingest)."""
    marks = {f.key: f.marks for f in facts}
    manifest = MANIFEST.records(MANIFEST.read(settings.raw.manifest), source=str(settings.raw.manifest))
    out = []
    for row in manifest:
        path = settings.raw.root / row.report_path if row.report_path else None
        if path is not None and path.is_file():
            out.append(ReportFacts(row.study_key, row.patient_id, row.tracer.value,
                                   path.read_text(encoding="utf-8", errors="replace"), marks.get(row.study_key)))
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


def realism_table(settings: Settings, facts: list[StudyFacts] | None = None) -> list[Figure]:
    """Every figure, in the issue's order."""
    facts = collect(settings) if facts is None else facts
    truth = _truth(settings, "lesions.parquet")
    report_truth = _truth(settings, "report_findings.parquet")
    if truth is not None:
        _match_truth(facts, truth)
    return [Figure("studies measured", str(len(facts)), "", "n/a",
                   f"{len({f.patient for f in facts})} patients; truth {'present' if truth is not None else 'absent'}"),
            *image_figures(facts), *lesion_figures(facts, truth, settings), *position_figures(facts, truth),
            *label_map_figures(facts, truth, settings),
            *report_figures(report_rows(settings, facts), truth, report_truth)]


def format_table(figures: list[Figure]) -> str:
    w = max(len(f.figure) for f in figures)
    lines = [f"{'figure':<{w}}  {'value':>8}  {'target':<22}  {'status':<6}  note", "-" * (w + 60)]
    lines += [f"{f.figure:<{w}}  {f.value:>8}  {f.target:<22}  {f.status:<6}  {f.note}" for f in figures]
    return "\n".join(lines)
