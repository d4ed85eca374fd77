"""The learning rate's schedule over a run's steps: warm-up, then cosine decay."""

from __future__ import annotations

import math
from dataclasses import dataclass

WARMUP_START = 0.001
"""The first step's rate, as a fraction of `lr`."""


@dataclass(frozen=True)
class WarmupCosine:
    """The rate's factor at a step: a linear rise from `WARMUP_START` over `warmup` steps,
    then a cosine decay to zero at step `total`. A function of the step alone, so that a
    resumed run that was given more epochs follows the longer schedule from where it is."""

    warmup: int
    total: int

    def __call__(self, step: int) -> float:
        if step < self.warmup:
            return WARMUP_START + (1.0 - WARMUP_START) * step / self.warmup
        done = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
        return 0.5 * (1.0 + math.cos(math.pi * done))
