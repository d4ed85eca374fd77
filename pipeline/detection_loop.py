"""Per batch: detect, track, analyse, hand to the sinks; and what that needs of a detector."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt

from analytics import SceneAnalyzer
from pipeline.batching import Batch, Batcher
from pipeline.frame_queue import QueuedFrame
from pipeline.metrics import RunMetrics
from pipeline.regions import combine
from pipeline.snapshots import SnapshotKeeper
from pipeline.summary import CameraStats, ProgressCallback
from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    HeldTrackEvents,
    LabelMap,
    StreamEnd,
)
from pipeline.workers import SinkFanout
from trackers import IoUTracker


class PendingResult(Protocol):
    """A submitted batch's detections (`detector.PendingDetections` is one)."""

    def result(self) -> list[Detections]:
        """One `Detections` per frame submitted; raises what detecting them raised."""
        ...


@dataclass(frozen=True)
class ReadyDetections:
    """A batch's detections, already computed: what a non-pipelined `submit` may return."""

    detections: list[Detections]

    def result(self) -> list[Detections]:
        return self.detections


class FrameDetector(Protocol):
    """What the orchestrator needs of a detector (`detector.Detector` is one).

    The loop calls `submit(frames).result()`; when `pipelined`, it submits the next batch
    before collecting the one in flight. A detector with only `detect` may subclass this
    protocol to get the defaults: not pipelined, `submit` detecting at once.
    """

    labels: LabelMap
    background: int | None = None
    """The column of `labels` that is no class (SSD's background), if any."""
    pipelined: bool = False

    def detect(self, frames: Sequence[Frame]) -> list[Detections]: ...

    def submit(self, frames: Sequence[Frame]) -> PendingResult:
        return ReadyDetections(self.detect(frames))

    def describe(self) -> str:
        """One line saying what runs the detector, for the run's start and summary ("":
        nothing to say)."""
        return ""

    @property
    def batch_size(self) -> int:
        """Frames per batch where the config says `batch_size: auto`: a detector built from
        the config says what its options settled (`DetectorOptions.batch_size`)."""
        return 1

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(height, width) every image is resized to, if it is one size (motion regions are
        at least that big, and of its aspect); None: any size will do."""
        return None

    def close(self) -> None:
        """Lets go of what the detector holds beyond itself (threads); the run that built
        the detector calls it once it is done with it. Nothing by default."""
        return None

    def model_image(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8] | None:
        """`image` (RGB uint8 [H, W, 3]) as the detector resizes it, for a camera's reader
        thread to make ahead (`Frame.model_image`); None (the default): the detector
        resizes frames itself."""
        return None


@dataclass(frozen=True)
class _Submitted:
    """A batch whose detections are under way; `pending` is None if it has none to detect."""

    batch: Batch
    pending: PendingResult | None
    submitted_at: float = 0.0
    """`time.monotonic()` when it was submitted."""


class DetectionLoop:
    """Per batch: detect, track per camera, keep each track's best crop (`snapshots`: the
    cameras' snapshot stages, none when no sink writes snapshots), analyse the zones and lines
    of the cameras that have any (`analyzers`), and hand every frame's result to the sinks."""

    def __init__(
        self,
        detector: FrameDetector,
        trackers: dict[str, IoUTracker],
        fanout: SinkFanout,
        stats: dict[str, CameraStats],
        on_progress: ProgressCallback | None,
        snapshots: dict[str, SnapshotKeeper] | None = None,
        analyzers: dict[str, SceneAnalyzer] | None = None,
        metrics: RunMetrics | None = None,
    ) -> None:
        self.detector = detector
        self.metrics = metrics or RunMetrics()
        self.trackers = trackers
        self.snapshots = snapshots or {}
        self.analyzers = analyzers or {}
        self.fanout = fanout
        self.stats = stats
        self.on_progress = on_progress
        self.last_tracked: dict[str, Detections] = {}
        self.last_detected: dict[str, Detections] = {}
        """Each camera's boxes of its last frame detected, before tracking: what a frame
        detected in motion regions keeps outside them."""

    def run(self, batcher: Batcher, stop: threading.Event) -> None:
        """Processes batches, in order, until the batcher has no more.

        With a pipelined detector, batch k+1 is submitted before batch k is collected, but
        only when k+1 is complete already: a batch in flight never waits for the next one
        to arrive. At most one batch is in flight; it is collected before the loop blocks.

        The "ended" events held for their snapshot go out once it settles (`HeldTrackEvents`),
        after each batch and, while the loop waits for frames, as soon as a write settles
        (`Batcher.wake`) or its bound passes: a camera whose frames stop still tells its
        tracks ended.
        """
        in_flight: _Submitted | None = None
        while True:
            if in_flight is None:
                batch = batcher.next_batch(stop, until=self._next_deadline())
                if batch is None:
                    return
                if not batch.items and not batch.finished:  # woken between frames
                    self._release_held()
                    continue
            else:
                batch = batcher.ready_batch()
                if batch is None:
                    self.collect(in_flight)
                    in_flight = None
                    continue
            previous, in_flight = in_flight, None
            try:
                submitted = self.submit(batch)
            finally:
                # k is collected after k+1 is submitted, and also when submitting k+1
                # failed: k was detected before that error, as it would be without pipelining.
                if previous is not None:
                    self.collect(previous)
            if self.detector.pipelined:
                in_flight = submitted
            else:
                self.collect(submitted)

    def submit(self, batch: Batch) -> _Submitted:
        """Starts detecting the batch's frames (if it has any to detect)."""
        started = time.monotonic()
        pending = self.detector.submit(batch.to_detect) if batch.to_detect else None
        return _Submitted(batch, pending, started)

    def collect(self, submitted: _Submitted) -> None:
        """Waits for a submitted batch's detections, tracks them, and hands out the results."""
        batch = submitted.batch
        detections = iter(submitted.pending.result() if submitted.pending is not None else [])
        if submitted.pending is not None:
            latency = time.monotonic() - submitted.submitted_at
            detected = [item.frame.camera_id for item in batch.items if item.detect]
            self.metrics.batch(detected, latency)
        for item in batch.items:
            frame = item.frame
            cam = self.stats[frame.camera_id]
            cam.frames += 1
            if not item.detect:
                last = self.last_tracked.get(frame.camera_id, Detections.empty())
                self.fanout.frame(FrameResult(frame, last, detected=False))
                continue
            found = self._found(item, detections)
            self.last_detected[frame.camera_id] = found
            tracker = self.trackers[frame.camera_id]
            tracked = tracker.update(found, frame)
            self.last_tracked[frame.camera_id] = tracked
            events = tuple(tracker.pop_events())
            result = FrameResult(frame, tracked, events)
            analyzer = self.analyzers.get(frame.camera_id)
            if analyzer is not None:  # a track leaves its zones as it ends, not once written
                result = replace(result, analytics=analyzer.update(result))
            if (keeper := self.snapshots.get(frame.camera_id)) is not None:
                events = keeper.update(frame, tracked, events)
                result = replace(result, track_events=events)
            self.fanout.frame(result)
            cam.detections += len(tracked)
            if events:  # most frames have none
                self.metrics.track_events(frame.camera_id, events)
                cam.tracks += sum(1 for e in events if e.kind == "started")
            if self.on_progress is not None:
                self.on_progress(cam)
        self._release_held()
        for q in batch.finished:
            self._end(q.camera_id, q.error)

    def _release_held(self) -> None:
        """Hands out, camera by camera, the held "ended" events whose snapshot has settled
        since their camera's last frame."""
        for camera_id, keeper in self.snapshots.items():
            if keeper.waiting and (released := keeper.release()):
                self.metrics.track_events(camera_id, released)
                self.fanout.held(HeldTrackEvents(camera_id, released))

    def _next_deadline(self) -> float | None:
        """When the first held event's snapshot write is given up on, if any is held."""
        return min(
            (d for k in self.snapshots.values() if (d := k.next_deadline) is not None),
            default=None,
        )

    def _found(self, item: QueuedFrame, detections: Iterator[Detections]) -> Detections:
        """A detected frame's boxes: the detector's, or, for a frame detected in motion
        regions, those of its regions and the last ones outside them (`regions.combine`)."""
        if not item.regions:
            return next(detections)
        frame = item.frame
        found = [next(detections) for _ in item.regions]
        previous = self.last_detected.get(frame.camera_id, Detections.empty())
        return combine(previous, item.regions, found, frame.width, frame.height)

    def end_streams(self, error: str) -> None:
        """Ends the stream of every camera still going, with `error` (the run cannot go on):
        their open tracks end and reach the sinks with what was detected before."""
        for camera_id in self.trackers:
            if not self.fanout.has_ended(camera_id):
                self._end(camera_id, error)

    def _end(self, camera_id: str, error: str | None) -> None:
        ended = tuple(self.trackers[camera_id].finish())
        if (keeper := self.snapshots.get(camera_id)) is not None:
            ended = keeper.finish(ended)
        self.metrics.track_events(camera_id, ended)
        analyzer = self.analyzers.get(camera_id)
        closed = analyzer.finish() if analyzer is not None else ()
        frames = self.stats[camera_id].frames
        self.fanout.end(StreamEnd(camera_id, frames, ended, error, closed))
