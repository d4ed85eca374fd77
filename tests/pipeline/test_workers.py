"""Sink workers: a closed worker never makes its producer wait; a failed sink is reported
once, with every result it never got counted; held "ended" events reach a sink without a
`held_events` of its own in its camera's next frame or its end; a sink's queue is full by
the bytes of its messages' frames as by their count."""

from __future__ import annotations

import queue
import threading
import time

import numpy as np
import pytest

from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    HeldTrackEvents,
    StreamEnd,
    TrackEvent,
    TrackSummary,
)
from pipeline.workers import SinkQueue, SinkWorker
from sinks.base import ForwardingSink, Sink, SinkError


class Quiet(Sink):
    name = "quiet"

    def write(self, result: FrameResult) -> None:
        return None

    def close(self) -> None:
        return None


def test_handing_messages_to_a_closed_worker_returns_at_once() -> None:
    worker = SinkWorker(Quiet(), 1)
    worker.close(timeout=5)
    done = threading.Event()

    def hand_over() -> None:
        for _ in range(3):  # more than its queue holds
            worker.run_ended("finished")
        done.set()

    threading.Thread(target=hand_over, daemon=True).start()
    assert done.wait(5)


class FailsOnSecondWrite(Sink):
    """Writes one frame, then fails with `error`."""

    name = "fragile"

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.written = 0

    def write(self, result: FrameResult) -> None:
        if self.written == 1:
            raise self.error
        self.written += 1

    def close(self) -> None:
        return None


def results(n: int) -> list[FrameResult]:
    image = np.zeros((8, 8, 3), np.uint8)
    return [FrameResult(Frame("cam", i, i / 25, 0.0, image), Detections.empty()) for i in range(n)]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (SinkError("fragile sink: disk gone"), "fragile sink: disk gone"),
        (OSError("boom"), "fragile sink failed: boom"),
    ],
)
def test_a_failed_sink_is_named_once_and_every_result_it_never_got_is_counted(
    error: Exception, message: str
) -> None:
    sink = FailsOnSecondWrite(error)
    worker = SinkWorker(sink, 2)
    for result in results(10):
        worker.submit(result)
    worker.close(timeout=5)
    assert sink.written == 1 and worker.error == message
    # 10 results: one written, one failed in the writing (the error), 8 never handed over
    assert worker.unwritten == 8
    assert worker.summary_error == f"{message} (8 frame results after it not written)"


class Ticked(Sink):
    """Sets `ticked` on its first tick; its tick raises `error` when given one."""

    name = "ticking"

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.ticked = threading.Event()

    def write(self, result: FrameResult) -> None:
        return None

    def tick(self) -> None:
        self.ticked.set()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        return None


def test_a_sink_is_ticked_while_messages_keep_its_queue_busy() -> None:
    sink = Ticked()
    worker = SinkWorker(sink, 4)
    try:
        # a message every 5 ms: the queue is never empty for long (another camera's frames)
        for result in results(1000):
            if sink.ticked.is_set():
                break
            worker.submit(result)
            sink.ticked.wait(0.005)
    finally:
        worker.close(timeout=5)
    assert sink.ticked.is_set() and worker.written > 0


def test_a_sink_whose_tick_fails_is_reported_like_a_failed_write() -> None:
    sink = Ticked(SinkError("ticking sink: disk gone"))
    worker = SinkWorker(sink, 2)
    assert sink.ticked.wait(5)
    worker.close(timeout=5)
    assert worker.failed and worker.error == "ticking sink: disk gone"


class FromFrames(Sink):
    """Records the track events of each `write` and `end`, and knows nothing of
    `held_events`: ("frame", camera, index, track ids) and ("end", camera, track ids)."""

    name = "from-frames"

    def __init__(self) -> None:
        self.got: list[tuple[object, ...]] = []

    def write(self, result: FrameResult) -> None:
        ids = [e.track.track_id for e in result.track_events]
        self.got.append(("frame", result.frame.camera_id, result.frame.index, ids))

    def end(self, stream_end: StreamEnd) -> None:
        self.got.append(
            ("end", stream_end.camera_id, [e.track.track_id for e in stream_end.track_events])
        )

    def close(self) -> None:
        return None


class TakesHeld(FromFrames):
    """`FromFrames`, with a `held_events` of its own: ("held", camera, track ids)."""

    def held_events(self, held: HeldTrackEvents) -> None:
        self.got.append(("held", held.camera_id, [e.track.track_id for e in held.track_events]))


def ended(camera: str, track_id: int) -> TrackEvent:
    box = (0.0, 0.0, 1.0, 1.0)
    summary = TrackSummary(camera, track_id, 1, 0, 0, 0.0, 0.0, 1, 0.9, box, box)
    return TrackEvent("ended", summary)


def frame(camera: str, index: int, *track_ids: int) -> FrameResult:
    image = np.zeros((8, 8, 3), np.uint8)
    events = tuple(ended(camera, t) for t in track_ids)
    return FrameResult(Frame(camera, index, index / 25, 0.0, image), Detections.empty(), events)


def feed(sink: Sink) -> None:
    """Camera "a": frame 0, held track 1, frame 1 (which ends track 2), held track 3, its
    end; camera "b": held track 7 between its frames 0 and 1."""
    worker = SinkWorker(sink, 16)
    worker.submit(frame("a", 0))
    worker.submit(frame("b", 0))
    worker.submit(HeldTrackEvents("a", (ended("a", 1),)))
    worker.submit(HeldTrackEvents("b", (ended("b", 7),)))
    worker.submit(frame("a", 1, 2))
    worker.submit(HeldTrackEvents("a", (ended("a", 3),)))
    worker.submit(frame("b", 1))
    worker.submit(StreamEnd("a", 2, (ended("a", 4),)))
    worker.close(timeout=5)
    assert worker.error is None


def test_a_sink_without_held_events_finds_them_first_in_its_cameras_next_frame_or_end() -> None:
    bare, wrapped = FromFrames(), FromFrames()
    feed(bare)
    feed(ForwardingSink(wrapped))  # a wrapper passes on what its sink takes
    assert (
        bare.got
        == wrapped.got
        == [
            ("frame", "a", 0, []),
            ("frame", "b", 0, []),
            ("frame", "a", 1, [1, 2]),
            ("frame", "b", 1, [7]),
            ("end", "a", [3, 4]),
        ]
    )


def test_a_sink_with_held_events_of_its_own_gets_them_there_and_only_there() -> None:
    sink = TakesHeld()
    feed(sink)
    assert sink.got == [
        ("frame", "a", 0, []),
        ("frame", "b", 0, []),
        ("held", "a", [1]),
        ("held", "b", [7]),
        ("frame", "a", 1, [2]),
        ("held", "a", [3]),
        ("frame", "b", 1, []),
        ("end", "a", [4]),
    ]


FRAME_BYTES = 8 * 8 * 3  # each of `results`' frames


def test_a_sink_queue_full_by_bytes_refuses_a_frame_though_under_its_count() -> None:
    bounded = SinkQueue(10, max_bytes=2 * FRAME_BYTES)
    first, second, third = results(3)
    bounded.put(first, 0)
    bounded.put(second, 0)
    with pytest.raises(queue.Full):
        bounded.put(third, 0)
    assert (bounded.qsize(), bounded.nbytes) == (2, 2 * FRAME_BYTES)
    assert bounded.get(0) is first
    bounded.put(third, 0)  # the frame taken made room
    assert bounded.nbytes == 2 * FRAME_BYTES


def test_one_message_larger_than_the_bytes_bound_still_passes_alone() -> None:
    bounded = SinkQueue(10, max_bytes=1)
    first, second = results(2)
    bounded.put(first, 0)
    with pytest.raises(queue.Full):
        bounded.put(second, 0)
    assert bounded.get(0) is first
    bounded.put(second, 0)


def test_messages_without_frames_are_not_counted_in_a_sink_queues_bytes() -> None:
    bounded = SinkQueue(3, max_bytes=FRAME_BYTES)
    bounded.put(results(1)[0], 0)
    bounded.put(HeldTrackEvents("cam", (ended("cam", 1),)), 0)
    bounded.put(StreamEnd("cam", 1), 0)  # the bytes are full, yet they pass
    assert (bounded.qsize(), bounded.nbytes) == (3, FRAME_BYTES)
    with pytest.raises(queue.Full):  # the count still bounds them
        bounded.put(StreamEnd("cam", 1), 0)


class HeldUntilReleased(Sink):
    """Holds its first `write` until `release` is set."""

    name = "held"

    def __init__(self) -> None:
        self.writing = threading.Event()
        self.release = threading.Event()
        self.frames: list[int] = []

    def write(self, result: FrameResult) -> None:
        self.writing.set()
        self.release.wait(5)
        self.frames.append(result.frame.index)

    def close(self) -> None:
        return None


def test_a_sink_worker_full_by_bytes_blocks_its_producer_until_the_sink_takes_a_frame() -> None:
    sink = HeldUntilReleased()
    worker = SinkWorker(sink, 100, max_bytes=2 * FRAME_BYTES)
    first, *rest = results(4)
    worker.submit(first)
    assert sink.writing.wait(5)  # taken from the queue, held in `write`
    handed = threading.Event()

    def hand_over() -> None:
        for result in rest:  # one more than the bytes hold
            worker.submit(result)
        handed.set()

    producer = threading.Thread(target=hand_over, daemon=True)
    producer.start()
    deadline = time.monotonic() + 5
    while worker.buffered < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert worker.buffered == 2
    assert not handed.wait(0.2)  # the third waits for room: nothing dropped or lost
    sink.release.set()
    assert handed.wait(5)
    worker.close(timeout=5)
    assert sink.frames == [0, 1, 2, 3]
    assert (worker.written, worker.unwritten) == (4, 0)
