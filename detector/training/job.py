"""What a training is asked to do and what came of it: the model, its data and settings,
where its files go (`BEST`, `LAST`) and the batches and epochs that follow from them
(`TrainingJob`), and how it ended (`TrainingResult`). `detector.training.trainer` runs it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from detector.ssd import SSD
from detector.training.samples import Sample
from detector.training.settings import TrainSettings

BEST, LAST = "best.pt", "last.pt"
"""File names in the output folder: the best validation mAP so far, and where to resume."""
FRESH_CLASS_HEAD = "fresh_class_head"
"""The checkpoint key of `TrainingJob.fresh_class_head`."""

StopReason = Literal["finished", "plateau", "interrupted"]


@dataclass(frozen=True)
class TrainingJob:
    """What to train: a model ready for the classes, its data and where results go."""

    model: SSD
    arch: str
    size: int
    class_names: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    settings: TrainSettings
    out: Path
    base: str
    """What the model started from (a base name or a checkpoint), recorded in checkpoints."""
    data: str
    """Where the images came from, recorded in checkpoints."""
    fresh_class_head: bool
    """Whether the class head started anew (it then learns `head_lr_factor` times faster;
    kept, the whole model learns at the recipe's `kept_head_lr`), recorded in checkpoints
    so that a resumed run keeps the rates it started with."""

    @property
    def batch_size(self) -> int:
        """Images a step: the setting's (else the recipe's), at most the training images."""
        return min(self.settings.batch_size_for(self.arch), len(self.train))

    @property
    def steps_per_epoch(self) -> int:
        """Optimiser steps an epoch: whole batches only, as a last batch of one image would
        make batch norm fail (one value per channel on the smallest feature maps) and give
        one image a whole step's weight."""
        return len(self.train) // self.batch_size

    @property
    def epochs(self) -> int:
        """The epochs this run takes: `epochs`, more on a set too small for `min_steps`."""
        return self.settings.epochs_for(self.steps_per_epoch)


@dataclass(frozen=True)
class TrainingResult:
    """How a training ended, and its best epoch."""

    stopped_by: StopReason
    epochs_done: int
    best_map: float
    best_epoch: int
    """0: no epoch beat the starting weights of a class head kept from the base, which
    `best.pt` then holds."""
    out: Path
    step: int = 0
    """Batches done of the epoch it stopped in, which `--resume` finishes (0: it stopped
    between epochs)."""

    @property
    def saved_best(self) -> bool:
        """Whether `best.pt` was written (mAP is -1 where no validation box was scored)."""
        return self.best_map >= 0
