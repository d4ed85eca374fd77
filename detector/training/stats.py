"""What a dataset holds: images and boxes per class, and how big the boxes are."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.training.samples import DetectionData, Sample

SIZE_EDGES = (0, 16, 32, 64, 128, 256)
"""Lower edges, in pixels, of the box-size bins: the side of a square of the box's area.
COCO calls boxes under 32 small and from 96 large; an SSD at 300 pixels finds boxes under
about 16 pixels of a 1080p frame poorly (docs/training.md)."""


@dataclass(frozen=True)
class ClassStats:
    """One class over some images."""

    name: str
    boxes: int
    images: int
    """Images holding at least one of its boxes."""
    sizes: tuple[int, ...]
    """Boxes per size bin (`SIZE_EDGES`)."""


@dataclass(frozen=True)
class SplitStats:
    """Some images: how many, how many without a box, and per class."""

    name: str
    images: int
    empty_images: int
    classes: tuple[ClassStats, ...]
    outside: int = 0
    """Images whose file lies outside the dataset's folder, by its path or a symbolic link
    on the way: allowed (images are often kept apart from their annotations), but worth
    knowing of a dataset from elsewhere."""

    @property
    def boxes(self) -> int:
        return sum(c.boxes for c in self.classes)


def dataset_stats(data: DetectionData) -> tuple[SplitStats, ...]:
    """Counts for the training images and, when the data has them, the validation ones;
    `outside` counts those not under the data's `folder`, when it has one."""
    splits = [("train", data.train)] + ([("val", data.val)] if data.val else [])
    return tuple(
        split_stats(name, samples, data.class_names, data.folder) for name, samples in splits
    )


def split_stats(
    name: str,
    samples: Sequence[Sample],
    class_names: Sequence[str],
    folder: Path | None = None,
) -> SplitStats:
    classes = []
    for label, class_name in enumerate(class_names):
        if label == 0:
            continue
        boxes = [s.boxes[s.labels == label] for s in samples]
        found = np.concatenate(boxes) if boxes else np.zeros((0, 4), np.float32)
        side = np.sqrt(
            np.clip(found[:, 2] - found[:, 0], 0, None)
            * np.clip(found[:, 3] - found[:, 1], 0, None)
        )
        bins = np.digitize(side, SIZE_EDGES[1:])  # 0 .. len(SIZE_EDGES) - 1
        classes.append(
            ClassStats(
                name=class_name,
                boxes=len(found),
                images=sum(1 for b in boxes if len(b)),
                sizes=tuple(int(n) for n in np.bincount(bins, minlength=len(SIZE_EDGES))),
            )
        )
    empty = sum(1 for s in samples if len(s.labels) == 0)
    outside = 0 if folder is None else sum(not s.image.is_relative_to(folder) for s in samples)
    return SplitStats(name, len(samples), empty, tuple(classes), outside)
