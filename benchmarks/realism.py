"""Realism check of a raw drop folder and its ingested store: every acceptance figure of issue 14, one table.

    python benchmarks/realism.py --raw DROP --home HOME [--csv OUT.csv]
    petcap realism --raw DROP [--home HOME]                      (the same, as a command)

``--home`` is the working folder ingest wrote (``volumes.zarr`` + ``tables/``); ``--store`` overrides the
volume store. Works unchanged on a real hospital drop; figures that need the synthetic truth read n/a.
Definitions of each figure: ``tasks/realism/{images,position,reports,table}.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv: list[str] | None = None) -> int:
    from data_contracts.settings import Settings
    from tasks.realism.table import format_table, realism_table

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--raw", required=True, help="raw drop folder (manifest.csv, studies/, reports/, truth/)")
    p.add_argument("--home", help="working folder of the ingest (default: $PETCAP_HOME or ./var)")
    p.add_argument("--store", help="volume store URL (default: <home>/volumes.zarr)")
    p.add_argument("--csv", help="also write the table as CSV here")
    args = p.parse_args(argv)
    overrides = {k: v for k, v in (("home", args.home), ("raw_dir", args.raw), ("store_url", args.store)) if v}
    figures = realism_table(Settings(**overrides))
    print(format_table(figures))
    if args.csv:
        import pandas as pd

        pd.DataFrame([f.__dict__ for f in figures]).to_csv(args.csv, index=False)
    return 0 if all(f.status != "fail" for f in figures) else 1


if __name__ == "__main__":
    raise SystemExit(main())
