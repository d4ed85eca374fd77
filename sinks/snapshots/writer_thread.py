"""`SnapshotWriterThread`: snapshot files written on a thread of their own, so that a
snapshot folder on a disk that hangs (a network share gone, a stalled USB stick) never
stalls the pipeline.

The snapshot stage hands each ended track's snapshot over (`submit`) and holds the track's
event back until its `PendingSnapshot` settles: written, or lost (a full disk, a write
error), or not written within `timeout_s` of the handing over (then lost, as when the queue
of `queue_size` snapshots is full or the write under way has already taken longer than
`timeout_s`). A snapshot given up on is never written later: the writer skips it, or
deletes what it wrote of it, so a file exists exactly when an event or row names it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.types import Snapshot, SnapshotLoss

if TYPE_CHECKING:  # the config reads WRITE_TIMEOUT_S without loading OpenCV
    from sinks.snapshots.writer import SnapshotWriter

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 2.0
"""The longest a snapshot may take to be written before its track's event goes out
without it (the `snapshots` sink's `write_timeout_s`)."""
QUEUE_SIZE = 64
"""Snapshots waiting for the writer at most; one more is lost at once."""


class PendingSnapshot:
    """A snapshot handed to the writer thread, until it settles: written, lost, or given up
    on at `deadline` (on `clock`'s scale)."""

    def __init__(
        self, snapshot: Snapshot, deadline: float, late: SnapshotLoss, clock: Callable[[], float]
    ) -> None:
        self.snapshot = snapshot
        self.deadline = deadline
        self._late = late
        self._clock = clock
        self._lock = threading.Lock()  # the writer's outcome and the deadline, one wins
        self._done = threading.Event()
        self._outcome: Snapshot | None = None
        self._given_up = False

    def settle(self) -> Snapshot | None:
        """The snapshot as written (or marked `lost`); None while it may still be written:
        its deadline has not passed."""
        with self._lock:
            if self._outcome is None and self._clock() >= self.deadline:
                self._give_up()
            return self._outcome

    def wait(self) -> Snapshot:
        """Waits until the snapshot is written or lost, its deadline at the latest."""
        self._done.wait(max(0.0, self.deadline - self._clock()))
        with self._lock:
            if self._outcome is None:
                self._give_up()
            assert self._outcome is not None
            return self._outcome

    def _give_up(self) -> None:
        self._given_up = True
        self._outcome = dataclasses.replace(self.snapshot, lost=self._late)
        self._done.set()

    def begin(self) -> bool:
        """The writer is about to write it: False when it was given up on already."""
        with self._lock:
            return not self._given_up

    def end(self, outcome: Snapshot) -> bool:
        """The writer's outcome; False (and nothing changed) when it came too late."""
        with self._lock:
            if self._given_up:
                return False
            self._outcome = outcome
            self._done.set()
            return True


class SnapshotWriterThread:
    """`writer` on a thread of its own behind a queue of `queue_size` snapshots; each has
    `timeout_s` to be written; `on_settled` is called (on the thread) after each write's
    outcome is known, so that whoever holds its event can let it out at once. `close`
    stops it."""

    def __init__(
        self,
        writer: SnapshotWriter,
        *,
        timeout_s: float = WRITE_TIMEOUT_S,
        queue_size: int = QUEUE_SIZE,
        clock: Callable[[], float] = time.monotonic,
        on_settled: Callable[[], None] | None = None,
    ) -> None:
        if not timeout_s > 0:
            raise ValueError(f"SnapshotWriterThread timeout_s must be > 0, got {timeout_s}")
        if queue_size < 1:
            raise ValueError(f"SnapshotWriterThread queue_size must be >= 1, got {queue_size}")
        self.writer = writer
        self.timeout_s = timeout_s
        self.queue_size = queue_size
        self._clock = clock
        self._on_settled = on_settled
        self._queue: queue.Queue[PendingSnapshot | None] = queue.Queue(queue_size)
        self._stop = threading.Event()
        self._busy_since: float | None = None  # when the write under way began
        self._thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)
        self._thread.start()

    def submit(self, snapshot: Snapshot) -> PendingSnapshot:
        """Hands `snapshot` over to be written; never waits. It is lost at once when the
        write under way has hung past `timeout_s`, or the queue is full."""
        now = self._clock()
        late = SnapshotLoss(
            f"not written within {self.timeout_s:g} s: {snapshot.directory} does not answer",
            transient=True,
        )
        pending = PendingSnapshot(snapshot, now + self.timeout_s, late, self._clock)
        busy_since = self._busy_since
        if self._stop.is_set() or not self._thread.is_alive():
            pending.end(_lose(snapshot, "the snapshot writer has stopped", transient=False))
        elif busy_since is not None and now - busy_since > self.timeout_s:
            pending.end(dataclasses.replace(snapshot, lost=late))
        else:
            try:
                self._queue.put_nowait(pending)
            except queue.Full:
                waiting = f"{self.queue_size} snapshots already wait to be written"
                pending.end(_lose(snapshot, f"{waiting} to {snapshot.directory}", transient=True))
        return pending

    def close(self) -> None:
        """Stops the thread once the write under way is done, until that write's bound at
        most (not at all for one past it); what still waits is lost (the snapshot stage
        has settled it already)."""
        self._stop.set()
        with contextlib.suppress(queue.Full):  # a full queue wakes the thread anyway
            self._queue.put_nowait(None)
        busy_since = self._busy_since
        wait = self.timeout_s
        if busy_since is not None:
            wait = max(0.0, busy_since + self.timeout_s - self._clock())
        self._thread.join(wait)
        if self._thread.is_alive():
            log.warning(
                "snapshots: a write to %s has not returned after %g s; the run ends without "
                "waiting for it",
                self.writer.directory,
                self.timeout_s,
            )

    def _run(self) -> None:
        while not self._stop.is_set():
            pending = self._queue.get()
            if pending is not None:
                self._write(pending)
        while True:  # after close: nobody waits for these any more
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if pending is not None:
                pending.end(_lose(pending.snapshot, "the run ended first", transient=True))

    def _write(self, pending: PendingSnapshot) -> None:
        if not pending.begin():
            return  # its event went out without it
        self._busy_since = self._clock()
        snapshot = pending.snapshot
        try:
            outcome = self.writer.save(snapshot)
        except Exception as exc:  # an image that cannot be encoded: this snapshot only
            why = " ".join(str(exc).split()) or type(exc).__name__  # OpenCV's span lines
            outcome = _lose(snapshot, f"cannot write {snapshot.path}: {why}", transient=False)
        finally:
            self._busy_since = None
        settled = pending.end(outcome)
        if settled and self._on_settled is not None:
            self._on_settled()
        if not settled and outcome.lost is None:
            took = self._clock() - (pending.deadline - self.timeout_s)
            log.warning(
                "snapshots: %s took %.1f s to write, its track's event had gone out without "
                "it: deleted",
                snapshot.path,
                took,
            )
            for path in (snapshot.path, snapshot.frame_path):
                try:
                    if path is not None:
                        Path(path).unlink(missing_ok=True)
                except OSError as exc:  # retention deletes it in time
                    log.warning("snapshots: cannot delete %s: %s", path, exc.strerror or exc)


def _lose(snapshot: Snapshot, reason: str, *, transient: bool) -> Snapshot:
    return dataclasses.replace(snapshot, lost=SnapshotLoss(reason, transient=transient))
