"""A live camera whose frames stop, a detector that finds one person on every frame, and a
run in a thread of its own: for tests of what a run writes while a camera sends nothing;
and `people`, the boxes a test detector finds (`Hopping`: one person, new tracks)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from fractions import Fraction

import numpy as np

from pipeline.detection_loop import FrameDetector
from pipeline.runner import Pipeline
from pipeline.sources import OpenedSource, RawFrame, Source
from pipeline.summary import RunSummary
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

    def open(self, stop: threading.Event | None = None) -> OpenedSource:
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


PERSON = (10.0, 10.0, 40.0, 60.0)
"""Where `people` puts a person unless told: x1, y1, x2, y2 in pixels."""


def people(count: int = 1, box: tuple[float, float, float, float] = PERSON) -> Detections:
    """`count` people (label 1, score 0.9), all at `box`: what a test detector finds on a
    frame (`people(0)`: nobody)."""
    return Detections(
        xyxy=np.array([box] * count, np.float32).reshape(count, 4),
        score=np.full(count, 0.9, np.float32),
        label=np.ones(count, np.int64),
    )


class OneBox(FrameDetector):
    """One person on every frame; `seen`: the indices of the frames detected, in order."""

    labels = LabelMap(("background", "person"))

    def __init__(self) -> None:
        self.seen: list[int] = []

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        self.seen += [f.index for f in frames]
        return [people() for _ in frames]


class Hopping(FrameDetector):
    """One person, who jumps to a new place every 5 frames: a new track each time."""

    labels = LabelMap(("background", "person"))

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        xs = [10 + 30 * ((f.index // 5) % 2) for f in frames]
        return [people(box=(x, 10, x + 20, 60)) for x in xs]


class Running:
    """`pipeline.run()` in a thread of its own while in the `with` block; leaving it stops the
    run, lets `source` go and waits for the run (10 s at most). `summary`: the run's, once
    it has ended."""

    def __init__(self, pipeline: Pipeline, source: Stalling) -> None:
        self.pipeline = pipeline
        self.source = source
        self.summary: RunSummary | None = None
        self._thread = threading.Thread(target=self._run)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> Running:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.pipeline.stop.set()
        self.source.resume.set()
        self._thread.join(10)

    def _run(self) -> None:
        self.summary = self.pipeline.run()
