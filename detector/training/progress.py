"""Where a training run stands, saved in `last.pt` and read back by `--resume`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic import TypeAdapter

from detector.training.history import EpochRecord


class DamagedProgress(ValueError):
    """A saved training state whose optimiser or loss scale does not fit the run resuming it
    (a file edited, or another program's); the message says why."""


@dataclass
class Progress:
    """Where a run stands: saved in `last.pt` and read back by `--resume`."""

    epoch: int = 1
    """The epoch in progress (1-based; epoch 0 scores the starting weights)."""
    step: int = 0
    """Batches of that epoch already done."""
    losses: list[tuple[float, float]] = field(default_factory=list)
    """Those batches' (localisation, confidence) losses, and the `seconds` spent on them:
    the epoch's record, once a resumed run finishes it, is of all its batches."""
    seconds: float = 0.0
    best_map: float = -1.0
    best_epoch: int = 0
    stale_epochs: int = 0
    history: list[EpochRecord] = field(default_factory=list)
    optimizer: dict[str, Any] | None = None
    scaler: dict[str, Any] | None = None
    skipped_steps: int = 0
    """Batches whose step the loss scaler skipped (inf or NaN gradients in mixed precision):
    the schedule did not advance on them, and a resumed run takes it up where it was."""

    @property
    def least_epochs(self) -> int:
        """The fewest epochs a run resumed from here can take: those done, and the one it
        stopped in, whose first `step` batches are in the weights already and which resuming
        finishes from the next batch (a run cannot end before it)."""
        return self.epoch if self.step else self.epoch - 1

    def problem(self, steps_per_epoch: int) -> str | None:
        """Why a run of `steps_per_epoch` batches an epoch cannot take up from here (a file
        edited, another program's, or data that changed since), or None."""
        if self.epoch < 1:
            return f"progress.epoch is {self.epoch}; epochs count from 1"
        if not 0 <= self.step < steps_per_epoch:
            return (
                f"progress.step is {self.step}, but an epoch of this data is {steps_per_epoch} "
                f"batch(es): did the data change?"
            )
        if len(self.losses) > self.step:  # fewer: a file saved before they were kept
            return f"progress.losses holds {len(self.losses)}, more than its {self.step} step(s)"
        done = (self.epoch - 1) * steps_per_epoch + self.step
        if not 0 <= self.skipped_steps <= done:
            return (
                f"progress.skipped_steps is {self.skipped_steps}, not from 0 to the {done} "
                f"step(s) done"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["history"] = [asdict(r) for r in self.history]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Progress:
        """The progress `to_dict` gave; pydantic's ValidationError when a field is of
        another type (a file edited, or of another program)."""
        values = dict(data)
        # Files saved before the schedule became a function of the step also hold its state.
        values.pop("scheduler", None)
        return TypeAdapter(cls).validate_python(values)
