"""Running each sink in its own thread behind a bounded queue."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

from pipeline.frame_queue import check_bounds, has_room
from pipeline.types import (
    CameraStatus,
    FrameResult,
    HeldTrackEvents,
    RunOutcome,
    SinkMetric,
    StreamEnd,
    StreamInfo,
    TrackEvent,
)
from sinks.base import ForwardingSink, Sink, SinkError

log = logging.getLogger(__name__)

SinkMessage = StreamInfo | FrameResult | HeldTrackEvents | StreamEnd | CameraStatus
_CLOSE: Final = object()
TICK_S = 0.25
"""How often a worker calls its sink's `tick`: between messages, whether or not they come
(a camera's frames may stop while another's keep the queue busy)."""


@dataclass(frozen=True)
class _RunEnded:
    outcome: RunOutcome


@dataclass(frozen=True)
class QueueBound:
    """How much a sink's queue holds: `size` messages and, when `max_bytes` is given, the
    frames of its messages up to that many bytes (`SinkQueue`)."""

    size: int
    max_bytes: int | None = None


class SinkQueue:
    """A sink worker's FIFO of messages, bounded by count and by the bytes of their frames.

    It holds at most `maxsize` messages and, when `max_bytes` is given, messages whose frames
    take at most that many bytes together (a `FrameResult`'s `Frame.nbytes`; any other
    message counts 0), but always one: a single message larger than `max_bytes` still
    passes, alone. A frame is counted in every queue that holds it, though the queues (a
    camera's, each sink's) share its pixels. `put` and `get` take and raise as
    `queue.Queue`'s do (`queue.Full`, `queue.Empty`).
    """

    def __init__(self, maxsize: int, max_bytes: int | None = None) -> None:
        check_bounds(maxsize, max_bytes)
        self.maxsize = maxsize
        self.max_bytes = max_bytes
        self._items: deque[tuple[object, int]] = deque()  # each message with its bytes
        self._bytes = 0
        self._cond = threading.Condition()

    def put(self, message: object, timeout: float) -> None:
        """Queue `message`, waiting up to `timeout` s for room; raises queue.Full if none."""
        size = message.frame.nbytes if isinstance(message, FrameResult) else 0
        with self._cond:
            if not self._cond.wait_for(lambda: self._fits(size), timeout):
                raise queue.Full
            self._items.append((message, size))
            self._bytes += size
            self._cond.notify_all()

    def _fits(self, size: int) -> bool:
        """Whether a message of `size` bytes has room now (`has_room`)."""
        return has_room(len(self._items), self._bytes, size, self.maxsize, self.max_bytes)

    def get(self, timeout: float) -> object:
        """The oldest message, waiting up to `timeout` s for one; raises queue.Empty if none."""
        with self._cond:
            if not self._cond.wait_for(lambda: bool(self._items), timeout):
                raise queue.Empty
            message, size = self._items.popleft()
            self._bytes -= size
            self._cond.notify_all()  # a producer may wait for room
            return message

    def get_nowait(self) -> object:
        return self.get(0)

    def qsize(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """The bytes of the frames its messages hold."""
        return self._bytes


class HeldWithNextFrame(ForwardingSink):
    """A sink without a `held_events` of its own (`Sink.takes_held_events`): a camera's held
    events wait here and go first among the track events of its next frame's result, or of
    its stream's end, so that a sink recording track events from `write` (and `end`) has
    every one of them."""

    def __init__(self, inner: Sink) -> None:
        super().__init__(inner)
        self._waiting: dict[str, tuple[TrackEvent, ...]] = {}

    def held_events(self, held: HeldTrackEvents) -> None:
        camera = held.camera_id
        self._waiting[camera] = self._waiting.get(camera, ()) + held.track_events

    def takes_held_events(self) -> bool:
        return True

    def write(self, result: FrameResult) -> None:
        waiting = self._waiting.pop(result.frame.camera_id, ())
        if waiting:
            result = replace(result, track_events=waiting + result.track_events)
        self.inner.write(result)

    def end(self, stream_end: StreamEnd) -> None:
        waiting = self._waiting.pop(stream_end.camera_id, ())
        if waiting:
            stream_end = replace(stream_end, track_events=waiting + stream_end.track_events)
        self.inner.end(stream_end)


class SinkWorker:
    """Feeds one sink from a bounded queue in a thread of its own.

    `submit` blocks while the queue is full (`maxsize` messages, or `max_bytes` of their
    frames: `SinkQueue`), so a slow sink slows the pipeline rather than losing results.
    Every `TICK_S` it calls the sink's `tick`, between messages. A sink without a
    `held_events` of its own gets held events with its camera's next frame
    (`HeldWithNextFrame`). If the sink raises, the worker records the error (`error`),
    closes the sink, and from then on discards what it is given: one broken output never
    stalls the others. The main loop reads `error` to report it.
    """

    def __init__(
        self,
        sink: Sink,
        maxsize: int,
        on_written: Callable[[FrameResult], None] | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self.sink = sink if sink.takes_held_events() else HeldWithNextFrame(sink)
        self.error: str | None = None
        self.written = 0
        """Frames' results the sink has written."""
        self._on_written = on_written
        self.unwritten = 0
        """Frames' results not handed to the sink because it had failed."""
        self._count_lock = threading.Lock()
        self._queue = SinkQueue(maxsize, max_bytes)
        self._failed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sink-{sink.name}", daemon=True)
        self._thread.start()

    @property
    def failed(self) -> bool:
        return self._failed.is_set()

    @property
    def buffered(self) -> int:
        """Messages waiting in the queue."""
        return self._queue.qsize()

    def metrics(self) -> tuple[SinkMetric, ...]:
        """The sink's counts of its own (`Sink.metrics`)."""
        return self.sink.metrics()

    def submit(self, message: SinkMessage) -> None:
        """Queue a message for the sink; blocks while the queue is full. After the sink
        failed, a frame's result is counted in `unwritten` instead."""
        if not self._submit(message) and isinstance(message, FrameResult):
            with self._count_lock:
                self.unwritten += 1

    def _submit(self, message: object) -> bool:
        """Whether `message` was queued; False once the sink failed or the worker closed."""
        # A worker whose thread has ended (closed) takes nothing more: waiting for room in
        # its queue would wait for ever.
        while not self._failed.is_set() and self._thread.is_alive():
            try:
                self._queue.put(message, 0.1)
                return True
            except queue.Full:
                continue
        return False

    def run_ended(self, outcome: RunOutcome) -> None:
        """Tell the sink how the run ended (`Sink.run_ended`), after what is queued."""
        self._submit(_RunEnded(outcome))

    def close(self, timeout: float | None = None) -> None:
        """Finish what is queued, close the sink, and wait for the thread."""
        self.submit_close()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("sink %s did not finish within %.0f s", self.sink.name, timeout or 0)
        elif self._failed.is_set():
            self._discard_queued()  # what a producer slipped in while the sink was failing

    def submit_close(self) -> None:
        while self._thread.is_alive():
            try:
                self._queue.put(_CLOSE, 0.1)
                return
            except queue.Full:
                continue

    def _run(self) -> None:
        try:
            next_tick = time.monotonic() + TICK_S
            while True:
                try:
                    message = self._queue.get(max(0.0, next_tick - time.monotonic()))
                except queue.Empty:
                    message = None
                if message is _CLOSE:
                    break
                if message is not None:
                    self._hand(message)
                now = time.monotonic()
                if now >= next_tick:
                    self.sink.tick()
                    next_tick = now + TICK_S
        except Exception as exc:
            self._fail(exc)
        finally:
            try:
                self.sink.close()
            except Exception as exc:
                self._fail(exc)

    def _hand(self, message: object) -> None:
        """Pass one message to the sink's method for it."""
        if isinstance(message, FrameResult):
            self.sink.write(message)
            self.written += 1
            if self._on_written is not None:
                self._on_written(message)
        elif isinstance(message, HeldTrackEvents):
            self.sink.held_events(message)
        elif isinstance(message, StreamInfo):
            self.sink.start(message)
        elif isinstance(message, StreamEnd):
            self.sink.end(message)
        elif isinstance(message, CameraStatus):
            self.sink.status(message)
        elif isinstance(message, _RunEnded):
            self.sink.run_ended(message.outcome)

    def _fail(self, exc: Exception) -> None:
        if self.error is None:
            # A SinkError's message names its sink already ("sql sink: ...").
            named = isinstance(exc, SinkError)
            self.error = str(exc) if named else f"{self.sink.name} sink failed: {exc}"
            log.error("%s", self.error)
        self._failed.set()
        self._discard_queued()  # unblocks a producer waiting on a full queue

    def _discard_queued(self) -> None:
        """Empties the queue of a failed sink, counting the frames' results in it."""
        while True:
            try:
                message = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(message, FrameResult):
                with self._count_lock:
                    self.unwritten += 1

    @property
    def summary_error(self) -> str | None:
        """`error` with the frames' results the sink never got, for the run's summary."""
        if self.error is None or not self.unwritten:
            return self.error
        return f"{self.error} ({self.unwritten} frame results after it not written)"


class SinkFanout:
    """Hands the run's messages to every sink worker, and nothing of a camera after its end.

    `StreamEnd` is a camera's last message (docs/events.md). A reader cut off at a stop
    (stuck in its source) may wake up after its stream has ended and report (opened,
    streaming, stopped): that is dropped. Frame results and held events come from the
    detection loop, which ends the streams itself, so they need no check.
    """

    def __init__(self, workers: Sequence[SinkWorker]) -> None:
        self.workers = list(workers)
        self._every_frame = [w for w in self.workers if w.sink.wants_every_frame]
        self._ended: set[str] = set()
        self._lock = threading.Lock()  # a camera's end and its reader's reports, in one order

    def frame(self, result: FrameResult) -> None:
        """A frame's result; one not detected (`detected` False) only to the sinks that
        draw every frame."""
        for worker in self.workers if result.detected else self._every_frame:
            worker.submit(result)

    def held(self, held: HeldTrackEvents) -> None:
        """A camera's held "ended" events, let out between its frames: to every sink."""
        for worker in self.workers:
            worker.submit(held)

    def camera(self, message: StreamInfo | CameraStatus) -> bool:
        """What a camera's reader reports; False, and nothing handed out, once the camera's
        stream has ended."""
        with self._lock:
            if message.camera_id in self._ended:
                what = type(message).__name__
                log.debug("camera %s: %s after its stream ended, dropped", message.camera_id, what)
                return False
            for worker in self.workers:
                worker.submit(message)
            return True

    def end(self, stream_end: StreamEnd) -> None:
        """A camera's stream is over: its last message."""
        with self._lock:
            self._ended.add(stream_end.camera_id)
            for worker in self.workers:
                worker.submit(stream_end)

    def has_ended(self, camera_id: str) -> bool:
        return camera_id in self._ended


def end_unstarted(
    sinks: Sequence[tuple[Sink, QueueBound]], failures: Mapping[str, str | None]
) -> list[SinkWorker]:
    """Hands `sinks` (each with its queue's bound) a run that failed before any camera
    started: each camera of `failures` failed, as its reader would say it (its id: why its
    source cannot open), or was stopped first (None), and its stream ended with no frame;
    the run failed. Each sink is then closed, as at the end of any run. Their workers,
    ended (`summary_error`)."""
    messages: list[SinkMessage] = []
    for camera_id, why in failures.items():
        if why is not None:
            messages.append(CameraStatus(camera_id, "failed", time.time(), why))
        error = None if why is None else f"camera {camera_id}: {why}"
        messages.append(StreamEnd(camera_id, 0, error=error))
    workers = [SinkWorker(sink, bound.size, max_bytes=bound.max_bytes) for sink, bound in sinks]
    for worker in workers:
        for message in messages:
            worker.submit(message)
        worker.run_ended("failed")
    for worker in workers:
        worker.close()
    return workers
