"""The trivial baseline every report sets the captioner against: the most frequent training caption of a lesion's
(predicted) location and tracer."""

from __future__ import annotations

from collections import Counter

import pandas as pd


def location_baseline(train: pd.DataFrame, locations: list[str], tracers: list[str] | None = None) -> list[str]:
    """The trivial baseline: for each (predicted) location, the most frequent training caption of that location;
    a location never seen in training gets the most frequent training caption overall. With ``tracers`` (the
    study's, a header fact the captioner is given too) the most frequent caption of that location and tracer,
    falling back to the location's, then the tracer's. Ties are broken alphabetically (deterministic)."""
    def most_common(captions) -> str:
        counts = Counter(captions)
        return min(counts, key=lambda c: (-counts[c], c))

    overall = most_common(train["caption"])
    per_location = {loc: most_common(g["caption"]) for loc, g in train.groupby("location_id")}
    if tracers is None:
        return [per_location.get(loc, overall) for loc in locations]
    if len(tracers) != len(locations):
        raise ValueError(f"{len(tracers)} tracers for {len(locations)} locations")
    tracer_of = train["tracer"].map(lambda t: str(getattr(t, "value", t)))
    per_pair = {key: most_common(g["caption"]) for key, g in train.groupby([train["location_id"], tracer_of])}
    per_tracer = {t: most_common(g["caption"]) for t, g in train.groupby(tracer_of)}
    out = []
    for loc, tracer in zip(locations, tracers):
        tracer = str(getattr(tracer, "value", tracer))
        out.append(per_pair.get((loc, tracer)) or per_location.get(loc) or per_tracer.get(tracer, overall))
    return out
