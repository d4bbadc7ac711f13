"""The generator's own acceptance figures (issue 14), measured on its ground truth before any file is written.

``benchmarks/realism.py`` measures a raw drop as a hospital would deliver it; this script measures what only
the generator knows (internal tissue labels, the scan's landmarks), so a change to the phantom, the scanner
physics or the population can be checked in minutes:

    python -m benchmarks.cohort_figures --patients 20 --scale demo --seed 11

It prints one table (figure, value, target, ok) and, with ``--json``, writes the numbers.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from scipy import ndimage, stats

from data_contracts import anatomy, taxonomy
from data_contracts.findings import Tracer
from data_contracts.settings import Settings, SynthSettings
from data_contracts.taxonomy import System
from tasks.synth import cohort as co
from tasks.synth import phantom as ph

ATLAS_NEIGHBOURS = 10


def _ids(names) -> np.ndarray:
    lab = ph.internal_labels()
    return np.array([lab[n] for n in names])


LIVER = _ids([f"liver_segment_{i}" for i in range(1, 9)])
LUNG = np.flatnonzero(np.isin(ph.anatomy_lut(), [anatomy.label_of()[s] for s in anatomy.structures()
                                                 if s.startswith(("lung_", "pleura_"))]))
KIDNEY = _ids(["kidney_left", "kidney_right"])
SALIVARY = _ids(["parotid_left", "parotid_right", "submandibular_left", "submandibular_right"])
AORTA = _ids(["aorta"])
FAT = _ids(["body_fat"])
ORGANS = np.concatenate([LIVER, _ids(["spleen"]), KIDNEY])
VERTEBRAE = {lv: ph.internal_labels()[f"vertebra_{lv}"] for lv in ph.SPINE_LEVELS}


def _eroded(mask: np.ndarray, it: int = 1) -> np.ndarray:
    st = np.zeros((3, 3, 3), bool)
    st[1] = ndimage.generate_binary_structure(2, 1)  # in-plane erosion (thick demo slices)
    return ndimage.binary_erosion(mask, st, iterations=it)


def _noise_figures(hu: np.ndarray, mask: np.ndarray) -> tuple[float, float, float]:
    """(SD, neighbour correlation, SD(5x5 mean)/SD) of the residual inside a region."""
    r = np.where(mask, hu - hu[mask].mean(), 0.0).astype(np.float32)
    pair = mask[:, :, 1:] & mask[:, :, :-1]
    a, b = r[:, :, 1:][pair], r[:, :, :-1][pair]
    corr = float(np.corrcoef(a, b)[0, 1]) if a.size > 10 else float("nan")
    full = ndimage.uniform_filter(mask.astype(np.float32), (1, 5, 5)) > 0.999
    m5 = ndimage.uniform_filter(r, (1, 5, 5))
    sd = float(r[mask].std())
    ratio = float(m5[full].std() / sd) if full.sum() > 10 else float("nan")
    return sd, corr, ratio


def _in_between(hu: np.ndarray, inside: np.ndarray, outside: np.ndarray) -> float:
    """Share of boundary voxels (either side of an inside/outside edge along x or y) whose HU lies between
    10 % and 90 % of the way from their own tissue's mean to the other's."""
    core_in, core_out = _eroded(inside, 2), _eroded(outside, 2)
    if core_in.sum() < 10 or core_out.sum() < 10:
        return float("nan")
    m_in, m_out = float(hu[core_in].mean()), float(hu[core_out].mean())
    shares = []
    for own, other, m_own, m_oth in ((inside, outside, m_in, m_out), (outside, inside, m_out, m_in)):
        edge = np.zeros_like(own)
        for ax in (1, 2):
            edge |= own & (np.roll(other, 1, ax) | np.roll(other, -1, ax))
        f = (hu[edge] - m_own) / (m_oth - m_own)
        shares.append(((f > 0.1) & (f < 0.9)).mean())
    return float(np.mean(shares))


def _box(mask: np.ndarray, pad: int = 3) -> tuple[slice, ...]:
    """The bounding box of a mask, padded (the whole array if the mask is empty)."""
    if not mask.any():
        return tuple(slice(0, n) for n in mask.shape)
    out = []
    for ax in range(mask.ndim):
        idx = np.flatnonzero(mask.any(axis=tuple(a for a in range(mask.ndim) if a != ax)))
        out.append(slice(max(int(idx[0]) - pad, 0), min(int(idx[-1]) + pad + 1, mask.shape[ax])))
    return tuple(out)


def measure_study(g: co.Generated, plan: co.StudyPlan) -> dict:
    s = g.study
    lab, labp = g.labels_ct, g.labels_pet
    ct = s.ct.array
    vox_ml = float(np.prod(g.ct_grid.spacing)) / 1000.0
    liver_all = np.isin(lab, LIVER)
    b = _box(liver_all)
    hu, liver = ct[b].astype(np.float32), liver_all[b]
    liver_core = _eroded(liver, 2)
    sd, corr, ratio = _noise_figures(hu, liver_core)
    liver_hu = float(hu[liver_core].mean())
    organ = _in_between(hu, np.isin(lab[b], ORGANS), np.isin(lab[b], FAT))
    # skin: in-plane edges, on at most 24 slices spread over the scan
    ks = np.unique(np.linspace(0, lab.shape[0] - 1, min(24, lab.shape[0])).astype(int))
    sl = lab[ks]
    body = (sl > 0) & (sl != ph.internal_labels()["table"])
    skin = _in_between(ct[ks].astype(np.float32), body, sl == 0)
    vert_all = np.isin(lab, list(VERTEBRAE.values()))
    b = _box(vert_all)
    core = ndimage.binary_erosion(_eroded(vert_all[b], 2))  # 2 in-plane, 1 in z
    cancellous = float(np.median(ct[b][core])) if core.any() else float("nan")
    # PET
    pet = s.pet.array
    liver_p = _eroded(np.isin(labp, LIVER), 2)
    aorta_p = _eroded(np.isin(labp, AORTA), 1)
    kid = ndimage.binary_dilation(np.isin(labp, KIDNEY))
    sal = np.isin(labp, SALIVARY)
    lac = ndimage.binary_dilation(labp == ph.internal_labels()["lacrimal"], iterations=1)
    # scan position of each vertebra (fraction of the scan from its foot end)
    z = g.ct_grid.axis(2)
    z0, z1 = z[0], z[-1]
    zc = {}
    counts = np.array([np.bincount(lab[k].ravel(), minlength=ph.n_labels()) for k in range(lab.shape[0])])
    for lv, i in VERTEBRAE.items():
        c = counts[:, i]
        if c.sum() > 0 and c[0] == 0 and c[-1] == 0:  # wholly inside the scan
            zc[lv] = float((z * c).sum() / c.sum() - z0) / (z1 - z0)
    lesions = [dict(loc=t.location_id, size=t.size_mm, suv=t.suv_max, finding=t.ct_finding.value,
                    system=taxonomy.get(t.location_id).system.value,
                    rel=((t.center_mm[0]), (t.center_mm[1]), (t.center_mm[2] - z0) / (z1 - z0)))
               for t in s.truth]
    # coarse public label map for the atlas look-up (about 8 mm voxels)
    step = [max(1, int(round(8.0 / sp))) for sp in g.ct_grid.spacing[::-1]]
    coarse = s.anatomy.array[::step[0], ::step[1], ::step[2]]
    return dict(
        key=s.study_key, patient=plan.index, tracer=s.tracer.value, age=plan.age, girth=plan.patient.girth, scan_range=s.scan_range,
        arms_up=s.arms_up, n_lesions=len(s.truth), mimics=list(s.mimics),
        liver_hu=liver_hu, liver_sd=sd, noise_corr=corr, noise_ratio=ratio, pv_skin=skin,
        pv_organ=organ, cancellous_hu=cancellous, lung_l=float(np.isin(lab, LUNG).sum() * vox_ml / 1000.0),
        liver_suv=float(pet[liver_p].mean()), liver_cv=float(pet[liver_p].std() / pet[liver_p].mean()),
        blood_suv=float(pet[aorta_p].mean()) if aorta_p.any() else float("nan"),
        kidney_suvmax=float(pet[kid].max()) if kid.any() else float("nan"),
        salivary_suv=float(pet[sal].mean()) if sal.any() else float("nan"),
        lacrimal_suvmax=float(pet[lac].max()) if lac.any() else float("nan"),
        vertebra_frac=zc, lesions=lesions, coarse=coarse, coarse_origin=g.ct_grid.origin,
        coarse_spacing=tuple(sp * st for sp, st in zip(g.ct_grid.spacing, step[::-1])), z0=float(z0),
        z1=float(z1))


def _vertebral_rule(rows: list[dict]) -> tuple[float, float]:
    """(median between-patient SD of a level's scan fraction, leave-one-patient-out accuracy of the rule
    'the level whose mean fraction is nearest')."""
    by_level = defaultdict(list)
    for r in rows:
        for lv, f in r["vertebra_frac"].items():
            by_level[lv].append((r["patient"], f))
    sds = [np.std([f for _, f in v]) for v in by_level.values() if len(v) >= 3]
    hits = total = 0
    for r in rows:
        i = r["patient"]  # leave the patient out (a follow-up shares the baseline's anatomy)
        means = {lv: np.mean([f for j, f in v if j != i]) for lv, v in by_level.items() if any(j != i for j, _ in v)}
        names, m = list(means), np.array(list(means.values()))
        for lv, f in r["vertebra_frac"].items():
            hits += names[int(np.argmin(np.abs(m - f)))] == lv
            total += 1
    return float(np.median(sds)), hits / max(total, 1)


def _label_at(r: dict, x: float, y: float, f: float) -> int | None:
    """The public label at relative position (x, y mm; f = scan fraction) of a study's coarse label map."""
    zz = r["z0"] + f * (r["z1"] - r["z0"])
    idx = [int(round((c - o) / sp)) for c, o, sp in zip((x, y, zz), r["coarse_origin"], r["coarse_spacing"])]
    arr = r["coarse"]
    if all(0 <= idx[a] < arr.shape[2 - a] for a in range(3)):
        return int(arr[idx[2], idx[1], idx[0]])
    return None


def _atlas(rows: list[dict]) -> tuple[float, float, int]:
    """Position-only look-ups over all lesions, leave one patient out: (nearest training lesion's location,
    the label map's location at the same relative position in 10 other patients' studies (vote), n lesions)."""
    loc_of = anatomy.label_location()
    pts, locs, owner, row = [], [], [], []
    for i, r in enumerate(rows):
        for les_ in r["lesions"]:
            pts.append(les_["rel"])
            locs.append(les_["loc"])
            owner.append(r["patient"])
            row.append(i)
    if not pts:
        return float("nan"), float("nan"), 0
    P = np.array(pts, float)
    scale = np.array([1.0, 1.0, 1000.0])  # the scan fraction weighs as about a metre
    owner = np.array(owner)
    nn_hits = atlas_hits = 0
    for k in range(len(P)):
        other = owner != owner[k]
        if other.any():
            d = np.linalg.norm((P[other] - P[k]) * scale, axis=1)
            nn_hits += np.array(locs, object)[other][int(np.argmin(d))] == locs[k]
        votes = Counter()
        for j in [j for j in range(len(rows)) if rows[j]["patient"] != owner[k]][:ATLAS_NEIGHBOURS]:
            lab = _label_at(rows[j], *P[k])
            if lab is not None:
                votes[loc_of.get(lab, "none")] += 1
        if votes:
            atlas_hits += votes.most_common(1)[0][0] == locs[k]
    own = np.mean([loc_of.get(_label_at(rows[row[k]], *P[k]), "none") == locs[k] for k in range(len(P))])
    print(f"  (check: the study's own label map at the lesion's position names its location for {own:.0%})")
    return nn_hits / len(P), atlas_hits / len(P), len(P)


def summarise(rows: list[dict]) -> list[tuple[str, str, str, bool]]:
    def med(key, rs=rows):
        v = [r[key] for r in rs if np.isfinite(r[key])]
        return float(np.median(v)) if v else float("nan"), (float(np.min(v)), float(np.max(v))) if v else (0, 0)

    fdg = [r for r in rows if r["tracer"] == Tracer.fdg.value]
    psma = [r for r in rows if r["tracer"] == Tracer.psma.value]
    out = []

    def add(name, value, target, ok):
        out.append((name, value, target, bool(ok)))

    m, (lo, hi) = med("liver_hu")
    add("liver HU (median, range)", f"{m:.1f} ({lo:.0f}..{hi:.0f})", "55 +/- 8", 47 <= m <= 63)
    m, (lo, hi) = med("cancellous_hu")
    rho = stats.spearmanr([r["age"] for r in rows], [r["cancellous_hu"] for r in rows])[0]
    add("vertebral cancellous HU", f"{m:.0f} ({lo:.0f}..{hi:.0f}); Spearman(age) {rho:.2f}",
        "180 +/- 60, falling with age", 120 <= m <= 240 and rho < 0)
    m, (lo, hi) = med("liver_sd")
    g = np.array([r["girth"] for r in rows])
    sds = np.array([r["liver_sd"] for r in rows])
    thin, obese = sds[g <= np.quantile(g, 1 / 3)].mean(), sds[g >= np.quantile(g, 2 / 3)].mean()
    add("liver CT noise SD (HU)", f"{m:.1f} ({lo:.1f}..{hi:.1f}); obese/thin tertile {obese / thin:.2f}x",
        "15 +/- 5, >= 1.3x", 10 <= m <= 20 and obese / thin >= 1.3)
    m, _ = med("noise_corr")
    add("neighbour noise correlation", f"{m:.2f}", "0.3-0.7", 0.3 <= m <= 0.7)
    m, _ = med("noise_ratio")
    add("SD(5x5 mean)/SD(voxel)", f"{m:.2f}", ">= 0.35", m >= 0.35)
    ms, _ = med("pv_skin")
    mo, _ = med("pv_organ")
    add("boundary voxels in-between (skin; organ)", f"{ms:.2f}; {mo:.2f}", ">= 0.30", ms >= 0.3 and mo >= 0.3)
    m, (lo, hi) = med("lung_l")
    add("lung volume (L)", f"{m:.2f} ({lo:.2f}..{hi:.2f})", "4-6", 4 <= m <= 6)
    if fdg:
        m, (lo, hi) = med("liver_suv", fdg)
        add("FDG liver SUVmean", f"{m:.2f} ({lo:.2f}..{hi:.2f})", "2.0 +/- 0.4", 1.6 <= m <= 2.4)
        m, (lo, hi) = med("blood_suv", fdg)
        add("FDG blood pool SUVmean", f"{m:.2f} ({lo:.2f}..{hi:.2f})", "1.7 +/- 0.3", 1.4 <= m <= 2.0)
    m, (lo, hi) = med("liver_cv")
    add("liver PET CV", f"{m:.3f} ({lo:.3f}..{hi:.3f})", "0.10-0.15", 0.10 <= m <= 0.15)
    if psma:
        m, (lo, hi) = med("kidney_suvmax", psma)
        add("PSMA kidney SUVmax (median)", f"{m:.1f} ({lo:.0f}..{hi:.0f})", ">= 35", m >= 35)
        ms, _ = med("salivary_suv", psma)
        ml, _ = med("lacrimal_suvmax", psma)
        add("PSMA salivary SUVmean; lacrimal SUVmax", f"{ms:.1f}; {ml:.1f}", "present (> 2x background)",
            ms > 4 and ml > 3)
    les = [(le, r) for r in rows for le in r["lesions"]]
    if les:
        rho = stats.spearmanr([le["size"] for le, _ in les], [le["suv"] for le, _ in les])[0]
        add("Spearman(lesion size, SUVmax)", f"{rho:.2f} (n={len(les)})", ">= 0.3", rho >= 0.3)
        ratios = [le["suv"] / r["liver_suv"] for le, r in les if r["tracer"] == Tracer.fdg.value]
        if ratios:
            m = float(np.median(ratios))
            add("median FDG lesion SUVmax / liver SUVmean", f"{m:.2f} (n={len(ratios)})", "<= 5", m <= 5)
        nodes = [le["size"] for le, r in les
                 if r["tracer"] == Tracer.psma.value and le["system"] == System.lymph_node.value]
        if nodes:
            f = float(np.mean(np.array(nodes) < 10))
            add("PSMA nodal lesions < 10 mm", f"{f:.2f} (n={len(nodes)})", ">= 0.5", f >= 0.5)
    free = np.mean([r["n_lesions"] == 0 for r in rows])
    mimic = np.mean([r["n_lesions"] == 0 and bool(r["mimics"]) for r in rows])
    counts = [r["n_lesions"] for r in rows]
    add("studies lesion-free or benign-only", f"{free:.2f} (benign mimics only {mimic:.2f}); lesions "
        f"{min(counts)}..{max(counts)}", ">= 0.20", free >= 0.2)
    if fdg:
        f = np.mean([r["scan_range"].endswith("mid-thigh") for r in fdg])
        add("FDG scans skull base/vertex to mid-thigh", f"{f:.2f} (n={len(fdg)})", ">= 0.70", f >= 0.7)
    f = np.mean([r["arms_up"] for r in rows])
    add("arms up", f"{f:.2f}", ">= 0.60", f >= 0.6)
    sd, acc = _vertebral_rule(rows)
    add("vertebra scan-fraction SD between patients", f"{sd:.3f}", ">= 0.02", sd >= 0.02)
    add("position-only vertebral level rule", f"{acc:.2f}", "<= 0.40", acc <= 0.4)
    nn, atlas, n = _atlas(rows)
    add("position-only nearest training lesion, top-1", f"{nn:.2f} (n={n})", "<= 0.40", nn <= 0.4)
    add("position-only atlas label look-up, top-1", f"{atlas:.2f} (n={n})", "<= 0.40", atlas <= 0.4)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=20)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--scale", default="demo")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    plans = co.plan_cohort(args.patients, args.seed, args.scale, Settings(synth=SynthSettings()))
    rows, times = [], []
    try:
        for plan in plans:
            t0 = time.perf_counter()
            g = co.generate_study(plan)
            times.append(time.perf_counter() - t0)
            rows.append(measure_study(g, plan))
            del g
            print(f"  {len(rows)}/{len(plans)} {plan.scale} {times[-1]:.1f} s", flush=True)
    except KeyboardInterrupt:  # Ctrl-C: the table of the studies measured so far
        print(f"  interrupted: {len(rows)} of {len(plans)} studies measured")
    table = summarise(rows)
    patients = len({r["patient"] for r in rows})
    print(f"\n{patients} patients, {len(rows)} studies, scale {args.scale}, seed {args.seed}; "
          f"generation {np.mean(times):.2f} s/study (mean)")
    w = max(len(r[0]) for r in table)
    for name, value, target, ok in table:
        print(f"{name:<{w}}  {value:<48} {target:<28} {'ok' if ok else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps([dict(figure=a, value=b, target=c, ok=d) for a, b, c, d in table], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
