"""A camera's bounded frame queue: what a full queue does, by frames and by bytes, and how
it closes."""

from __future__ import annotations

import threading
import time

import numpy as np

from pipeline.batching import Batcher
from pipeline.frame_queue import FrameQueue, QueuedFrame, QueuePolicy
from pipeline.types import Frame

SMALL = 2 * 2 * 3
"""The bytes of `_item`'s frame by default."""


def _item(camera: str, index: int, detect: bool = True, width: int = 2) -> QueuedFrame:
    """A frame of 2 x `width` pixels: `width` * 6 bytes."""
    image = np.zeros((2, width, 3), np.uint8)
    return QueuedFrame(Frame(camera, index, index / 10, time.time(), image), detect)


def _blocked_put(
    q: FrameQueue, item: QueuedFrame, stop: threading.Event
) -> tuple[threading.Thread, list[bool]]:
    """A reader putting `item` on its own thread, seen blocked; what `put` returned comes in
    the list once it returns."""
    returned: list[bool] = []
    reader = threading.Thread(target=lambda: returned.append(q.put(item, stop)))
    reader.start()
    reader.join(timeout=0.2)
    assert reader.is_alive() and not returned, "the put did not wait for room"
    return reader, returned


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


def test_a_queue_full_by_bytes_blocks_its_reader_until_the_batcher_takes_a_frame() -> None:
    cond, stop = threading.Condition(), threading.Event()
    q = FrameQueue("file", 32, QueuePolicy.BLOCK, cond, max_bytes=2 * SMALL + SMALL // 2)
    assert q.put(_item("file", 0), stop) and q.put(_item("file", 1), stop)
    reader, returned = _blocked_put(q, _item("file", 2), stop)
    assert len(q) == 2 and q.nbytes == 2 * SMALL  # far fewer than its 32 frames
    batch = Batcher([q], cond, batch_size=1, max_wait=0).next_batch(stop)
    assert batch is not None and [i.frame.index for i in batch.items] == [0]
    reader.join(timeout=5)
    assert returned == [True]
    assert len(q) == 2 and q.dropped == 0 and q.frames_in == 3


def test_a_reader_whose_frame_needs_the_room_of_two_waits_until_both_are_taken() -> None:
    cond, stop = threading.Condition(), threading.Event()
    q = FrameQueue("file", 32, QueuePolicy.BLOCK, cond, max_bytes=3 * SMALL)
    for i in range(3):
        assert q.put(_item("file", i), stop)
    reader, returned = _blocked_put(q, _item("file", 3, width=4), stop)  # 2 small frames' bytes
    with cond:
        assert q.pop() is not None
    reader.join(timeout=0.2)
    assert reader.is_alive() and not returned  # one frame's room is not enough: still waiting
    with cond:
        assert q.pop() is not None
    reader.join(timeout=5)
    assert returned == [True] and q.nbytes == 3 * SMALL


def test_a_frames_model_image_counts_towards_the_queue_bytes() -> None:
    image, model = np.zeros((4, 4, 3), np.uint8), np.zeros((2, 2, 3), np.uint8)
    item = QueuedFrame(Frame("cam", 0, 0.0, time.time(), image, model))
    q = FrameQueue("cam", 4, QueuePolicy.BLOCK, threading.Condition(), max_bytes=1000)
    assert q.put(item, threading.Event())
    assert item.nbytes == q.nbytes == 4 * 4 * 3 + 2 * 2 * 3


def test_a_drop_oldest_queue_drops_the_oldest_frames_until_a_new_one_fits_its_bytes() -> None:
    cond, stop = threading.Condition(), threading.Event()
    q = FrameQueue("live", 32, QueuePolicy.DROP_OLDEST, cond, max_bytes=8 * SMALL)
    for i in range(8):
        assert q.put(_item("live", i), stop)
    assert q.dropped == 0
    assert q.put(_item("live", 8, width=10), stop)  # 5 small frames' bytes
    assert q.dropped == 5 and q.nbytes == 8 * SMALL
    with cond:  # as the batcher takes frames
        assert [q.pop().frame.index for _ in range(4)] == [5, 6, 7, 8]  # type: ignore[union-attr]
    assert q.nbytes == 0


def test_a_frame_larger_than_the_byte_bound_still_passes_alone() -> None:
    stop = threading.Event()
    for policy in QueuePolicy:
        q = FrameQueue("8k", 32, policy, threading.Condition(), max_bytes=SMALL)
        assert q.put(_item("8k", 0, width=100), stop)  # into an empty queue: at once
        assert len(q) == 1 and q.nbytes == 100 * 2 * 3
    stopped = threading.Event()
    stopped.set()  # a blocked put returns at once
    for policy in QueuePolicy:
        cond = threading.Condition()
        q = FrameQueue("8k", 32, policy, cond, max_bytes=SMALL)
        assert q.put(_item("8k", 0), stopped)
        dropping = policy is QueuePolicy.DROP_OLDEST
        assert q.put(_item("8k", 1, width=100), stopped) is dropping  # all the others go
        with cond:
            assert [q.pop().frame.index] == [1 if dropping else 0]  # type: ignore[union-attr]


def test_a_stop_ends_a_put_blocked_by_bytes_and_loses_nothing_queued() -> None:
    stop = threading.Event()
    q = FrameQueue("file", 32, QueuePolicy.BLOCK, threading.Condition(), max_bytes=2 * SMALL)
    assert q.put(_item("file", 0), stop) and q.put(_item("file", 1), stop)
    reader, returned = _blocked_put(q, _item("file", 2), stop)
    stop.set()
    reader.join(timeout=5)
    assert returned == [False]
    assert len(q) == 2 and q.dropped == 0
