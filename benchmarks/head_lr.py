"""The class head's rate factor (`head_lr_factor`): how far the trainer's own steps take the
losses of the bundled model with its class head made anew, per factor, on one batch.

    python -m benchmarks.head_lr                          # x1, x10, x25 (default), x50
    python -m benchmarks.head_lr --factors 5 25 100 --steps 80 --seed 1

person_ssdlite gets a fresh class head for the three test shapes (square, disc, triangle);
the batch is the first `--images` shape images (`tests.detector.training.datasets`:
objects pasted onto frames of ../shared/data/vtest.avi, on noisy backgrounds without it),
resized for the model without augmentation, the same batch at every step and for every
factor. Every factor starts from the same weights and takes `--steps` steps of
`Trainer.step` (the multibox loss, SGD with the recipe's momentum and weight decay) at the
recipe's rate, without warm-up or decay. Prints one markdown table: the confidence
(classification) and localisation losses of the first and last step, the last confidence
loss over the first, and whether every loss stayed finite (the trainer stops on one that
is not; the row then says at which step).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from benchmarks.machine import machine_line
from detector.training.bases import trainable_model
from detector.training.job import TrainingJob
from detector.training.loader import SampleDataset, SampleLoader, TrainBatch
from detector.training.progress import Progress
from detector.training.samples import Sample
from detector.training.settings import TrainSettings, recipe_for
from detector.training.trainer import Trainer, TrainingDiverged
from detector.training.transforms import eval_transform
from tests.detector.training.datasets import CLASS_NAMES, make_shapes_dataset

BASE = "person_ssdlite"
DEFAULT_FACTORS = (1.0, 10.0, 25.0, 50.0)
LONG_SCHEDULE_EPOCHS = 10_000
"""Epochs the job is given: far more than the steps taken, so the cosine schedule keeps
the rate at its peak over them."""


@dataclass(frozen=True)
class FactorRun:
    """The losses of one factor's steps."""

    factor: float
    losses: tuple[tuple[float, float], ...]
    """(localisation, confidence) of each step taken."""
    diverged_at: int | None
    """The step whose loss was NaN or infinite (None: every loss was finite)."""

    @property
    def finite(self) -> bool:
        return self.diverged_at is None


def make_batch(samples: Sequence[Sample], size: int, seed: int) -> TrainBatch:
    """All of `samples` as one batch, resized for the model as validation is (no
    augmentation)."""
    loader = SampleLoader(
        SampleDataset(samples, eval_transform(size)), len(samples), shuffle=False, seed=seed
    )
    return next(loader.epoch(1))


def run_factor(
    start: TrainingJob, factor: float, batch: TrainBatch, steps: int, device: torch.device
) -> FactorRun:
    """`steps` trainer steps on `batch` from a copy of `start`'s model, the class head at
    the rate times `factor`."""
    job = replace(
        start,
        model=copy.deepcopy(start.model),
        settings=start.settings.model_copy(update={"head_lr_factor": factor}),
    )
    trainer = Trainer(job, device, threading.Event(), amp=False)
    state = Progress()
    losses: list[tuple[float, float]] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(start.settings.seed)
        for step in range(1, steps + 1):
            try:
                losses.append(trainer.step(batch, state))
            except TrainingDiverged:
                return FactorRun(factor, tuple(losses), step)
            state.step += 1
    return FactorRun(factor, tuple(losses), None)


def starting_job(samples: tuple[Sample, ...], seed: int, out: Path) -> TrainingJob:
    """The bundled base with a class head made anew for the shapes, one batch of all of
    `samples` per epoch, the recipe's rate from the first step."""
    settings = TrainSettings.model_validate(
        {"batch_size": len(samples), "workers": 0, "warmup_steps": 0, "min_steps": 0,
         "epochs": LONG_SCHEDULE_EPOCHS, "seed": seed}
    )  # fmt: skip
    ready = trainable_model(BASE, CLASS_NAMES, None, seed=seed)
    if not ready.fresh_class_head:
        raise RuntimeError(f"{BASE} kept its class head for {CLASS_NAMES}")
    return TrainingJob(
        ready.model, ready.arch, ready.size, CLASS_NAMES, samples, (), settings, out, BASE,
        "shapes", True,
    )  # fmt: skip


def row(run: FactorRun, lr: float) -> str:
    """The run's line of the table."""
    if not run.losses:
        return f"| x{run.factor:g} | {lr * run.factor:g} | - | - | - | - | - | no (step 1) |"
    (loc_first, conf_first), (loc_last, conf_last) = run.losses[0], run.losses[-1]
    finite = "yes" if run.finite else f"no (step {run.diverged_at})"
    return (
        f"| x{run.factor:g} | {lr * run.factor:g} | {conf_first:.3g} | {conf_last:.3g} | "
        f"{conf_last / conf_first:.2f} | {loc_first:.3g} | {loc_last:.3g} | {finite} |"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", nargs="+", type=float, default=list(DEFAULT_FACTORS))
    parser.add_argument("--steps", type=int, default=40, help="trainer steps per factor")
    parser.add_argument("--images", type=int, default=8, help="shape images in the batch")
    parser.add_argument("--seed", type=int, default=0, help="of the images and the class head")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.images < 2:
        parser.error("--steps must be at least 1 and --images at least 2 (batch norm)")
    if min(args.factors) < 1:
        parser.error("--factors must be at least 1 (the trainer's bound)")
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    lr = recipe_for(BASE).lr
    print(
        f"# class head rate factor, {BASE}, {args.images} images, {args.steps} steps, "
        f"rate {lr:g}, seed {args.seed}, on {where}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {machine_line()}"
    )
    print(
        "| factor | head rate | confidence first | confidence last | last / first "
        "| localisation first | localisation last | finite |"
    )
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as scratch:
        shapes = make_shapes_dataset(Path(scratch) / "shapes", images=args.images, seed=args.seed)
        start = starting_job(shapes.train, args.seed, Path(scratch) / "out")
        batch = make_batch(shapes.train, start.size, args.seed)
        for factor in args.factors:
            print(row(run_factor(start, factor, batch, args.steps, device), lr), flush=True)


if __name__ == "__main__":
    main()
