"""The training-epoch case: a COCO dataset written into the scratch folder, then
`python -m pipeline train` on it in a child process (`train_child`), its epochs timed by the
trainer's own log (`history.json`)."""

from __future__ import annotations

import json
import math
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from benchmarks.gpu_suite.plan import EpochPlan
from benchmarks.gpu_suite.workbench import Workbench
from pipeline.dataset_files import JPEG_QUALITY, CocoDocument, StoredBox, image_name

CLASS = "person"
"""The one class: person_ssdlite keeps its class head, as when it is fine-tuned on people."""
CAMERA = "synthetic"
BOX_COLOUR = (220, 40, 40)
TAIL_LINES = 20
"""Lines of a failed child's output kept in the error."""


@dataclass(frozen=True)
class EpochTiming:
    """One epoch as the trainer's log (`history.json`) has it, and its validation's time."""

    epoch: int
    seconds: float
    """The log's: the epoch's training steps and its validation (checkpoints after it not)."""
    validation_seconds: float
    images_per_s: float
    """The log's: training images over `seconds`."""
    loss: float


@dataclass(frozen=True)
class EpochResult:
    """What the training-epoch case measured; the epoch figures are the last epoch's (the
    steady one where there are several)."""

    model: str
    input_size: int
    image_size: str
    """W x H of the dataset's JPEGs."""
    train_images: int
    """Images in an epoch (the dataset's train split)."""
    val_images: int
    batch_size: int
    steps_per_epoch: int
    workers: int
    device: str
    amp: bool
    """Whether the trainer ran mixed precision (`--amp auto`: as the base's recipe says on
    CUDA, float32 for person_ssdlite; float32 on the CPU)."""
    command: str
    """The `python -m pipeline train` command the child ran (its paths are gone)."""
    epoch_seconds: float
    images_per_s: float
    validation_seconds: float
    first_epoch_extra_seconds: float | None
    """How much longer the first epoch took than the last (None with one epoch)."""
    start_validation_seconds: float
    """Epoch 0: the starting weights' validation, before any step."""
    setup_seconds: float
    """From the child's start to the trainer made: torch's import, CUDA's start, the
    dataset read, the model built."""
    process_seconds: float
    """The child's wall time, as the suite saw it."""
    dataset_seconds: float
    """Writing the dataset (before the child)."""
    peak_gpu_memory_mib: float | None
    loss_finite: bool
    epochs: list[EpochTiming]


def measure_epochs(bench: Workbench) -> EpochResult:
    """Writes the plan's dataset, runs `train` on it for the plan's epochs in a child
    process, and reads what its log and the child say.

    Raises:
        RuntimeError: train failed, or did not end before the deadline.
    """
    plan = bench.plan.epoch
    began = time.perf_counter()
    data = write_dataset(bench.scratch / "epoch-data", bench.clip, plan)
    dataset_s = time.perf_counter() - began
    out = bench.scratch / "epoch-run"
    report = bench.scratch / "epoch-child.json"
    args = train_arguments(plan, data, out, bench.device.type)
    env = dict(os.environ)
    if bench.device.type == "cuda" and bench.device.index is not None:
        env["CUDA_VISIBLE_DEVICES"] = str(bench.device.index)  # train takes no cuda:N
    left = max(bench.deadline.left_s(), 1.0)
    started = time.perf_counter()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.gpu_suite.train_child", str(report), *args],
            cwd=bench.root, env=env, capture_output=True, text=True, timeout=left,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"train did not end within {left:.0f} s") from None
    process_s = time.perf_counter() - started
    if done.returncode != 0 or not report.is_file():
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-TAIL_LINES:])
        raise RuntimeError(f"train exited with status {done.returncode}\n{tail}")
    child: dict[str, Any] = json.loads(report.read_text(encoding="utf-8"))
    return epoch_result(plan, args, out, child, process_s, dataset_s)


def epoch_result(
    plan: EpochPlan, args: list[str], out: Path, child: dict[str, Any], process_s: float,
    dataset_s: float,
) -> EpochResult:  # fmt: skip
    """The figures of a finished run: its log in `out`, and what the child reported."""
    from detector.training.history import read_history

    history = read_history(out)
    trainer = child["trainer"]
    validations = child["validation_seconds"]
    if len(history) != plan.epochs + 1 or len(validations) != len(history):
        raise RuntimeError(
            f"train logged {len(history)} epochs and {len(validations)} validations; "
            f"expected epoch 0 and {plan.epochs} more"
        )
    start, *trained = history
    epochs = [
        EpochTiming(r.epoch, r.seconds, v, r.images_per_s, r.loss)
        for r, v in zip(trained, validations[1:], strict=True)
    ]
    first, last = epochs[0], epochs[-1]
    peak = child["peak_gpu_memory_mib"]
    return EpochResult(
        model=plan.model, input_size=int(trainer["input_size"]),
        image_size=f"{plan.image_size[0]}x{plan.image_size[1]}",
        train_images=int(trainer["train_images"]), val_images=int(trainer["val_images"]),
        batch_size=int(trainer["batch_size"]), steps_per_epoch=int(trainer["steps_per_epoch"]),
        workers=int(trainer["workers"]), device=str(trainer["device"]),
        amp=bool(trainer["amp"]), command=shlex.join(["python", "-m", "pipeline", "train", *args]),
        epoch_seconds=last.seconds, images_per_s=last.images_per_s,
        validation_seconds=last.validation_seconds,
        first_epoch_extra_seconds=first.seconds - last.seconds if len(epochs) > 1 else None,
        start_validation_seconds=start.seconds, setup_seconds=float(trainer["setup_seconds"]),
        process_seconds=process_s, dataset_seconds=dataset_s,
        peak_gpu_memory_mib=None if peak is None else float(peak),
        loss_finite=all(math.isfinite(e.loss) for e in epochs), epochs=epochs,
    )  # fmt: skip


def train_arguments(plan: EpochPlan, data: Path, out: Path, device: str) -> list[str]:
    """`train`'s arguments for the plan: its epochs exactly (`--min-steps 0`: a small set
    would get more), no int8 measurement after them (CPU work, not an epoch's)."""
    args = ["--data", str(data), "--model", plan.model, "--out", str(out),
            "--epochs", str(plan.epochs), "--min-steps", "0", "--device", device,
            "--amp", plan.amp, "--int8", "skip"]  # fmt: skip
    if plan.batch_size is not None:
        args += ["--batch-size", str(plan.batch_size)]
    if plan.workers is not None:
        args += ["--workers", str(plan.workers)]
    return args


def write_dataset(folder: Path, clip: Path, plan: EpochPlan, seed: int = 0) -> Path:
    """`folder`/train.json and val.json (COCO, as `train --data` reads a folder), the
    images in `folder`/images/: frames of `clip` at the plan's size, in turn, each with 1-3
    solid boxes labelled person; returns `folder`."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    width, height = plan.image_size
    total = plan.train_images + plan.val_images
    frames = clip_frames(clip, plan.image_size, total)
    rng = np.random.default_rng(seed)
    index = 0
    for split, count in (("train", plan.train_images), ("val", plan.val_images)):
        document = CocoDocument((CLASS,), "GPU suite: frames with solid boxes")
        for _ in range(count):
            pixels = frames[index % len(frames)].copy()
            boxes = _draw_boxes(pixels, rng)
            name = image_name(CAMERA, index)
            Image.fromarray(pixels).save(folder / name, quality=JPEG_QUALITY)
            document.add_image(name, CAMERA, index, width, height, boxes)
            index += 1
        (folder / f"{split}.json").write_text(json.dumps(document.as_dict()), encoding="utf-8")
    return folder


def clip_frames(clip: Path, size: tuple[int, int], most: int) -> list[npt.NDArray[np.uint8]]:
    """The first `most` frames of `clip` (fewer where it has fewer), RGB at `size` (W, H)."""
    import av

    width, height = size
    frames: list[npt.NDArray[np.uint8]] = []
    with av.open(str(clip)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.reformat(width=width, height=height, format="rgb24").to_ndarray())
            if len(frames) >= most:
                break
    if not frames:
        raise RuntimeError(f"{clip} has no video frame")
    return frames


def _draw_boxes(pixels: npt.NDArray[np.uint8], rng: np.random.Generator) -> list[StoredBox]:
    """1-3 solid boxes, an eighth to a third of the image's height, drawn into `pixels`."""
    height, width = pixels.shape[:2]
    boxes = []
    for _ in range(int(rng.integers(1, 4))):
        w, h = (int(v) for v in rng.integers(height // 8, height // 3, 2))
        x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        pixels[y : y + h, x : x + w] = BOX_COLOUR
        boxes.append(StoredBox(CLASS, 1.0, x, y, x + w, y + h, None))
    return boxes
