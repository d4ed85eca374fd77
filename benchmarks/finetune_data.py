"""A labelled dataset made from real footage for the fine-tuning figure of docs/training.md:
coloured shapes (square, disc, triangle) pasted onto frames of ../shared/data/vtest.avi at
known places, so that every box is exact without anybody drawing one.

    python -m benchmarks.finetune_data --images 400 --val 100 --out /tmp/shapes
    python -m pipeline train --data /tmp/shapes --out /tmp/shapes-run --epochs 15
    python -m pipeline evaluate --model /tmp/shapes-run/best.pt --data /tmp/shapes

Backgrounds are every 5th frame of the clip (people crossing a yard), resized to 320x240,
so the training and validation images share the scene but not the pasted objects.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np
from PIL import Image

from detector.training.samples import Sample
from tests.conftest import SHARED_DATA
from tests.detector.training.datasets import (
    CLASS_NAMES,
    IMAGE_SIZE,
    ShapesData,
    draw_objects,
    write_coco,
)


def backgrounds(video: Path, every: int) -> list[np.ndarray]:
    """Every `every`-th frame of `video`, RGB at IMAGE_SIZE."""
    frames = []
    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % every == 0:
                small = frame.reformat(width=IMAGE_SIZE[0], height=IMAGE_SIZE[1], format="rgb24")
                frames.append(small.to_ndarray())
    return frames


def make(out: Path, images: int, val: int, seed: int, video: Path) -> ShapesData:
    scenes = backgrounds(video, every=5)
    rng = np.random.default_rng(seed)
    folder = out / "made"
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(images):
        pixels = scenes[int(rng.integers(len(scenes)))].copy()
        boxes, labels = draw_objects(pixels, rng)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        samples.append(Sample(path.resolve(), *IMAGE_SIZE, boxes, labels, path.name))
    return ShapesData(CLASS_NAMES, tuple(samples[: images - val]), tuple(samples[images - val :]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--val", type=int, default=100, help="the last N are for validation")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--video", type=Path, default=SHARED_DATA / "vtest.avi")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    data = make(args.out, args.images, args.val, args.seed, args.video)
    write_coco(data, args.out)
    print(f"{args.out}: train.json ({len(data.train)} images), val.json ({len(data.val)})")


if __name__ == "__main__":
    main()
