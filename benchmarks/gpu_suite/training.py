"""The training case: the project's `Trainer.step` on a small synthetic set, timed with
mixed precision on and off in the same run, on the plan's device."""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from benchmarks.gpu_suite.workbench import Workbench
from detector.training.samples import Sample

if TYPE_CHECKING:
    import torch

    from detector.training.job import TrainingJob

CLASS_NAMES = ("background", "person")
IMAGE_SIZE = (320, 240)
"""(width, height) of each synthetic image."""
BUNDLED = "person_ssdlite"
"""The one base trained from its own (bundled) weights; the others start from random ones,
so that nothing is downloaded."""
LONG_SCHEDULE_EPOCHS = 10_000
"""Epochs the job is given: far more than the steps taken, so the cosine schedule keeps
the rate at its peak over them."""


@dataclass(frozen=True)
class TrainingRun:
    """One run of the case's steps, mixed precision on or off."""

    amp: bool
    images_per_s: float
    """Images/s of the timed steps (each one whole `Trainer.step`, losses read back)."""
    first_loss: float
    """The total loss of the first step (warm-up included)."""
    last_loss: float
    grad_scale: float | None
    """The GradScaler's scale after the last step (None without mixed precision)."""


@dataclass(frozen=True)
class TrainingResult:
    """What a training case measured."""

    model: str
    input_size: int
    batch_size: int
    steps: int
    """Steps per run, warm-up included."""
    fp32: TrainingRun
    amp: TrainingRun | None
    """The mixed-precision run (None where the device is not CUDA: the trainer runs none)."""
    amp_speedup: float | None
    """amp images/s over fp32 images/s, in this run."""
    loss_finite: bool
    loss_fell: bool
    """Whether every run's last loss is below its first."""


def measure_training(bench: Workbench, model: str, batch_size: int) -> TrainingResult:
    """`Trainer.step` of `model` at `batch_size` on the plan's device: mixed precision off,
    then on (CUDA only), each from its own copy of the same starting model, on the same
    batch."""
    from detector.architectures import DEFAULT_SIZE  # torch: imported once a case runs

    bench.release()  # the model-only detector's memory is not this case's
    samples = synthetic_samples(bench.scratch / "training", batch_size)
    start = _job(model, samples, bench.scratch / "training-out")  # built once, on the CPU
    runs = [
        _timed_run(bench, replace(start, model=copy.deepcopy(start.model)), amp)
        for amp in [False] + ([True] if bench.device.type == "cuda" else [])
    ]
    fp32, amp = runs[0], (runs[1] if len(runs) > 1 else None)
    losses = [loss for r in runs for loss in (r.first_loss, r.last_loss)]
    plan = bench.plan.training
    return TrainingResult(
        model, DEFAULT_SIZE[model], batch_size, plan.warmup + plan.steps, fp32, amp,
        None if amp is None else amp.images_per_s / fp32.images_per_s,
        all(math.isfinite(x) for x in losses), all(r.last_loss < r.first_loss for r in runs),
    )  # fmt: skip


def _timed_run(bench: Workbench, job: TrainingJob, amp: bool) -> TrainingRun:
    """`plan.warmup` untimed then `plan.steps` timed steps of a trainer of `job`."""
    from detector.training.progress import Progress
    from detector.training.trainer import Trainer

    plan = bench.plan.training
    trainer = Trainer(job, bench.device, threading.Event(), amp=amp)
    batch = next(iter(trainer.train_batches.epoch(1))).to(bench.device)
    state = Progress()
    first = _total(trainer.step(batch, state))
    for _ in range(plan.warmup - 1):
        trainer.step(batch, state)
    _sync(bench.device)
    began = time.perf_counter()
    last = first
    for _ in range(plan.steps):
        last = _total(trainer.step(batch, state))
    _sync(bench.device)
    seconds = time.perf_counter() - began
    scale = trainer.scaler.get_scale() if trainer.amp else None
    images = plan.steps * trainer.batch_size
    return TrainingRun(amp, images / seconds, first, last, scale)


def _job(arch: str, samples: tuple[Sample, ...], out: Path) -> TrainingJob:
    """A job of one batch per epoch on `samples`, the rate at its peak from the first step."""
    from detector.architectures import ARCHITECTURES, DEFAULT_SIZE
    from detector.training.bases import trainable_model
    from detector.training.job import TrainingJob
    from detector.training.settings import TrainSettings

    size = DEFAULT_SIZE[arch]
    settings = TrainSettings.model_validate(
        {"batch_size": len(samples), "workers": 0, "warmup_steps": 0,
         "epochs": LONG_SCHEDULE_EPOCHS}
    )  # fmt: skip
    if arch == BUNDLED:
        ready = trainable_model(arch, CLASS_NAMES, size, seed=settings.seed)
        model, fresh = ready.model, ready.fresh_class_head
    else:
        model, fresh = ARCHITECTURES[arch](len(CLASS_NAMES), size), True
    return TrainingJob(
        model, arch, size, CLASS_NAMES, samples, (), settings, out, arch, "synthetic", fresh
    )


def synthetic_samples(folder: Path, count: int, seed: int = 0) -> tuple[Sample, ...]:
    """`count` noisy JPEGs in `folder`, each with 1-3 solid boxes labelled 1 (made once per
    count)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    width, height = IMAGE_SIZE
    samples = []
    for i in range(count):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        boxes = []
        for _ in range(int(rng.integers(1, 4))):
            w, h = (int(v) for v in rng.integers(30, 100, 2))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            pixels[y : y + h, x : x + w] = (220, 40, 40)
            boxes.append((x, y, x + w, y + h))
        path = folder / f"{count}-{i:03d}.jpg"
        if not path.exists():
            Image.fromarray(pixels).save(path, quality=90)
        labels = np.ones(len(boxes), np.int64)
        samples.append(Sample(path.resolve(), width, height, np.array(boxes, np.float32),
                              labels, f"synthetic {path.name}"))  # fmt: skip
    return tuple(samples)


def _total(losses: tuple[float, float]) -> float:
    return losses[0] + losses[1]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        import torch

        torch.cuda.synchronize(device)
