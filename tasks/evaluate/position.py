"""The position-only baseline: a lesion's location guessed from where it lies in the scan, with no image.

Each lesion is reduced to its scan position (``Geometry.scan_position`` of its centroid: x, y, z each in
[0, 1] across the scanned box; z carries most of the weight: a vertebra's level, a lobe, a station) and
gets the labels of its ``k`` nearest training lesions, ranked by summed inverse-distance votes. If the cohort
gives the location away through position alone (every scan vertex to toes, anatomy scaling rigidly with
height), this baseline scores close to the localizer; the localizer's gain over it is what the image adds.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

POSITION_WEIGHTS = (1.0, 0.5, 2.0)  # x, y, z: z varies most with anatomy, y least (table height)
POSITION_K = 5


@dataclass(frozen=True)
class PositionBaseline:
    """k nearest training lesions on the weighted scan position; ``predict`` ranks labels by vote."""

    positions: np.ndarray  # (n, 3) training scan positions in [0, 1]
    labels: tuple[str, ...]  # (n,) training location ids
    k: int = POSITION_K

    @classmethod
    def fit(cls, positions, labels, k: int = POSITION_K) -> PositionBaseline:
        pos = np.asarray(positions, dtype=float).reshape(-1, 3)
        if len(pos) != len(labels):
            raise ValueError(f"{len(pos)} positions but {len(labels)} labels")
        return cls(pos, tuple(labels), k)

    def predict(self, positions, top: int = 5) -> list[list[str]]:
        """Ranked location ids (up to ``top``) per query position; [] when there are no training lesions."""
        q = np.asarray(positions, dtype=float).reshape(-1, 3)
        if len(self.labels) == 0:
            return [[] for _ in range(len(q))]
        w = np.asarray(POSITION_WEIGHTS)
        d = np.sqrt((((q[:, None, :] - self.positions[None, :, :]) * w) ** 2).sum(-1))  # (queries, train)
        k = min(self.k, len(self.labels))
        nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
        out = []
        for i, idx in enumerate(nearest):
            votes: dict[str, float] = defaultdict(float)
            for j in idx:
                votes[self.labels[j]] += 1.0 / (d[i, j] + 1e-3)
            out.append(sorted(votes, key=lambda lab: (-votes[lab], lab))[:top])
        return out


def leave_one_group_out_top1(positions, labels, groups, k: int = POSITION_K) -> float:
    """Top-1 accuracy of the position baseline, each group (patient) predicted from all the others."""
    pos = np.asarray(positions, dtype=float).reshape(-1, 3)
    labels, groups = list(labels), list(groups)
    if not labels:
        return float("nan")
    hits = 0
    for g in dict.fromkeys(groups):
        test = [i for i, x in enumerate(groups) if x == g]
        train = [i for i, x in enumerate(groups) if x != g]
        model = PositionBaseline.fit(pos[train], [labels[i] for i in train], k)
        pred = model.predict(pos[test], top=1)
        hits += sum(bool(p) and p[0] == labels[i] for p, i in zip(pred, test))
    return hits / len(labels)


def scan_positions(settings, samples) -> list[tuple[float, float, float] | None]:
    """Scan position of each patch sample (``centre_mm`` in its stored study's scanned box), or None when the
    study is not in the store."""
    from data_contracts import volume_store as store

    geoms: dict[str, object] = {}
    out = []
    for sid, centre in zip(samples["study_id"], samples["centre_mm"]):
        if sid not in geoms:
            try:
                geoms[sid] = store.open_study(settings.store_url, sid).geometry
            except KeyError:
                geoms[sid] = None
        g = geoms[sid]
        out.append(tuple(float(v) for v in g.scan_position(tuple(centre))) if g is not None else None)
    return out


def position_baseline_top(settings, sample_ids, top: int = 5) -> list[list[str]] | None:
    """The position-only baseline's ranked locations for ``sample_ids``, trained on the training split's
    patch samples; None when there are no training samples or positions."""
    from data_contracts.patch_store import read_patch_samples

    samples = read_patch_samples(settings, with_split=True)
    if len(samples) == 0 or "centre_mm" not in samples:
        return None
    samples = samples.assign(position=scan_positions(settings, samples))
    train = samples[(samples["split"] == "train") & samples["position"].notna()]
    if len(train) == 0:
        return None
    model = PositionBaseline.fit(list(train["position"]), list(train["location_id"]))
    by_id = dict(zip(samples["sample_id"], samples["position"]))
    pos = [by_id.get(s) for s in sample_ids]
    pred = model.predict([p if p is not None else (0.5, 0.5, 0.5) for p in pos], top=top)
    return [p if q is not None else [] for p, q in zip(pred, pos)]
