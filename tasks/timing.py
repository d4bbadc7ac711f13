"""Wall-clock seconds per named stage of a long run (the demo chain, the benchmark)."""

from __future__ import annotations

import time


class Laps:
    """``lap(name)`` records the seconds since the previous lap (or since construction) under ``name``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._t = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._t, 1)
        self._t = now
