"""`train`: fine-tune an SSD on the user's labelled images."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.argtypes import nonempty, number, out_folder, whole_like
from pipeline.cli.exit_codes import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    stopped_by,
)

if TYPE_CHECKING:  # heavy imports at call time only: `--help` stays fast
    import torch

    from detector.measured_int8 import Int8Measurement
    from detector.training.job import TrainingJob, TrainingResult
    from detector.training.progress import Progress

SIZES = (300, 320, 512)
"""Input sizes `--size` offers; each base model takes those its architecture supports."""


def add_parser(sub: Any) -> None:
    """The `train` subcommand."""
    from detector.training.settings import RESUMABLE, TrainSettings, as_options

    p = sub.add_parser(
        "train",
        help="fine-tune an SSD on your own labelled images (COCO JSON, Pascal VOC or YOLO)",
    )
    p.add_argument("--data", type=nonempty, required=True, help=DATA_HELP)
    p.add_argument(
        "--model",
        type=nonempty,
        default="person_ssdlite",
        help="base model: person_ssdlite (bundled, offline), ssdlite320_mobilenet_v3_large, "
        "ssd300_vgg16, ssd512_vgg16, or a checkpoint of an earlier training (default: "
        "person_ssdlite)",
    )
    p.add_argument("--out", type=out_folder, required=True, help="folder for checkpoints and logs")
    p.add_argument("--epochs", type=whole_like(TrainSettings, "epochs"), help=_help("epochs"))
    p.add_argument(
        "--batch-size", type=whole_like(TrainSettings, "batch_size"), help=_help("batch_size")
    )
    p.add_argument("--lr", type=number(1e-8, 10), help=_help("lr"))
    p.add_argument("--patience", type=whole_like(TrainSettings, "patience"), help=_help("patience"))
    p.add_argument(
        "--min-steps", type=whole_like(TrainSettings, "min_steps"), help=_help("min_steps")
    )
    p.add_argument("--seed", type=whole_like(TrainSettings, "seed"), help=_help("seed"))
    p.add_argument("--size", type=int, choices=SIZES, help=_help("size"))
    p.add_argument("--val-fraction", type=number(0.01, 0.99), help=_help("val_fraction"))
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), help=_help("device"))
    p.add_argument("--amp", choices=("auto", "on", "off"), help=_help("amp"))
    p.add_argument("--workers", type=whole_like(TrainSettings, "workers"), help=_help("workers"))
    p.add_argument(
        "--int8",
        choices=("measure", "skip"),
        default="measure",
        help="when training ends: measure best.pt's int8 network against float32 and keep it "
        "beside it (measure, the default), or skip that for a quick experiment (`evaluate "
        "--measure-int8` measures it later)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the training in --out from where it stopped (its last.pt), with its "
        f"settings; {as_options(RESUMABLE)} may change (never to fewer epochs than done, "
        "counted as --min-steps raises them; an epoch stopped in counts, as resuming "
        "finishes it)",
    )
    p.set_defaults(func=cmd_train)


DATA_HELP = (
    "a COCO JSON file (image paths relative to it), a Pascal VOC folder (Annotations/, "
    "JPEGImages/) or a YOLO data.yaml"
)


def _help(field: str) -> str:
    from detector.training.settings import TrainSettings

    info = TrainSettings.model_fields[field]
    default = "" if info.default is None else f" (default: {info.default})"
    return f"{info.description}{default}"


def cmd_train(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from detector.errors import ModelConfigError, WeightsUnavailableError
    from detector.training.job import LAST
    from detector.training.progress import DamagedProgress
    from detector.training.samples import DatasetError
    from detector.training.trainer import TrainingDiverged
    from pipeline.training import TrainingSetupError, damaged_state, prepare

    stop = threading.Event()
    try:
        job, progress, device = prepare(
            data=args.data,
            base=args.model,
            out=Path(args.out),
            resume=args.resume,
            overrides=_overrides(args),
        )
    except DatasetError as exc:
        _print_problems(exc)
        return EXIT_USAGE
    except (ModelConfigError, WeightsUnavailableError, TrainingSetupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"])
            print(f"error: {where}: {error['msg']}", file=sys.stderr)
        return EXIT_USAGE

    from detector.training.history import EpochRecord
    from detector.training.trainer import Trainer
    from pipeline.cli.run import stop_on_signals

    def say_epoch(record: EpochRecord, best: bool) -> None:
        scores = f"val mAP {record.map:.3f}, mAP@.5 {record.map50:.3f}"
        if record.epoch == 0:
            line = f"epoch 0 (the starting weights, before any step): {scores}"
        else:
            line = (
                f"epoch {record.epoch}/{job.epochs}: loss {record.loss:.4f} "
                f"(localisation {record.localisation:.4f}, confidence "
                f"{record.confidence:.4f}), {scores}, {record.images_per_s:.1f} images/s"
                f"{'  best so far' if best else ''}"
            )
        print(line, file=sys.stderr, flush=True)

    trainer = Trainer(job, device, stop, on_epoch=say_epoch)
    if progress is not None:
        try:  # refused before the start line, not after it (`fit` takes it up again)
            trainer.restore(progress)
        except DamagedProgress as exc:
            print(f"error: {damaged_state(job.out / LAST, str(exc))}", file=sys.stderr)
            return EXIT_USAGE
    print(_start_line(job, device), file=sys.stderr, flush=True)
    if progress is not None and progress.epoch <= job.epochs:
        print(_resume_line(job, progress), file=sys.stderr, flush=True)
    try:
        # the block ends with the training: a Ctrl-C during int8's measurement after it
        # interrupts that as in any command without a stop of its own
        with stop_on_signals(stop, doing="saving where training stands") as received:
            result = trainer.fit(progress)
    except DatasetError as exc:  # an image whose header read well but whose pixels do not
        _print_problems(exc)
        return EXIT_USAGE
    except DamagedProgress as exc:  # a resumed optimiser's state, taken up before any step
        print(f"error: {damaged_state(job.out / LAST, str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDiverged as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    best = job.out / "best.pt"
    if result.saved_best and result.best_epoch == 0:
        print(
            f"no epoch beat the starting weights (val mAP {result.best_map:.3f}): {best} holds "
            f"them unchanged; a lower --lr or more images may help",
            file=sys.stderr,
        )
    elif result.saved_best:
        print(
            f"best: val mAP {result.best_map:.3f} at epoch {result.best_epoch}, saved as {best}; "
            f"deploy it with `detector.model: {best}` in a config",
            file=sys.stderr,
        )
    if result.stopped_by != "interrupted" and result.saved_best:
        if args.int8 == "measure":
            _measure_int8(job, best)
        else:
            print(
                f"int8 not measured (--int8 skip): `python -m pipeline evaluate --model {best} "
                f"--data {args.data} --measure-int8` measures it",
                file=sys.stderr,
            )
    if result.stopped_by == "interrupted":
        print(_stopped_line(job, result), file=sys.stderr)
        return stopped_by(received[0]) if received else EXIT_INTERRUPTED
    if result.stopped_by == "plateau":
        print(f"stopped early: no better mAP in {job.settings.patience} epochs", file=sys.stderr)
    return EXIT_OK


def _measure_int8(job: TrainingJob, best: Path) -> None:
    """Measures `best`'s int8 network against float32 and says what `precision: auto` will
    run; a failure costs only int8 (the checkpoint runs in float32)."""
    from detector.errors import ModelConfigError
    from detector.training.samples import DatasetError
    from pipeline.int8_measure import measure_int8

    print(
        f"measuring int8 against float32 on {len(job.val)} validation images "
        f"(calibrated on training images)…",
        file=sys.stderr,
        flush=True,
    )
    try:
        found = measure_int8(best, job.train, job.val, job.class_names)
    except (ModelConfigError, DatasetError, OSError) as exc:
        print(
            f"int8 not measured ({exc}): `precision: auto` runs {best} in float32", file=sys.stderr
        )
        return
    print(int8_verdict(found), file=sys.stderr)


def int8_verdict(found: Int8Measurement) -> str:
    """One line: what int8 scored, and what `precision: auto` will run."""
    verdict = (
        "`precision: auto` runs it in int8 on CPUs with 8-bit dot products (VNNI)"
        if found.acceptable
        else "`precision: auto` runs it in float32"
    )
    return f"int8: {found.describe()}: {verdict}"


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings the command line gives (the rest keep their defaults)."""
    names = (
        "epochs",
        "batch_size",
        "lr",
        "patience",
        "min_steps",
        "seed",
        "size",
        "val_fraction",
        "device",
        "amp",
        "workers",
    )
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _start_line(job: TrainingJob, device: torch.device) -> str:
    s = job.settings
    epochs = f"{job.epochs} epoch(s)"
    if job.epochs > s.epochs:
        epochs += f" of {job.steps_per_epoch} step(s), not {s.epochs}: --min-steps {s.min_steps}"
    amp, why = s.amp_choice(device.type, job.arch)
    return (
        f"training {job.arch} at {job.size}x{job.size} on {device} in "
        f"{'mixed precision' if amp else 'float32'} ({why}) for {len(job.class_names) - 1} "
        f"class(es) ({', '.join(job.class_names[1:])}): {len(job.train)} training and "
        f"{len(job.val)} validation images, batch {job.batch_size}, "
        f"lr {s.lr_for(job.arch, job.fresh_class_head):g}, {epochs}; writing {job.out}"
    )


def _resume_line(job: TrainingJob, progress: Progress) -> str:
    """Where a resumed run takes up: an epoch stopped in is finished, not begun again."""
    done = f"{progress.epoch - 1} epoch(s) done"
    if not progress.step:
        return f"resuming at epoch {progress.epoch}/{job.epochs} ({done})"
    return (
        f"resuming in epoch {progress.epoch}/{job.epochs} at batch {progress.step + 1} of "
        f"{job.steps_per_epoch} ({done}; the stopped epoch is finished, not begun again)"
    )


def _stopped_line(job: TrainingJob, result: TrainingResult) -> str:
    """What a stop left: the epochs done, and how far into the next one `--resume` goes on."""
    line = f"stopped after {result.epochs_done} full epoch(s)"
    if result.step:
        line += (
            f" and {result.step} of the {job.steps_per_epoch} batches of epoch "
            f"{result.epochs_done + 1}"
        )
    return f"{line}; continue with the same command and --resume"


def _print_problems(exc: Exception) -> None:
    """A dataset's problems: the first ones listed under one `error:` line (DatasetError's
    message), so that a long list neither scrolls away nor hides how many there are."""
    print(f"error: {exc}", file=sys.stderr)
