"""Hand-written scoping against medSpaCy's ConText + sectionizer on the real-prose dev set (issue 13).

    python benchmarks/prose_scoping.py [--excerpts FILE]

Both runs use the rules extractor's mention finding; they differ only in what decides negation, uncertainty
and history: the extractor's own cues (``scoping="rules"``) or medSpaCy (``scoping="medspacy"``,
``tasks.structure.context``). Scored with ``benchmarks/real_prose.py`` (tracer from the annotation).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.real_prose import (  # noqa: E402
    Scores,
    _tracer,
    hierarchy_is_within,
    predicted_view,
    score_one,
    table,
)
from benchmarks.real_prose_format import DEFAULT_EXCERPTS, load_excerpts  # noqa: E402
from tasks.structure import phi_scrubber as phi  # noqa: E402
from tasks.structure.rules import extract  # noqa: E402


def run(excerpts, scoping: str) -> Scores:
    is_within = hierarchy_is_within()
    scores = Scores()
    for ex in excerpts:
        scores.texts += 1
        report = extract(phi.scrub(ex.text), _tracer(ex.tracer), scoping=scoping)
        score_one(ex, [predicted_view(f, ex.text) for f in report.findings], scores, is_within)
    return scores


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--excerpts", type=Path, default=DEFAULT_EXCERPTS)
    args = p.parse_args(argv)
    excerpts = load_excerpts(args.excerpts)
    rows = {f"scoping={s}": run(excerpts, s).row() for s in ("rules", "medspacy")}
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
