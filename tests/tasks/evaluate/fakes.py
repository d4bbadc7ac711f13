"""Hand-made prediction tables (the shape ``models.training.captioner.predict`` returns) for evaluation tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from data_contracts import taxonomy
from data_contracts.caption import caption_text
from data_contracts.findings import (
    CTFinding,
    Tracer,
    UptakeGrade,
    Vendor,
    ct_findings_for,
)
from data_contracts.records import PetFinding
from tasks.evaluate.run import METRICS, ConfigEvaluation, EvaluationResult


def _other_side(loc_id: str) -> str:
    return loc_id[:-1] + ("l" if loc_id.endswith("_r") else "r") if loc_id[-2:] in ("_r", "_l") else "spleen"


def make_lesions(n: int, seed: int = 0) -> pd.DataFrame:
    """n lesions spread over vendors and tracers with canonical reference captions."""
    rng = np.random.default_rng(seed)
    locs = taxonomy.locations()
    vendors, tracers = list(Vendor), list(Tracer)
    rows = []
    for i in range(n):
        loc = locs[int(rng.integers(len(locs)))]
        finding = ct_findings_for(loc.system)[int(rng.integers(len(ct_findings_for(loc.system))))]
        vendor, tracer = vendors[i % 3], tracers[(i // 3) % 2]
        pet = PetFinding(tracer=tracer, grade=list(UptakeGrade)[int(rng.integers(3))])
        rows.append({"sample_id": f"S{i:04d}-001", "patient_id": f"P{i:012x}", "study_id": f"S{i:012x}",
                     "vendor": vendor.value, "tracer": tracer.value, "location_id": loc.id,
                     "ct_finding": finding.value, "reference": caption_text(loc.id, finding, pet),
                     "_pet": pet, "row": i})
    return pd.DataFrame(rows)


def make_predictions(lesions: pd.DataFrame, p_loc: float, p_ct: float, seed: int,
                     vendor_p_loc: dict[str, float] | None = None) -> pd.DataFrame:
    """Generated captions that get the location right w.p. ``p_loc`` (else the other side / another organ)
    and the CT finding right w.p. ``p_ct``; top-5 with a confidence that tracks correctness."""
    rng = np.random.default_rng(seed)
    out = lesions.copy()
    gen, tops, confs = [], [], []
    for _, r in lesions.iterrows():
        p = (vendor_p_loc or {}).get(r["vendor"], p_loc)
        loc_ok, ct_ok = rng.random() < p, rng.random() < p_ct
        loc = r["location_id"] if loc_ok else _other_side(r["location_id"])
        system = taxonomy.get(loc).system
        finding = CTFinding(r["ct_finding"])
        if not ct_ok or finding not in ct_findings_for(system):
            options = [f for f in ct_findings_for(system) if f is not finding]
            finding = options[int(rng.integers(len(options)))]
        gen.append(caption_text(loc, finding, r["_pet"]))
        others = [l.id for l in taxonomy.locations()[:8] if l.id not in (loc, r["location_id"])]
        top = [loc, *others[:4]]
        c1 = float(rng.uniform(0.9, 1.0) if loc_ok else rng.uniform(0.3, 0.97))
        tops.append(top)
        confs.append([c1, *np.linspace((1 - c1) * 0.6, 0.0, 4)])
    out["generated"] = gen
    out["top_ids"], out["top_confidences"] = tops, confs
    out["window_level"], out["window_width"] = 40.0, 350.0
    return out.drop(columns=["_pet"])


CONFIG_QUALITY = {"LSTM": (0.45, 0.5), "Transformer": (0.55, 0.55), "X-Transformer": (0.6, 0.6), "B": (0.6, 0.6),
                  "B+W": (0.65, 0.75), "B+P": (0.75, 0.65), "B+W+P": (0.92, 0.9)}


def config_predictions(lesions: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The paper's seven configurations, quality rising roughly as in Tables 1 and 2."""
    return {name: make_predictions(lesions, pl, pc, seed=i) for i, (name, (pl, pc)) in enumerate(CONFIG_QUALITY.items())}


def fake_patches(rows: pd.DataFrame) -> np.ndarray:
    """(n, 3, 24, 24, 24): CT (HU) with a bone-like block, PET (SUV) with a hot sphere, its mask."""
    z, y, x = np.mgrid[:24, :24, :24]
    sphere = ((z - 12) ** 2 + (y - 12) ** 2 + (x - 13) ** 2) < 16
    ct = np.where(sphere, 300.0, 40.0) + np.where(x < 6, -800.0, 0.0)
    pet = 1.0 + 8.0 * sphere
    one = np.stack([ct, pet, sphere.astype(float)]).astype(np.float16)
    return np.repeat(one[None], len(rows), axis=0)


SEED_LESIONS = 40


def seed_evaluation(seed: int, shift: dict[str, float]) -> EvaluationResult:
    """Per-lesion BLEU-4 for configs B, B+P, B+W+P: a shared lesion difficulty plus each config's shift and a
    little seed noise; the corpus BLEU-4 is the per-lesion mean."""
    rng = np.random.default_rng(seed)
    base = np.linspace(0.2, 0.6, SEED_LESIONS)
    ids = [f"S{i:04d}-001" for i in range(SEED_LESIONS)]
    configs, overall = {}, {}
    for name, d in shift.items():
        per = pd.DataFrame({m: np.nan for m in METRICS}, index=pd.Index(ids, name="sample_id"))
        per["bleu4"] = np.clip(base + d + rng.normal(0, 0.01, SEED_LESIONS), 0, 1)
        per["localization"] = (np.arange(SEED_LESIONS) % 10 < 10 * (0.5 + d)).astype(float)
        per["vendor"], per["tracer"] = "GE", "FDG"
        o = {m: None for m in METRICS}
        o.update(bleu4=float(per["bleu4"].mean()), localization=float(per["localization"].mean()))
        configs[name] = ConfigEvaluation(name, o, pd.DataFrame(), pd.DataFrame(), per, {})
        overall[name] = o
    table = pd.DataFrame(overall).T[list(METRICS)].astype(float)
    table.index.name = "config"
    return EvaluationResult(configs, table, None, None, pd.DataFrame(), None)
