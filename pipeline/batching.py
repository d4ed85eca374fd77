"""Batching frames from every camera for the detector."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pipeline.frame_queue import FrameQueue, QueuedFrame
from pipeline.types import Frame

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """Frames in camera order, and the cameras whose last frame is in this or an earlier batch.

    `items` also holds frames skipped by detection (`detect` False) that ride along to the
    sinks drawing every frame. `to_detect`: the detector's images, in `items`' order (a
    frame's motion regions each an image of its own, `QueuedFrame.images`); they count
    towards the batch size.
    """

    items: list[QueuedFrame] = field(default_factory=list)
    finished: list[FrameQueue] = field(default_factory=list)
    to_detect: list[Frame] = field(default_factory=list)


STOP_GRACE_S = 2.0
"""How long after a stop a camera's reader has to end its stream before it is cut off."""


class Batcher:
    """Takes frames round-robin from the cameras' queues into batches.

    A batch is returned as soon as it holds `batch_size` images to detect (frames, or their
    motion regions), or `max_wait` seconds after
    its first frame arrived, whichever comes first. Round-robin keeps one fast camera from
    filling every batch; a camera with nothing queued is never waited for.

    Every camera's stream ends in a batch's `finished`, a stop included: after `stop`, each
    reader closes its queue as it ends, and a queue still open `stop_grace_s` later (its
    reader stuck in its source) is closed here. What a queue holds is always handed out.
    """

    def __init__(
        self,
        queues: Sequence[FrameQueue],
        condition: threading.Condition,
        batch_size: int,
        max_wait: float,
        stop_grace_s: float = STOP_GRACE_S,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self._queues = list(queues)
        self._cond = condition
        self.batch_size = batch_size
        self.max_wait = max_wait
        self.stop_grace_s = stop_grace_s
        self._batch = Batch()  # being filled; kept between calls
        self._deadline: float | None = None  # when `_batch` is due, from its first frame
        self._cut_off_at: float | None = None  # when queues still open after a stop close
        self._woken = False

    def next_batch(
        self, stop: threading.Event | None = None, *, until: float | None = None
    ) -> Batch | None:
        """The next batch; None once every queue is finished. An empty batch (no items, no
        ends) when none is due by `until` (a `time.monotonic()` time) or after `wake`: the
        caller has something to do between frames; frames taken stay for the next call."""
        with self._cond:
            while not self._fill():
                if self._woken or (until is not None and time.monotonic() >= until):
                    self._woken = False
                    return Batch()
                if stop is not None and stop.is_set():
                    self._cut_off_after_grace()
                now = time.monotonic()
                timeout = 0.1 if self._deadline is None else self._deadline - now
                if until is not None:
                    timeout = min(timeout, until - now)
                self._cond.wait(max(timeout, 0.0))
            return self._hand_out()

    def wake(self) -> None:
        """Makes `next_batch`, waiting now or called next, return an empty batch if no batch
        is due; from any thread."""
        with self._cond:
            self._woken = True
            self._cond.notify_all()

    def ready_batch(self) -> Batch | None:
        """The next batch if it is complete now, without waiting; None if it is not (or if
        there is none left: `next_batch` tells which).

        Frames taken into an incomplete batch stay in it for the next call of either method,
        and its `max_wait` keeps counting from its first frame.
        """
        with self._cond:
            return self._hand_out() if self._fill() else None

    def _fill(self) -> bool:
        """Takes what the queues hold into the batch being built; True once it is complete.

        Call with the condition held.
        """
        batch = self._batch
        self._take(batch)  # each queue wakes its producer if it waits for room
        if finished := [q for q in self._queues if q.finished]:
            batch.finished += finished
            self._queues = [q for q in self._queues if not q.finished]
        if len(batch.to_detect) >= self.batch_size or not self._queues:
            return True
        if (batch.finished or batch.items) and not batch.to_detect:
            return True  # nothing to wait for: pass skipped frames and ends on promptly
        now = time.monotonic()
        if batch.to_detect and self._deadline is None:
            self._deadline = now + self.max_wait
        return self._deadline is not None and now >= self._deadline

    def _cut_off_after_grace(self) -> None:
        """Closes the queues still open `stop_grace_s` after the stop was first seen."""
        now = time.monotonic()
        if self._cut_off_at is None:
            self._cut_off_at = now + self.stop_grace_s
        if now < self._cut_off_at:
            return
        for q in self._queues:
            if not q.closed:
                log.warning(
                    "camera %s: its source did not let go within %g s of the stop; "
                    "its stream ends without it",
                    q.camera_id,
                    self.stop_grace_s,
                )
                q.cut_off()

    def _hand_out(self) -> Batch | None:
        """The batch built so far (None if it is empty), and a fresh one to fill next."""
        batch, self._batch, self._deadline = self._batch, Batch(), None
        self._woken = False  # what woke it is seen to after this batch
        if not batch.items and not batch.finished:
            return None
        return batch

    def _take(self, batch: Batch) -> None:
        """Fills `batch` a frame per camera in turn. A camera taken from goes to the back of
        the turn, which carries over to the next batch: with batches smaller than the
        cameras, each camera gets its turn, not only the first ones with frames queued."""
        while len(batch.to_detect) < self.batch_size:
            progressed = False
            for q in list(self._queues):
                if len(batch.to_detect) >= self.batch_size:
                    break
                item = q.pop()
                if item is not None:
                    batch.items.append(item)
                    batch.to_detect += item.images()
                    progressed = True
                    self._queues.remove(q)
                    self._queues.append(q)
            if not progressed:
                break
