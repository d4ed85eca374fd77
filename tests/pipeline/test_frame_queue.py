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
    cond = threading.Condition()
    q = FrameQueue("live", 3, QueuePolicy.DROP_OLDEST, cond)
    stop = threading.Event()
    for i in range(10):
        assert q.put(_item("live", i), stop)
    assert q.dropped == 7
    with cond:  # as the batcher takes frames
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


class _CountingStop(threading.Event):
    """A stop event that counts how often a blocked `put` looked at it: once per wake-up."""

    def __init__(self) -> None:
        super().__init__()
        self.looks = 0

    def is_set(self) -> bool:
        self.looks += 1
        return super().is_set()


def test_other_cameras_frames_do_not_wake_a_reader_blocked_on_its_full_queue() -> None:
    """A reader blocked on its full queue waits on that queue alone: frames coming and going
    through another camera's queue leave it asleep (it wakes on its own queue's room, its
    close, or its 0.1 s timeout to look at the stop)."""
    cond = threading.Condition()
    busy = FrameQueue("busy", 1, QueuePolicy.BLOCK, cond)
    full = FrameQueue("full", 1, QueuePolicy.BLOCK, cond)
    assert full.put(_item("full", 0), threading.Event())
    stop = _CountingStop()
    blocked = threading.Thread(target=full.put, args=(_item("full", 1), stop))
    blocked.start()
    time.sleep(0.05)
    before = stop.looks
    started = time.monotonic()
    for i in range(50):  # another camera's frames, queued and taken as the batcher does
        assert busy.put(_item("busy", i), threading.Event())
        with cond:
            assert busy.pop() is not None
        time.sleep(0.002)  # the blocked reader's chance to run, were it woken
    woken = stop.looks - before
    timeouts = (time.monotonic() - started) / 0.1 + 1
    assert woken <= timeouts, f"woken {woken} times in {timeouts:.0f} timeouts"
    with cond:
        assert full.pop() is not None  # room: the blocked reader goes on
    blocked.join(timeout=5)
    assert not blocked.is_alive() and len(full) == 1
