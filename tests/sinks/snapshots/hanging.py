"""A snapshot writer whose writes hang until the test lets them go: what the tests of the
writer thread and of the snapshot stage share."""

from __future__ import annotations

import threading
from pathlib import Path

from pipeline.types import Snapshot
from sinks.snapshots.writer import SnapshotWriter

LET_GO_S = 30.0
"""A hanging write lets go by itself after this long, so that a test that waits for the
wrong thing fails instead of hanging for ever."""


class HangingWriter(SnapshotWriter):
    """Writes as `SnapshotWriter`, but a write of a snapshot whose name contains one of
    `hang_on` waits for `let_go` first (`hanging` is set meanwhile, `returned` once it has
    written); `threads` are the names of the threads that wrote."""

    def __init__(self, directory: Path, hang_on: tuple[str, ...] = ()) -> None:
        super().__init__(directory)
        self.hang_on = hang_on
        self.let_go = threading.Event()
        self.hanging = threading.Event()
        self.returned = threading.Event()
        self.threads: list[str] = []

    def save(self, snapshot: Snapshot) -> Snapshot:
        self.threads.append(threading.current_thread().name)
        if not any(part in snapshot.name for part in self.hang_on):
            return super().save(snapshot)
        self.hanging.set()
        self.let_go.wait(LET_GO_S)
        written = super().save(snapshot)
        self.returned.set()
        return written
