"""The suite's time budget: a case starts only where it can finish before the deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping


class Deadline:
    """Seconds left of `budget_s` from now, and how long a case of each kind is expected to
    take: `first_guess_s[kind]` until one has run, then the longest that ran."""

    def __init__(
        self,
        budget_s: float,
        first_guess_s: Mapping[str, float],
        clock: Callable[[], float] = time.monotonic,
        started: float | None = None,
    ) -> None:
        self.budget_s = budget_s
        self.clock = clock
        self.started = clock() if started is None else started
        """When the budget began, on `clock` (default: now)."""
        self.expected_s = dict(first_guess_s)
        self.seen: set[str] = set()

    def elapsed_s(self) -> float:
        """Seconds since the suite started."""
        return self.clock() - self.started

    def left_s(self) -> float:
        """Seconds left before the deadline (negative once past it)."""
        return self.budget_s - self.elapsed_s()

    def why_not(self, kind: str) -> str | None:
        """Why a case of `kind` must not start now; None where it fits in what is left."""
        expected, left = self.expected_s[kind], self.left_s()
        if expected <= left:
            return None
        return (
            f"time budget: a {kind} case is expected to take {expected:.0f} s, "
            f"{max(left, 0):.0f} s of {self.budget_s:.0f} s are left"
        )

    def ran(self, kind: str, seconds: float) -> None:
        """A case of `kind` took `seconds`: what the next of its kind is expected to take,
        at least (the first replaces the guess)."""
        known = self.expected_s[kind] if kind in self.seen else 0.0
        self.expected_s[kind] = max(known, seconds)
        self.seen.add(kind)
