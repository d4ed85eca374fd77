"""The batcher at a stop: every camera's stream ends, whatever its reader is doing."""

from __future__ import annotations

import threading
import time

import numpy as np

from pipeline.batching import Batch, Batcher
from pipeline.frame_queue import FrameQueue, QueuedFrame, QueuePolicy
from pipeline.types import Frame


def _item(camera: str, index: int) -> QueuedFrame:
    return QueuedFrame(Frame(camera, index, index / 10, time.time(), np.zeros((2, 2, 3), np.uint8)))


def _until_done(batcher: Batcher, stop: threading.Event) -> list[Batch]:
    batches = []
    while (batch := batcher.next_batch(stop)) is not None:
        batches.append(batch)
    return batches


def test_after_a_stop_the_batcher_waits_for_each_reader_to_end_its_stream() -> None:
    cond, stop = threading.Condition(), threading.Event()
    idle = FrameQueue("idle", 4, QueuePolicy.BLOCK, cond)  # its reader is between frames
    busy = FrameQueue("busy", 4, QueuePolicy.BLOCK, cond)
    busy.put(_item("busy", 0), stop)
    stop.set()
    for delay, queue in ((0.05, idle), (0.1, busy)):  # each reader ends a moment later
        threading.Timer(delay, queue.close).start()
    batches = _until_done(Batcher([idle, busy], cond, batch_size=4, max_wait=0.01), stop)
    assert [i.frame.camera_id for b in batches for i in b.items] == ["busy"]
    assert sorted(q.camera_id for b in batches for q in b.finished) == ["busy", "idle"]
    assert not idle.was_cut_off and not busy.was_cut_off  # they ended their streams themselves


def test_a_queue_left_open_after_a_stop_is_closed_and_what_it_holds_handed_out() -> None:
    cond, stop = threading.Condition(), threading.Event()
    stuck = FrameQueue("stuck", 4, QueuePolicy.DROP_OLDEST, cond)  # reader stuck in its source
    stuck.put(_item("stuck", 0), stop)
    stop.set()
    batcher = Batcher([stuck], cond, batch_size=4, max_wait=0.01, stop_grace_s=0.05)
    batches = _until_done(batcher, stop)
    assert [i.frame.index for b in batches for i in b.items] == [0]
    assert [q.camera_id for b in batches for q in b.finished] == ["stuck"]
    assert stuck.error is None  # a stop, not a failure
    assert stuck.was_cut_off  # nobody need wait for its reader again
    assert not stuck.put(_item("stuck", 1), stop)  # the reader, once it wakes, adds nothing


def test_a_closed_queue_refuses_frames_and_keeps_the_first_reason_it_ended() -> None:
    cond, stop = threading.Condition(), threading.Event()
    for policy in QueuePolicy:
        queue = FrameQueue("cam", 1, policy, cond)
        queue.close()
        assert not queue.put(_item("cam", 0), stop)
        queue.close("reading failed after the stream ended")
        assert len(queue) == 0 and queue.frames_in == 0 and queue.error is None


def test_a_wake_or_a_time_due_returns_an_empty_batch_and_frames_taken_stay_for_the_next() -> None:
    cond, stop = threading.Condition(), threading.Event()
    queue = FrameQueue("cam", 4, QueuePolicy.BLOCK, cond)
    queue.put(_item("cam", 0), stop)  # one frame of a batch of two: not due for a minute
    batcher = Batcher([queue], cond, batch_size=2, max_wait=60)
    threading.Timer(0.05, batcher.wake).start()  # a snapshot written, meanwhile
    woken = batcher.next_batch(stop)
    assert woken is not None and not woken.items and not woken.finished
    due = batcher.next_batch(stop, until=time.monotonic() + 0.05)  # a write's bound
    assert due is not None and not due.items and not due.finished
    queue.put(_item("cam", 1), stop)
    batch = batcher.next_batch(stop)
    assert batch is not None and [i.frame.index for i in batch.items] == [0, 1]


def test_a_wake_while_a_batch_is_due_hands_out_the_batch_and_is_spent_with_it() -> None:
    cond, stop = threading.Condition(), threading.Event()
    queue = FrameQueue("cam", 4, QueuePolicy.BLOCK, cond)
    queue.put(_item("cam", 0), stop)
    batcher = Batcher([queue], cond, batch_size=1, max_wait=60)
    batcher.wake()
    batch = batcher.next_batch(stop)
    assert batch is not None and [i.frame.index for i in batch.items] == [0]
    threading.Timer(0.05, lambda: queue.put(_item("cam", 1), stop)).start()
    batch = batcher.next_batch(stop)  # waits for the frame: the wake is spent
    assert batch is not None and [i.frame.index for i in batch.items] == [1]


def test_batches_smaller_than_the_cameras_take_turns_so_no_busy_camera_starves_another() -> None:
    # With batch_size 1 (the CPU's), every batch used to be the first camera's for as long
    # as it had a frame queued: a second camera got none until the first file ended.
    cond, stop = threading.Condition(), threading.Event()
    queues = [FrameQueue(cam, 10, QueuePolicy.BLOCK, cond) for cam in "abc"]
    for q in queues:
        for i in range(4):
            q.put(_item(q.camera_id, i), stop)
    batcher = Batcher(queues, cond, batch_size=2, max_wait=0.01)
    taken = []
    for _ in range(6):
        batch = batcher.next_batch(stop)
        assert batch is not None
        taken.append([(f.camera_id, f.index) for f in batch.to_detect])
    assert taken == [
        [("a", 0), ("b", 0)],
        [("c", 0), ("a", 1)],
        [("b", 1), ("c", 1)],
        [("a", 2), ("b", 2)],
        [("c", 2), ("a", 3)],
        [("b", 3), ("c", 3)],
    ]
