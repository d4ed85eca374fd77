"""A detection dataset in memory: labelled images, whatever format they were read from.

`read_dataset` detects the format of a path (COCO JSON, Pascal VOC folder, YOLO data.yaml;
the readers live in `detector.training.formats`), checks every annotation and returns a
`DetectionData`, or raises one `DatasetError` that lists every problem found.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from detector.training.images import BROKEN_LINK

BACKGROUND = "background"
"""Name of class 0, which every dataset's `class_names` starts with."""

EXPORTED_ANNOTATIONS = "annotations.json"
"""The COCO file `python -m pipeline dataset export` writes into its folder: a folder
holding it (and no train.json) is that COCO dataset."""
SHOWN_PROBLEMS = 20
"""How many problems a `DatasetError` message lists before "and N more"."""


class DatasetError(ValueError):
    """A dataset that cannot be used as it is.

    `.problems` holds every problem found, each "FILE:LINE: what" or "FILE: annotation id
    N: what" (FILE relative to the dataset); the message lists the first `SHOWN_PROBLEMS`.
    """

    def __init__(self, problems: Iterable[str] | str, dataset: str | Path | None = None) -> None:
        # one string is one problem (torch re-raises a worker's error from its message alone)
        self.problems = (problems,) if isinstance(problems, str) else tuple(problems)
        self.dataset = None if dataset is None else str(dataset)
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"dataset {self.dataset}" if self.dataset else "dataset"
        if len(self.problems) == 1:
            return _one_line(f"{where}: {self.problems[0]}")
        lines = [f"{where}: {len(self.problems)} problems"]
        lines += [f"  {p}" for p in self.problems[:SHOWN_PROBLEMS]]
        if len(self.problems) > SHOWN_PROBLEMS:
            lines.append(f"  and {len(self.problems) - SHOWN_PROBLEMS} more")
        return "\n".join(_one_line(line) for line in lines)


def _one_line(text: str) -> str:
    """`text` with the characters a terminal would not print as they are (a newline or an
    escape sequence in a file name) written as Python escapes: one problem, one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass(frozen=True, eq=False)
class Sample:
    """One labelled image.

    Attributes:
        image: absolute path of the image file.
        width, height: image size in pixels, as the annotation declares it (checked against
            the file's header by `read_dataset` and against the pixels when decoded).
        boxes: float32 [N, 4], xyxy in absolute pixels of the image, within it.
        labels: int64 [N], class indices 1..K into `DetectionData.class_names`.
        origin: where the sample came from, for messages ("train.json: image id 12").
    """

    image: Path
    width: int
    height: int
    boxes: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int64]
    origin: str

    def __post_init__(self) -> None:
        boxes = np.array(self.boxes, dtype=np.float32, copy=True).reshape(-1, 4)
        labels = np.array(self.labels, dtype=np.int64, copy=True).reshape(-1)
        if len(boxes) != len(labels):
            raise ValueError(
                f"{self.origin}: {len(boxes)} boxes but {len(labels)} labels in a Sample"
            )
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"{self.origin}: image size {self.width}x{self.height}")
        # Private, read-only copies: a Sample is shared by datasets, splits and workers.
        boxes.flags.writeable = False
        labels.flags.writeable = False
        object.__setattr__(self, "boxes", boxes)
        object.__setattr__(self, "labels", labels)


@dataclass(frozen=True)
class DetectionData:
    """A dataset: class names ("background" first) and its training and validation images.

    `val` is empty when the data has no split of its own: use `split_validation`.
    """

    class_names: tuple[str, ...]
    train: tuple[Sample, ...]
    val: tuple[Sample, ...]
    folder: Path | None = None
    """The dataset's folder, absolute, links followed, that messages name its files relative
    to (the folder of its COCO JSON or data.yaml, the VOC folder); None for data made in
    code."""

    def __post_init__(self) -> None:
        if not self.class_names or self.class_names[0] != BACKGROUND:
            raise ValueError(f"class_names must start with {BACKGROUND!r}: {self.class_names}")


def read_dataset(path: str | Path) -> DetectionData:
    """The dataset at `path`, its format detected from what is there:

    - a `.json` file: COCO, all of it training data;
    - a folder holding `train.json` (and optionally `val.json`): COCO;
    - a folder holding `annotations.json` (what `dataset export` writes): COCO;
    - a `.yaml`/`.yml` file, or a folder holding `data.yaml`: YOLO;
    - a folder holding `Annotations/` and `JPEGImages/`: Pascal VOC.

    Raises DatasetError listing every problem (bad annotation, missing image, malformed
    file) or saying why `path` is not a dataset.
    """
    # The readers build Samples: they import this module, so it imports them only here.
    from detector.training.formats import coco, voc, yolo

    root = Path(path)
    if root.is_file():
        suffix = root.suffix.lower()
        if suffix == ".json":
            return coco.read_coco(root)
        if suffix in (".yaml", ".yml"):
            return yolo.read_yolo(root)
    elif root.is_dir():
        if (root / "Annotations").is_dir() and (root / "JPEGImages").is_dir():
            return voc.read_voc(root)
        if (root / "data.yaml").is_file():
            return yolo.read_yolo(root / "data.yaml")
        if (root / "train.json").is_file():
            val = root / "val.json"
            return coco.read_coco(root / "train.json", val if val.is_file() else None)
        if (root / EXPORTED_ANNOTATIONS).is_file():
            return coco.read_coco(root / EXPORTED_ANNOTATIONS)
    else:
        raise DatasetError([_neither_file_nor_folder(root)], path)
    raise DatasetError(
        [
            "not a dataset: expected a COCO .json file (or a folder with train.json or "
            f"{EXPORTED_ANNOTATIONS}), "
            "a YOLO data.yaml, or a Pascal VOC folder with Annotations/ and JPEGImages/"
        ],
        path,
    )


def _neither_file_nor_folder(path: Path) -> str:
    """Why `path`, which is no file or folder, is not a dataset, in a few words."""
    if not os.path.lexists(path):
        return "no such file or folder"
    if path.is_symlink() and not path.exists():
        return BROKEN_LINK
    return "not a regular file or folder (a device or a pipe)"


def split_validation(
    samples: Sequence[Sample], fraction: float, seed: int
) -> tuple[tuple[Sample, ...], tuple[Sample, ...]]:
    """(train, val): `fraction` of `samples` drawn at random for validation, the rest kept.

    The draw depends only on `seed` and the number of samples; both parts keep the input
    order. `fraction` in [0, 1): 0 gives no validation samples, anything above gives at
    least one (and leaves at least one for training).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"validation fraction must be in [0, 1), got {fraction}")
    n = len(samples)
    count = 0 if fraction == 0.0 else max(1, round(n * fraction))
    if count and count >= n:
        raise DatasetError(
            [f"cannot hold out {fraction:.0%} of {n} image(s) for validation and still train"]
        )
    picked = np.random.default_rng(seed).permutation(n)[:count]
    is_val = np.zeros(n, dtype=bool)
    is_val[picked] = True
    train = tuple(s for s, v in zip(samples, is_val, strict=True) if not v)
    val = tuple(s for s, v in zip(samples, is_val, strict=True) if v)
    return train, val
