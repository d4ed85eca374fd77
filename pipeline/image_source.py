"""Frames from a folder of images (or a glob), in name order at a set frame rate; and the
checks `validate` and `run` share: which files are images, and why a folder gives none."""

from __future__ import annotations

import glob
import logging
import os
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from detector.training.jpeg import CUT_SHORT, cut_short
from pipeline.folders import IMAGE_SUFFIXES
from pipeline.sources import OpenedSource, RawFrame, Source, SourceError

log = logging.getLogger(__name__)

JPEG_START = b"\xff\xd8\xff"
"""The first bytes of a JPEG file (its start marker and the next one's first byte), whatever
its name: OpenCV decodes a file by what it holds."""
NOT_AN_IMAGE = "OpenCV reads no image in it"


class UnreadableImage(Exception):
    """An image file that gives no frame; the message says why in a few words."""


def image_files(pattern: str) -> list[Path]:
    """The images of the folder or glob `pattern`, in name order: files with a suffix in
    `IMAGE_SUFFIXES` (any case)."""
    if os.path.isdir(pattern):  # not Path.is_dir, which raises where a folder may not be entered
        candidates = sorted(Path(pattern).iterdir())
    else:
        candidates = sorted(Path(p) for p in glob.glob(pattern))
    return [p for p in candidates if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]


def no_images(pattern: str) -> str:
    """Why an image source has nothing to read: one line naming the suffixes looked for."""
    return f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {pattern}"


def unreadable_first_image(name: str, why: str) -> str:
    """Why an image source cannot start: its first image, which sets the frame size, gives
    no frame (`why`: `UnreadableImage`'s message; a later one is skipped)."""
    return f"cannot read the image {name}, the first, which sets the frame size: {why}"


def read_image(path: Path) -> npt.NDArray[np.uint8]:
    """The image at `path` as RGB uint8 [H, W, 3]. UnreadableImage where OpenCV reads none
    in it, and for a JPEG cut short (a copy, or a camera's upload to the folder, not done
    yet): OpenCV would decode its missing part grey, and its libjpeg print "Premature end of
    JPEG file" on stderr, naming no file."""
    try:
        with path.open("rb") as file:
            if file.read(len(JPEG_START)) == JPEG_START and cut_short(path):
                raise UnreadableImage(CUT_SHORT)
    except OSError as exc:
        raise UnreadableImage(f"cannot be read ({exc.strerror or exc})") from None
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UnreadableImage(NOT_AN_IMAGE)
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # type: ignore[return-value]


class ImageFolderSource(Source):
    """The images of a folder (or a glob) in name order, as frames at `fps`."""

    def __init__(self, pattern: str, fps: float) -> None:
        super().__init__(pattern)
        self.pattern = pattern
        self.fps = fps
        self._files: list[Path] = []

    def problem(self) -> str | None:
        return None if image_files(self.pattern) else no_images(self.pattern)

    def open(self, stop: threading.Event | None = None) -> OpenedSource:
        self._files = image_files(self.pattern)
        if not self._files:
            raise SourceError(no_images(self.pattern))
        try:
            first = read_image(self._files[0])
        except UnreadableImage as exc:
            raise SourceError(unreadable_first_image(str(self._files[0]), str(exc))) from None
        height, width = first.shape[:2]
        return self._opened(
            width, height, Fraction(self.fps).limit_denominator(1001), len(self._files)
        )

    def frames(self) -> Iterator[RawFrame]:
        for index, path in enumerate(self._files):
            try:
                image = read_image(path)
            except UnreadableImage as exc:
                self.decode_errors += 1
                log.warning("%s: skipped unreadable image %s: %s", self.name, path.name, exc)
                continue
            yield RawFrame(self._fit(image), index / self.fps)

    def close(self) -> None:
        self._files = []
