"""Setting up a training run: the data read and split, the model made ready for its classes
(or a stopped run picked up), the device chosen; `detector.training.trainer` runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from detector.checkpoints import ForeignCheckpoint, load_checkpoint
from detector.ssd import SSD
from detector.training.bases import trainable_model
from detector.training.job import BEST, FRESH_CLASS_HEAD, LAST, TrainingJob
from detector.training.progress import Progress
from detector.training.samples import DetectionData, read_dataset, split_validation
from detector.training.settings import RESUMABLE, TrainSettings, as_options

MIN_TRAIN_IMAGES = 2
"""A step needs two images at least: batch norm cannot normalise a batch of one."""


class TrainingSetupError(ValueError):
    """A training that cannot start as asked (the message says what to change)."""


def prepare(
    data: str,
    base: str,
    out: Path,
    resume: bool,
    overrides: dict[str, Any],
) -> tuple[TrainingJob, Progress | None, torch.device]:
    """The job to run, where it resumes (None: from the start) and the device to run on."""
    dataset = read_dataset(data)
    if resume:
        job, progress = _resumed(dataset, data, out, overrides)
    else:
        job, progress = _fresh(dataset, data, base, out, overrides), None
    device = resolve_device(job.settings.device)
    if job.settings.amp == "on" and device.type != "cuda":
        raise TrainingSetupError(
            f"--amp on: mixed precision needs a CUDA device, and this training runs on {device}; "
            "use --amp auto or off"
        )
    return job, progress, device


def resolve_device(choice: str) -> torch.device:
    """auto: the GPU when torch sees one, else the CPU; cuda without one is refused."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise TrainingSetupError("--device cuda: torch sees no CUDA GPU here; use --device cpu")
    return torch.device(choice)


def _fresh(
    dataset: DetectionData, data: str, base: str, out: Path, overrides: dict[str, Any]
) -> TrainingJob:
    if (out / LAST).exists() or (out / BEST).exists():
        raise TrainingSetupError(
            f"{out} already holds a training; add --resume to continue it, or choose another --out"
        )
    settings = TrainSettings(**overrides)
    ready = trainable_model(base, dataset.class_names, settings.size, seed=settings.seed)
    return _job(
        dataset,
        data,
        out,
        settings,
        ready.model,
        ready.arch,
        ready.size,
        base,
        ready.fresh_class_head,
    )


def _resumed(
    dataset: DetectionData, data: str, out: Path, overrides: dict[str, Any]
) -> tuple[TrainingJob, Progress]:
    last = out / LAST
    if last.is_dir():
        raise TrainingSetupError(
            f"--resume: {last} is a folder, not the checkpoint train saves there; move it "
            "away, or start without --resume into another --out"
        )
    if not last.is_file():
        raise TrainingSetupError(f"--resume: {last} not found; start without --resume")
    try:
        saved = load_checkpoint(last)
    except ForeignCheckpoint as exc:  # its advice is for a config's `detector.weights`
        plain = " (a plain state_dict?)" if exc.plain else ""
        raise TrainingSetupError(
            f"--resume: {last} is not a checkpoint train saved{plain}: it holds no training "
            "state to resume; start without --resume, into another --out"
        ) from None
    extra = saved.extra
    if not isinstance(extra.get("progress"), dict) or not isinstance(extra.get("settings"), dict):
        raise TrainingSetupError(f"--resume: {last} holds no training state to resume")
    saved_settings = dict(extra["settings"])
    if "warmup_epochs" in saved_settings:
        raise TrainingSetupError(
            damaged_state(last, "its warm-up was counted in epochs; it is now counted in steps")
        )
    # Runs saved before `min_steps` existed took their epochs alone: they resume on that
    # schedule, not on a longer one the setting would give them now.
    saved_settings.setdefault("min_steps", 0)
    changed = sorted(
        k for k, v in overrides.items() if k not in RESUMABLE and saved_settings.get(k) != v
    )
    if changed:
        raise TrainingSetupError(
            f"--resume continues with the stopped run's settings; drop {', '.join(changed)} "
            f"(only {as_options(RESUMABLE)} may change)"
        )
    moved = {k: v for k, v in overrides.items() if k in RESUMABLE}
    try:
        settings = TrainSettings(**{**saved_settings, **moved})
        progress = Progress.from_dict(extra["progress"])
    except ValidationError as exc:  # a file edited, or another program's
        error = exc.errors()[0]
        where = ".".join(str(p) for p in error["loc"])
        raise TrainingSetupError(damaged_state(last, f"{where}: {error['msg']}")) from None
    names = tuple(saved.labels.names)
    if names != dataset.class_names:
        raise TrainingSetupError(
            f"--resume: {last} was trained on classes {list(names[1:])}, "
            f"but {data} has {list(dataset.class_names[1:])}"
        )
    base = str(extra.get("base", saved.arch))
    # Runs saved before the key existed gave every class head the factor.
    fresh_head = bool(extra.get(FRESH_CLASS_HEAD, True))
    job = _job(dataset, data, out, settings, saved.model, saved.arch, saved.size, base, fresh_head)
    if (why := progress.problem(job.steps_per_epoch)) is not None:
        raise TrainingSetupError(damaged_state(last, why))
    if job.epochs < progress.least_epochs:  # the epochs it takes: --min-steps may raise them
        raise TrainingSetupError(_too_few_epochs(last, job, progress))
    return job, progress


def _too_few_epochs(last: Path, job: TrainingJob, progress: Progress) -> str:
    """Why `job` cannot resume `progress`: its epochs end before the epoch reached."""
    settings = job.settings
    raised = f" (--min-steps {settings.min_steps})" if job.epochs > settings.epochs else ""
    done = f"{progress.epoch - 1} epoch(s) done"
    if progress.step:
        done += (
            f" and epoch {progress.epoch} begun ({progress.step} of its {job.steps_per_epoch} "
            f"batches, already in the weights: resuming finishes it)"
        )
    return (
        f"--resume: {last} has {done}, but --epochs {settings.epochs} takes {job.epochs}"
        f"{raised}; --epochs must be {progress.least_epochs} or more"
    )


def damaged_state(last: Path, why: str) -> str:
    """Why --resume cannot take up the training state in `last`."""
    return (
        f"--resume: {last} holds a training state this version cannot use ({why}); start "
        f"without --resume, into another --out"
    )


def _job(
    dataset: DetectionData,
    data: str,
    out: Path,
    settings: TrainSettings,
    model: SSD,
    arch: str,
    size: int,
    base: str,
    fresh_class_head: bool,
) -> TrainingJob:
    """The job of `model` (an `arch` network at `size`) on the dataset's split."""
    train, val = _split(dataset, settings)
    return TrainingJob(
        model=model,
        arch=arch,
        size=size,
        class_names=dataset.class_names,
        train=train,
        val=val,
        settings=settings,
        out=out,
        base=base,
        data=str(data),
        fresh_class_head=fresh_class_head,
    )


def _split(dataset: DetectionData, settings: TrainSettings) -> tuple[Any, Any]:
    """The data's own split, else `val_fraction` of its images held out (by the seed)."""
    if dataset.val:
        train, val = dataset.train, dataset.val
    else:
        train, val = split_validation(dataset.train, settings.val_fraction, settings.seed)
    if len(train) < MIN_TRAIN_IMAGES or not val:
        raise TrainingSetupError(
            f"need {MIN_TRAIN_IMAGES} training images and 1 validation image at least: got "
            f"{len(train)} and {len(val)}; "
            f"add images or change --val-fraction"
        )
    if not any(len(sample.boxes) for sample in train):  # as when labels were not found
        raise TrainingSetupError(
            f"none of the {len(train)} training image(s) holds a box, so the model would "
            "learn to find nothing: label boxes in them (`python -m pipeline dataset stats "
            "DATA` counts the boxes it reads)"
        )
    if not any(len(sample.boxes) for sample in val):  # mAP, which picks best.pt, needs one
        instead = (
            "label boxes in the data's validation images"
            if dataset.val
            else "label more images, or hold out others (--seed, --val-fraction)"
        )
        raise TrainingSetupError(
            f"none of the {len(val)} validation image(s) holds a box, so no mAP can be measured "
            f"on them to choose best.pt: {instead}"
        )
    return train, val
