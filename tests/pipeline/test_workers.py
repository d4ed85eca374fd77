"""Sink workers: a closed worker never makes its producer wait; a failed sink is reported
once, with every result it never got counted."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from pipeline.types import Detections, Frame, FrameResult
from pipeline.workers import SinkWorker
from sinks.base import Sink, SinkError


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
