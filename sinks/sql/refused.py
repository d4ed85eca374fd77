"""The batches the database refuses for good (a constraint or data error), set aside.

They go, as JSON lines in the spool file's format (`sinks.sql.spool`), to a file of their
own in a folder no run replays (`REFUSED_FOLDER` under the spool folder): written again,
they would be refused again, and stop the replay of every spool file after theirs. A person
who fixed the cause moves the file into the spool folder, and the next run writes it.
The batches already set aside for a database are found by their line
(`sinks.sql.spool.SetAside`).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from sinks.disk import write_failure
from sinks.sql.spool import RowBatch, SpoolFile

log = logging.getLogger(__name__)

REFUSED_FOLDER = "refused"
"""The folder, under the spool folder, of the files of refused rows."""


class RefusedFile:
    """Refused batches appended to `path` (created when first needed), at most `max_bytes`.

    Thread-safe: the writer's thread adds, the sink's `close` closes, maybe while a writer
    it gave up on still writes. Once closed, the file takes nothing more: a batch refused
    later is turned away, never written into a file reopened that no one would close.
    """

    def __init__(self, path: Path, *, max_bytes: int) -> None:
        self.path = path
        self.rows = 0
        """This run's rows set aside in the file."""
        self.batches = 0
        """This run's batches set aside in the file."""
        self._max_bytes = max_bytes
        self._file: SpoolFile | None = None
        self._closed = False
        self._lock = threading.Lock()

    def add(self, batch: RowBatch, *, replayed: bool = False) -> str | None:
        """Append `batch`: None once it is in the file, else why it could not be (the file
        closed, or it would pass `max_bytes`, a write error), in one line. `replayed`: a
        batch an earlier run left in a spool file, not counted as this run's, and written
        out at once."""
        line = batch.to_line().encode()
        with self._lock:
            if self._closed:
                return f"the file of refused rows {self.path} was closed: the run had ended"
            size = 0 if self._file is None else self._file.size
            if size + len(line) > self._max_bytes:
                limit = f"its size limit ({self._max_bytes} bytes)"
                return f"the file of refused rows {self.path} reached {limit}"
            try:
                if self._file is None:
                    self._file = SpoolFile(self.path)
                self._file.append_line(line)
                if replayed:  # its spool line is blanked next: a power cut must not keep
                    self._file.sync()  # the blank and lose the batch
            except OSError as exc:
                why = write_failure(exc, self.path)
                return f"cannot write the file of refused rows {self.path}: {why}"
            if not replayed:
                self.rows += len(batch.rows)
                self.batches += 1
            return None

    def close(self) -> None:
        """Write the file out and close it (it stays, for a person to look at); it takes
        nothing more."""
        with self._lock:
            self._closed = True
            file, self._file = self._file, None
            if file is None:
                return
            try:
                file.sync()
            except OSError as exc:  # what the system still held for the file may be lost
                log.error(
                    "sql sink: %s may be incomplete: %s", self.path, write_failure(exc, self.path)
                )
            finally:
                file.close(delete=False)
