"""The person dataset of docs/training.md's second figure (labels checked by eye), from
../shared/data/vtest.avi and the labels in benchmarks/data/vtest_people/.

    python -m benchmarks.finetune_reviewed --out /tmp/reviewed
    python -m pipeline evaluate --model person_ssdlite --data /tmp/reviewed --precision fp32
    nice -n 10 python -m pipeline train --data /tmp/reviewed --out /tmp/run --epochs 10 \\
        --batch-size 8 --lr 0.0005 --workers 1
    python -m pipeline evaluate --model /tmp/run/best.pt --data /tmp/reviewed --precision fp32

The frames are not shipped: this script decodes them again from the video (OpenCV's sample
clip) and writes them as JPEG images with `train.json` and `val.json` (COCO, one class).
The labels began as the bundled model's guesses; each frame was then checked by eye and
corrected (benchmarks/data/vtest_people/README.md says how, review.json lists each change).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import av
import numpy as np
import numpy.typing as npt
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from tests.conftest import SHARED_DATA

LABELS = Path(__file__).resolve().parent / "data" / "vtest_people" / "labels.json"
"""The reviewed boxes, by split and frame number."""
REVIEW = LABELS.parent / "review.json"
"""What the review changed in each frame's guesses."""
JPEG_QUALITY = 95
"""As `dataset export` writes frames."""

Box = tuple[float, float, float, float]
"""x1, y1, x2, y2 in pixels of the frame."""
Model = TypeVar("Model", bound=BaseModel)


class ReviewedLabels(BaseModel):
    """labels.json: the video the boxes belong to and the boxes of each kept frame."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    video: str = Field(description="file name of the clip the frames come from")
    width: int = Field(gt=0, description="frame width in pixels")
    height: int = Field(gt=0, description="frame height in pixels")
    frame_count: int = Field(gt=0, description="frames in the clip, counted when decoded")
    category: str = Field(min_length=1, description="the one class of every box")
    train: dict[int, list[Box]] = Field(description="frame number (from 0) -> its boxes")
    val: dict[int, list[Box]] = Field(description="frame number (from 0) -> its boxes")

    @model_validator(mode="after")
    def _check(self) -> ReviewedLabels:
        if self.train and self.val and max(self.train) >= min(self.val):
            raise ValueError(
                f"validation frames must come after every training frame: frame "
                f"{min(self.val)} is validation, {max(self.train)} training"
            )
        for split, frames in (("train", self.train), ("val", self.val)):
            for frame, boxes in frames.items():
                if not 0 <= frame < self.frame_count:
                    raise ValueError(
                        f"{split} frame {frame} is not in the "
                        f"{self.frame_count} frames of {self.video}"
                    )
                for x1, y1, x2, y2 in boxes:
                    if not (0 <= x1 < x2 <= self.width and 0 <= y1 < y2 <= self.height):
                        raise ValueError(
                            f"{split} frame {frame}: box {[x1, y1, x2, y2]} is "
                            f"empty or outside the {self.width}x{self.height} frame"
                        )
        return self


class Move(BaseModel):
    """A guessed box corrected to another."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    from_: Box = Field(alias="from", description="the model's box")
    to: Box = Field(description="the box after review")


class FrameReview(BaseModel):
    """What the review did to one frame's guesses."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    guesses: int = Field(ge=0, description="boxes the model guessed")
    removed: list[Box] = Field(description="guesses on no one, or doubling a person")
    added: list[Box] = Field(description="people the model missed")
    moved: list[Move] = Field(description="guesses corrected to fit one person")


class ReviewLog(BaseModel):
    """review.json: each reviewed frame's changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    frames: dict[int, FrameReview] = Field(description="frame number -> its changes")


def unchecked(frames: Mapping[int, Sequence[Box]], log: ReviewLog) -> dict[int, list[Box]]:
    """The model's guesses behind the reviewed `frames`: their boxes less the added and
    corrected ones, plus the removed ones and the corrected ones as they were guessed."""
    guessed: dict[int, list[Box]] = {}
    for frame, boxes in frames.items():
        change = log.frames[frame]
        new = set(change.added) | {move.to for move in change.moved}
        kept = [box for box in boxes if box not in new]
        guessed[frame] = kept + list(change.removed) + [move.from_ for move in change.moved]
        if len(guessed[frame]) != change.guesses:
            raise SystemExit(
                f"frame {frame}: the review log gives {len(guessed[frame])} "
                f"guesses, it says there were {change.guesses}"
            )
    return guessed


def read_labels(path: Path) -> ReviewedLabels:
    """The labels file, or SystemExit with one line saying what is wrong in it."""
    return _read(path, ReviewedLabels)


def read_review(path: Path) -> ReviewLog:
    """The review log, or SystemExit with one line saying what is wrong in it."""
    return _read(path, ReviewLog)


def _read(path: Path, model: type[Model]) -> Model:
    try:
        return model.model_validate_json(path.read_bytes())
    except OSError as error:
        raise SystemExit(f"{path}: cannot read: {error.strerror}") from None
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        raise SystemExit(f"{path}: {where}: {first['msg']}") from None


def image_name(frame: int) -> str:
    """The file an extracted frame is written to, relative to the dataset folder."""
    return f"images/vtest_{frame:06d}.jpg"


def coco(
    frames: Mapping[int, Sequence[Box]], category: str, width: int, height: int
) -> dict[str, list[dict[str, object]]]:
    """A COCO document of `frames` (in frame order) with one category."""
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for image_id, frame in enumerate(sorted(frames), 1):
        images.append(
            {
                "id": image_id,
                "file_name": image_name(frame),
                "width": width,
                "height": height,
                "frame": frame,
            }
        )
        for x1, y1, x2, y2 in frames[frame]:
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                    "segmentation": [],
                }
            )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": category}],
    }


def decode(
    video: Path, wanted: Iterable[int], labels: ReviewedLabels
) -> dict[int, npt.NDArray[np.uint8]]:
    """The wanted frames of `video` (RGB), checked to be the clip the labels describe."""
    wanted = set(wanted)
    found: dict[int, npt.NDArray[np.uint8]] = {}
    count = 0
    try:
        with av.open(str(video)) as container:
            for count, frame in enumerate(container.decode(video=0), 1):
                if (frame.width, frame.height) != (labels.width, labels.height):
                    raise SystemExit(
                        f"{video}: frames are {frame.width}x{frame.height}, the "
                        f"labels are for {labels.video} at "
                        f"{labels.width}x{labels.height}"
                    )
                if count - 1 in wanted:
                    found[count - 1] = frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as error:
        raise SystemExit(f"{video}: cannot decode: {error}") from None
    if count != labels.frame_count:
        raise SystemExit(
            f"{video}: {count} frames, but {labels.video} has "
            f"{labels.frame_count}: the labels would land on other frames"
        )
    return found


def build(
    labels: ReviewedLabels, video: Path, out: Path, train: Mapping[int, Sequence[Box]] | None = None
) -> dict[str, int]:
    """Writes out/train.json, out/val.json and out/images/; boxes written per split.
    `train` replaces the reviewed training boxes (the unchecked guesses, for the control)."""
    splits = {"train": labels.train if train is None else train, "val": labels.val}
    pixels = decode(video, (frame for frames in splits.values() for frame in frames), labels)
    (out / "images").mkdir(parents=True, exist_ok=True)
    for frame, image in pixels.items():
        Image.fromarray(image).save(out / image_name(frame), quality=JPEG_QUALITY)
    counts = {}
    for split, frames in splits.items():
        doc = coco(frames, labels.category, labels.width, labels.height)
        (out / f"{split}.json").write_text(json.dumps(doc, indent=1))
        counts[split] = len(doc["annotations"])
    return counts


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument(
        "--video",
        type=Path,
        default=SHARED_DATA / "vtest.avi",
        help="OpenCV's sample clip vtest.avi (default: ../shared/data)",
    )
    parser.add_argument("--labels", type=Path, default=LABELS, help="the reviewed labels")
    parser.add_argument("--review", type=Path, default=REVIEW, help="the review log")
    parser.add_argument(
        "--unchecked-train",
        action="store_true",
        help="train on the model's guesses as they were before review (the "
        "figure's control); validation keeps the checked boxes",
    )
    parser.add_argument("--out", type=Path, required=True, help="the dataset folder to write")
    args = parser.parse_args(argv)
    if not args.video.is_file():
        raise SystemExit(f"{args.video}: no such video (OpenCV's samples/data/vtest.avi)")
    labels = read_labels(args.labels)
    train = unchecked(labels.train, read_review(args.review)) if args.unchecked_train else None
    counts = build(labels, args.video, args.out, train)
    for split, frames in (("train", labels.train), ("val", labels.val)):
        print(
            f"{args.out}/{split}.json: {len(frames)} images, {counts[split]} "
            f"{labels.category} boxes",
            file=sys.stdout,
        )


if __name__ == "__main__":
    main()
