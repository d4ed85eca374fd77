"""A camera's bounded queue of decoded frames, between its reader thread and the batcher.

Every queue of a run shares one condition with the batcher, which waits on it for a frame
of any camera. A queue is bounded by frames and by bytes (frames of up to 40 million pixels
take 120 MB each); what a full queue does with a new frame is its `QueuePolicy`. A reader
waiting for room waits on its own queue's condition, over the same lock, so that taking a
camera's frames wakes that camera's reader only, not every camera's.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from enum import Enum

from pipeline.types import Frame, Region


class QueuePolicy(str, Enum):
    """What a full queue does with a new frame."""

    BLOCK = "block"  # the producer waits: nothing is lost (files)
    DROP_OLDEST = "drop_oldest"  # the oldest frame goes: latency stays bounded (live sources)


def check_bounds(maxsize: int, max_bytes: int | None) -> None:
    """Raises ValueError unless a queue's bounds can hold something: `maxsize` items, and
    `max_bytes` (None: no bound by bytes) of at least one byte."""
    if maxsize < 1:
        raise ValueError(f"queue size must be >= 1, got {maxsize}")
    if max_bytes is not None and max_bytes < 1:
        raise ValueError(f"queue bytes must be >= 1, got {max_bytes}")


def has_room(held: int, held_bytes: int, size: int, maxsize: int, max_bytes: int | None) -> bool:
    """Whether a queue that holds `held` items of `held_bytes` bytes has room for one more of
    `size` bytes: always when empty (a single item larger than `max_bytes` passes alone),
    else within `maxsize` items and `max_bytes` bytes. The one rule of the camera queues and
    the sinks' queues (`pipeline.workers.SinkQueue`)."""
    if held == 0:
        return True
    if held >= maxsize:
        return False
    return max_bytes is None or held_bytes + size <= max_bytes


@dataclass(frozen=True)
class QueuedFrame:
    """A decoded frame on its way to the batcher; `detect` is False for a skipped frame.
    `regions`: the parts of it to detect, each an image of its own (motion regions); ()
    for the whole frame."""

    frame: Frame
    detect: bool = True
    regions: tuple[Region, ...] = ()

    def images(self) -> list[Frame]:
        """What the detector is given for this frame: its regions' crops, or itself."""
        if not self.detect:
            return []
        return [r.crop(self.frame) for r in self.regions] or [self.frame]

    @property
    def nbytes(self) -> int:
        """The memory its pixels hold: the frame's image, and its `model_image` if any (the
        regions are views of the image)."""
        return self.frame.nbytes


class FrameQueue:
    """A bounded FIFO of one camera's frames, sharing a condition with the batcher.

    It holds at most `maxsize` frames and, when `max_bytes` is given, frames of at most
    that many bytes (`QueuedFrame.nbytes`) together, but always one: a single frame larger
    than `max_bytes` still passes, alone.

    All queues of a run share one `threading.Condition`, so the batcher can wait for a frame
    from any camera without polling. A producer blocked on a full queue waits on the
    queue's own condition (`room`, on the shared condition's lock), which `pop` and `close`
    notify: with many cameras, one shared condition woke every blocked reader for each batch.
    """

    def __init__(
        self,
        camera_id: str,
        maxsize: int,
        policy: QueuePolicy,
        condition: threading.Condition,
        max_bytes: int | None = None,
    ) -> None:
        check_bounds(maxsize, max_bytes)
        self.camera_id = camera_id
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self.policy = policy
        self.frames_in = 0
        self.dropped = 0
        self.error: str | None = None
        self._items: deque[QueuedFrame] = deque()
        self._bytes = 0  # what `_items` hold, `QueuedFrame.nbytes` summed
        self._closed = False
        self._cut_off = False
        self._cond = condition
        # A condition takes any lock that acquires and releases: the shared condition is one.
        self._room = threading.Condition(condition)  # type: ignore[arg-type]

    def put(self, item: QueuedFrame, stop: threading.Event) -> bool:
        """Queue a frame; False if it was not queued: the queue is closed, or `stop` was set
        while waiting for room. Without room, DROP_OLDEST drops the oldest frames until it
        fits; BLOCK waits for the batcher to take frames."""
        size = item.nbytes
        with self._cond:
            while not self._closed and not self._fits(size):
                if self.policy is QueuePolicy.DROP_OLDEST:
                    self._bytes -= self._items.popleft().nbytes
                    self.dropped += 1
                    continue  # an empty queue fits any frame: this ends
                if stop.is_set():
                    return False
                self._room.wait(0.1)  # woken by `pop` and `close`; timeout to see `stop`
            if self._closed:
                return False
            self._items.append(item)
            self._bytes += size
            self.frames_in += 1
            self._cond.notify_all()
            return True

    def _fits(self, size: int) -> bool:
        """Whether a frame of `size` bytes has room now (`has_room`)."""
        return has_room(len(self._items), self._bytes, size, self.maxsize, self.max_bytes)

    def close(self, error: str | None = None) -> None:
        """No more frames will come; `error` says why if the source failed.

        The first close counts: a stream already ended (or cut off at a stop) stays as it was.
        """
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self.error = error
            self._cond.notify_all()
            self._room.notify_all()

    def cut_off(self) -> None:
        """Closes the queue on behalf of a reader that did not end its stream in time (stuck
        in its source); nothing it queues later is taken. No-op on a closed queue."""
        with self._cond:
            if self._closed:
                return
            self._cut_off = True
            self.close()

    @property
    def closed(self) -> bool:
        """No more frames will be queued (some may still be waiting to be taken)."""
        return self._closed

    @property
    def was_cut_off(self) -> bool:
        """Closed by `cut_off`: its reader was left behind, still in its source."""
        return self._cut_off

    # The methods below are called with the shared condition held (by the batcher).
    def pop(self) -> QueuedFrame | None:
        """The oldest frame, if any; wakes the producer if it waits for room."""
        if not self._items:
            return None
        self._room.notify()  # its frame may still not fit: the producer then waits again
        item = self._items.popleft()
        self._bytes -= item.nbytes
        return item

    @property
    def finished(self) -> bool:
        """Closed and drained: every frame it will ever hold has been taken."""
        return self._closed and not self._items

    @property
    def nbytes(self) -> int:
        """The bytes of the frames it holds (`QueuedFrame.nbytes`)."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)
