import itertools

from tasks import timing
from tasks.timing import Laps


def test_each_lap_is_the_time_since_the_previous_one(monkeypatch):
    clock = itertools.chain([10.0, 12.5, 12.54, 20.0])
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(clock))
    laps = Laps()  # starts at 10.0
    laps.lap("a")
    laps.lap("b")
    laps.lap("c")
    assert laps.seconds == {"a": 2.5, "b": 0.0, "c": 7.5}
    assert list(laps.seconds) == ["a", "b", "c"]
