"""The tests' clock: seconds that pass only when the test says."""

from __future__ import annotations


class Clock:
    """A monotonic clock for a stage's `clock=`: reads `now`, which only the test moves
    (`advance`, or set `now`)."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
