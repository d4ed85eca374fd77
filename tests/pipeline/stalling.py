"""A live camera whose frames stop, and a detector that finds one person on every frame:
for tests of what a run writes while a camera sends nothing."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from fractions import Fraction

import numpy as np

from pipeline.detection_loop import FrameDetector
from pipeline.sources import OpenedSource, RawFrame, Source
from pipeline.types import Detections, Frame, LabelMap

LET_GO_S = 30.0
"""A stalled source lets go by itself after this long, so that a failing test ends."""


class Stalling(Source):
    """A live camera at 25 fps: `frames` frames, then nothing until `resume` is set, blocked
    in its read (`blocks`) or, its stream ended, in reopening (a reconnection under way);
    then `again` frames more, then none. `stalled` is set once it sends nothing."""

    live = True

    def __init__(self, blocks: bool, frames: int, again: int = 0) -> None:
        super().__init__("rtsp://camera.test/stream")
        self.blocks = blocks
        self.count = frames
        self.again = again
        self.opened = 0
        self.stalled = threading.Event()
        self.resume = threading.Event()

    def open(self) -> OpenedSource:
        self.opened += 1
        if self.opened > 1:
            self._stall()
        return OpenedSource(160, 120, Fraction(25))

    def frames(self) -> Iterator[RawFrame]:
        if self.opened == 1:
            yield from self._frames(0, self.count)
            if self.blocks:
                self._stall()
                yield from self._frames(self.count, self.again)
        elif self.opened == 2:
            yield from self._frames(self.count, self.again)

    def close(self) -> None:
        return None

    def _stall(self) -> None:
        self.stalled.set()
        self.resume.wait(LET_GO_S)

    def _frames(self, first: int, count: int) -> Iterator[RawFrame]:
        for index in range(first, first + count):
            time.sleep(0.02)  # a live queue drops frames when behind
            image = np.full((120, 160, 3), index * 4 % 256, np.uint8)
            yield RawFrame(image, index / 25)


class OneBox(FrameDetector):
    """One person on every frame; `seen`: the indices of the frames detected, in order."""

    labels = LabelMap(("background", "person"))

    def __init__(self) -> None:
        self.seen: list[int] = []

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        self.seen += [f.index for f in frames]
        return [
            Detections(
                xyxy=np.array([[10, 10, 40, 60]], np.float32),
                score=np.full(1, 0.9, np.float32),
                label=np.ones(1, np.int64),
            )
            for _ in frames
        ]
