"""The loop with a pipelined detector: batch k+1 is submitted before batch k is collected,
only when k+1 is ready, and nothing changes in what reaches the sinks. Runs on the CPU with
fake detectors that log their calls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytest

from pipeline.batching import Batcher
from pipeline.config import parse_config
from pipeline.detection_loop import DetectionLoop, FrameDetector
from pipeline.frame_queue import FrameQueue, QueuedFrame, QueuePolicy
from pipeline.runner import Pipeline
from pipeline.summary import CameraStats
from pipeline.types import Detections, Frame, FrameResult, LabelMap, StreamEnd
from pipeline.workers import SinkFanout, SinkWorker
from sinks.base import Sink
from tests.conftest import VideoFactory

LABELS = LabelMap(("background", "person"))


def box(frame: Frame) -> Detections:
    """One confident box that moves right one pixel a frame: it makes a track."""
    x = 10 + frame.index
    return Detections(
        xyxy=np.array([[x, 10, x + 40, 60]], np.float32),
        score=np.array([0.9], np.float32),
        label=np.array([1], np.int64),
    )


class EagerDetector(FrameDetector):
    """Not pipelined: the protocol's default `submit` runs `detect` at once."""

    labels = LABELS

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.failed_batch: list[Frame] = []

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        if self.fail_at is not None and any(f.index == self.fail_at for f in frames):
            self.failed_batch = list(frames)
            raise RuntimeError("detector broke")
        return [box(f) for f in frames]


@dataclass
class PipelinedDetector(FrameDetector):
    """Pipelined; logs "submit k" and "result k" (k counts submitted batches).

    `on_submit` / `on_result` run in those calls with k (to move the test's world on);
    `fail_in` ("submit" or "result") raises for the batch holding frame index `fail_at`.
    """

    labels: LabelMap = LABELS
    pipelined: bool = True
    calls: list[str] = field(default_factory=list)
    on_submit: Callable[[int], None] | None = None
    on_result: Callable[[int], None] | None = None
    fail_in: str | None = None
    fail_at: int = -1
    failed_batch: list[Frame] = field(default_factory=list)

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        return self.submit(frames).result()

    def submit(self, frames: Sequence[Frame]) -> FakePending:
        k = sum(call.startswith("submit") for call in self.calls)
        self.calls.append(f"submit {k}")
        if self.on_submit is not None:
            self.on_submit(k)
        fails = any(f.index == self.fail_at for f in frames)
        if fails:
            self.failed_batch = list(frames)
        if fails and self.fail_in == "submit":
            raise RuntimeError("detector broke")
        return FakePending(self, k, [box(f) for f in frames], fails and self.fail_in == "result")


@dataclass
class FakePending:
    detector: PipelinedDetector
    k: int
    detections: list[Detections]
    fails: bool

    def result(self) -> list[Detections]:
        self.detector.calls.append(f"result {self.k}")
        if self.detector.on_result is not None:
            self.detector.on_result(self.k)
        if self.fails:
            raise RuntimeError("detector broke")
        return self.detections


class Recorder(Sink):
    """Keeps every result and stream end, in the order they arrive."""

    name = "recorder"

    def __init__(self) -> None:
        self.messages: list[FrameResult | StreamEnd] = []
        self.closed = False

    def write(self, result: FrameResult) -> None:
        self.messages.append(result)

    def end(self, stream_end: StreamEnd) -> None:
        self.messages.append(stream_end)

    def close(self) -> None:
        self.closed = True

    def frames(self, camera: str) -> list[int]:
        return [
            m.frame.index
            for m in self.messages
            if isinstance(m, FrameResult) and m.frame.camera_id == camera
        ]

    def summary(self) -> list[tuple[object, ...]]:
        """Everything the sink was told, comparable with ==."""
        out: list[tuple[object, ...]] = []
        for m in self.messages:
            if isinstance(m, StreamEnd):
                out.append(("end", m.camera_id, m.frames, m.track_events, m.error))
            else:
                d = m.detections
                out.append(
                    (
                        m.frame.camera_id,
                        m.frame.index,
                        m.detected,
                        d.xyxy.tolist(),
                        d.track_id.tolist(),
                        m.track_events,
                    )
                )
        return out


class EveryFrameRecorder(Recorder):
    wants_every_frame = True


def item(camera: str, index: int, detect: bool = True) -> QueuedFrame:
    image = np.zeros((120, 160, 3), np.uint8)
    return QueuedFrame(Frame(camera, index, index / 10, 1000.0 + index, image), detect)


@dataclass
class World:
    """Camera queues feeding a real `Batcher`, and recording sinks behind real workers."""

    queues: dict[str, FrameQueue]
    batcher: Batcher
    stop: threading.Event
    events: Recorder = field(default_factory=Recorder)
    video: EveryFrameRecorder = field(default_factory=EveryFrameRecorder)

    def put(self, frame: QueuedFrame) -> None:
        self.queues[frame.frame.camera_id].put(frame, self.stop)

    def run(self, detector: FrameDetector | PipelinedDetector) -> None:
        """The loop until the batcher is done; the sinks have everything when it returns."""
        from trackers import IoUTracker

        workers = [SinkWorker(self.events, 1000), SinkWorker(self.video, 1000)]
        trackers = {c: IoUTracker(c) for c in self.queues}
        stats = {c: CameraStats(c, "test") for c in self.queues}
        try:
            loop = DetectionLoop(detector, trackers, SinkFanout(workers), stats, None)
            loop.run(self.batcher, self.stop)
        finally:
            for worker in workers:
                worker.close()


def world(
    frames: Sequence[QueuedFrame],
    *,
    cameras: Sequence[str] = ("a",),
    batch_size: int = 2,
    max_wait: float = 0.01,
    closed: bool = True,
) -> World:
    cond, stop = threading.Condition(), threading.Event()
    queues = {c: FrameQueue(c, 100, QueuePolicy.BLOCK, cond) for c in cameras}
    for frame in frames:
        queues[frame.frame.camera_id].put(frame, stop)
    if closed:
        for q in queues.values():
            q.close()
    return World(queues, Batcher(list(queues.values()), cond, batch_size, max_wait), stop)


def two_cameras() -> list[QueuedFrame]:
    """Camera a: 6 detected frames then 2 skipped; b: 2 detected then 1 skipped. With
    batch_size 2 the last batch holds only a's skipped frames and a's end."""
    return [
        *(item("a", i, detect=i < 6) for i in range(8)),
        *(item("b", i, detect=i < 2) for i in range(3)),
    ]


def test_next_batch_is_submitted_before_the_current_one_is_collected_when_it_is_ready():
    w = world([item("a", i) for i in range(5)], batch_size=2)
    detector = PipelinedDetector()
    w.run(detector)
    assert detector.calls == [
        "submit 0",
        "submit 1",
        "result 0",
        "submit 2",
        "result 1",
        "result 2",
    ]


def test_sinks_get_every_camera_in_frame_order_and_what_a_run_without_pipelining_gives():
    pipelined, eager = (
        world(two_cameras(), cameras=("a", "b")),
        world(two_cameras(), cameras=("a", "b")),
    )
    detector = PipelinedDetector()
    pipelined.run(detector)
    eager.run(EagerDetector())
    assert "result 0" in detector.calls[2:]  # it did run ahead
    assert pipelined.events.frames("a") == list(range(6))
    assert pipelined.events.frames("b") == [0, 1]
    assert pipelined.video.frames("a") == list(range(8))
    assert pipelined.video.frames("b") == [0, 1, 2]
    for recorder in (pipelined.events, pipelined.video):
        ends = [m for m in recorder.messages if isinstance(m, StreamEnd)]
        assert sorted(e.camera_id for e in ends) == ["a", "b"]
        assert any(e.track_events for e in ends)  # tracks were made and closed
    assert pipelined.events.summary() == eager.events.summary()
    assert pipelined.video.summary() == eager.video.summary()


def test_the_last_batch_in_flight_is_collected_at_the_end_of_the_stream():
    w = world([item("a", i) for i in range(3)], batch_size=2)
    detector = PipelinedDetector()
    w.run(detector)
    assert detector.calls[-1] == "result 1"
    assert w.events.frames("a") == [0, 1, 2]
    assert isinstance(w.events.messages[-1], StreamEnd)


def test_the_batch_in_flight_is_collected_when_the_run_is_stopped():
    # open queue: the batcher ends only because of `stop`, set while batch 1 is submitted
    w = world([item("a", i) for i in range(4)], batch_size=2, closed=False)
    detector = PipelinedDetector(on_submit=lambda k: w.stop.set() if k == 1 else None)
    w.run(detector)
    assert detector.calls == ["submit 0", "submit 1", "result 0", "result 1"]
    assert w.events.frames("a") == [0, 1, 2, 3]


def test_a_batch_is_not_held_back_waiting_for_the_next_one():
    # Frame 2 waits in the batcher for a partner due in a minute; frame 3 only comes once
    # batch 0's result is collected: a loop that waits for batch 1 before collecting
    # batch 0 would stall until the watchdog ends the run.
    w = world([item("a", i) for i in range(3)], batch_size=2, max_wait=60, closed=False)

    def after_result(k: int) -> None:
        if k == 0:
            w.put(item("a", 3))
            w.queues["a"].close()

    def watchdog() -> None:
        w.stop.set()
        w.queues["a"].close()

    timer = threading.Timer(10, watchdog)
    timer.start()
    started = time.monotonic()
    detector = PipelinedDetector(on_result=after_result)
    try:
        w.run(detector)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 5
    assert detector.calls == ["submit 0", "result 0", "submit 1", "result 1"]
    assert w.events.frames("a") == [0, 1, 2, 3]


def test_a_failed_submit_still_delivers_the_batch_in_flight_then_raises():
    w = world([item("a", i) for i in range(8)], batch_size=2)
    detector = PipelinedDetector(fail_in="submit", fail_at=4)
    with pytest.raises(RuntimeError, match="detector broke"):
        w.run(detector)
    assert detector.calls == ["submit 0", "submit 1", "result 0", "submit 2", "result 1"]
    assert w.events.frames("a") == [0, 1, 2, 3]  # batch 1 was in flight when batch 2 failed


@pytest.mark.parametrize(
    "detector",
    [
        EagerDetector(fail_at=6),
        PipelinedDetector(fail_in="result", fail_at=6),
        PipelinedDetector(fail_in="submit", fail_at=6),
    ],
    ids=["detect", "result", "submit"],
)
def test_a_detector_error_ends_every_stream_the_same_way_from_detect_submit_or_result(
    synthetic_video: VideoFactory, detector: EagerDetector | PipelinedDetector
):
    clip = synthetic_video(frames=20)
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {clip}\ndetector: {{batch_size: 2, max_wait_ms: 5}}\n"
    )
    recorder = Recorder()
    pipeline = Pipeline(config, detector=detector, extra_sinks=[recorder])
    summary = pipeline.run()
    assert not summary.ok and "detector broke" in (summary.detector_error or "")
    assert not summary.interrupted
    # every frame of the batches before the failed one was written, then the stream ended
    # with the error (open tracks ended with it), and the sink was closed
    first_failed = min(f.index for f in detector.failed_batch)
    assert recorder.frames("cam") == list(range(first_failed))
    (end,) = [m for m in recorder.messages if isinstance(m, StreamEnd)]
    assert recorder.messages[-1] is end and "detector broke" in (end.error or "")
    assert end.frames == first_failed
    events = [e for m in recorder.messages for e in m.track_events]
    started = sorted(e.track.track_id for e in events if e.kind == "started")
    assert started and started == sorted(e.track.track_id for e in events if e.kind == "ended")
    assert recorder.closed and pipeline.stop.is_set()
