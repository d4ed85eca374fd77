"""A camera's bounded frame queue: what a full queue does, and how it closes."""

from __future__ import annotations

import threading
import time

import numpy as np

from pipeline.frame_queue import FrameQueue, QueuedFrame, QueuePolicy
from pipeline.types import Frame


def _item(camera: str, index: int, detect: bool = True) -> QueuedFrame:
    frame = Frame(camera, index, index / 10, time.time(), np.zeros((2, 2, 3), np.uint8))
    return QueuedFrame(frame, detect)


def test_drop_oldest_queue_keeps_the_newest_frames_and_counts_drops() -> None:
    q = FrameQueue("live", 3, QueuePolicy.DROP_OLDEST, threading.Condition())
    stop = threading.Event()
    for i in range(10):
        assert q.put(_item("live", i), stop)
    assert q.dropped == 7
    assert [q.pop().frame.index for _ in range(3)] == [7, 8, 9]  # type: ignore[union-attr]


def test_a_full_blocking_queue_gives_up_at_a_stop_and_loses_nothing_queued() -> None:
    q = FrameQueue("file", 2, QueuePolicy.BLOCK, threading.Condition())
    stop = threading.Event()
    assert q.put(_item("file", 0), stop) and q.put(_item("file", 1), stop)
    stop.set()
    assert not q.put(_item("file", 2), stop)
    assert q.dropped == 0 and len(q) == 2


def test_the_first_close_counts_and_a_closed_queue_takes_no_frame() -> None:
    q = FrameQueue("cam", 4, QueuePolicy.BLOCK, threading.Condition())
    q.close("source failed")
    q.close()
    q.cut_off()
    assert q.error == "source failed" and not q.was_cut_off
    assert not q.put(_item("cam", 0), threading.Event())
    assert q.finished


def test_a_cut_off_queue_is_closed_without_an_error() -> None:
    q = FrameQueue("cam", 4, QueuePolicy.BLOCK, threading.Condition())
    assert q.put(_item("cam", 0), threading.Event())
    q.cut_off()
    assert q.closed and q.was_cut_off and q.error is None
    assert not q.finished  # the frame queued before is still to be taken
