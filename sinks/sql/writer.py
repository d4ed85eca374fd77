"""The SQL sink's writer thread: inserts the outbox's batches, riding out database outages
and full disks.

Each batch is one transaction. A batch that fails because the database is unreachable
(connection lost or refused, SQLite locked) or its disk is full stays first in the outbox
and is tried again after growing pauses; inserts skip rows whose unique key is already
there, so a batch retried after a commit whose answer was lost adds nothing twice. An
outage and a full disk are each logged when they begin and when they end (an outage also
every `OUTAGE_REMINDER_S`), and counted apart. A batch the database refuses for good is
set aside in the file of refused rows (`sinks.sql.refused`) and reported (`error`). A
SQLite file deleted (or replaced) during the run, or an error of any other kind (not the
database's), is reported the same way, and the writer stops (`halted`): nothing more is
written, and the batches stay in the outbox, within its memory bound and spool file, for
the close to keep. When the run ends, an outage is waited out for the sink's
`close_timeout_s`, a full disk for at most `FULL_DISK_CLOSE_S`; the run's own end is written
last, made once everything else is written (or kept). A thread still busy with a batch when
the close stops waiting is given up on (`abandoned`): what it does after changes nothing,
neither counts nor files, and the batch stays the outbox's, kept like the rest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from sinks.sql.database import DatabaseUrl, ErrorKind, disk_full, error_kind, reason
from sinks.sql.inserts import ROW_TABLES, BatchInserts
from sinks.sql.outbox import Outbox
from sinks.sql.refused import RefusedFile
from sinks.sql.spool import RowBatch

log = logging.getLogger(__name__)

OUTAGE_REMINDER_S = 60.0
"""While the database stays away, the outage is logged again this often."""
FULL_DISK_CLOSE_S = 2.0
"""When the run ends, the longest wait for a full disk to have room (`close_timeout_s` when
that is shorter): unlike a database that is away, a full disk seldom frees itself in
seconds, and what is left is kept in the spool file (or lost, and counted) all the same."""
STOP_GRACE_S = 5.0
"""How much longer than the close's wait `stop` waits for the thread to end (a transaction
under way) before giving up on it."""
_LOOK_AGAIN_S = 0.5
"""With nothing to write, how often the thread looks for a close."""


class RowWriter:
    """The thread that writes the outbox's batches, retrying while the database is away.

    Starts on construction; `stop` ends it. `db` names the database in messages (masked);
    `refused` takes the batches it refuses for good.
    """

    def __init__(
        self,
        engine: Engine,
        outbox: Outbox,
        *,
        db: DatabaseUrl,
        retry_initial_s: float,
        retry_max_s: float,
        refused: RefusedFile,
    ) -> None:
        self.engine = engine
        self._inserts = BatchInserts(engine)
        self.outbox = outbox
        self.refused = refused
        self.error: str | None = None
        """Set when a batch can never be written (constraint, data or SQL error), or the
        writer stopped (`halted`)."""
        self.rows_written = dict.fromkeys(ROW_TABLES, 0)
        """This run's rows inserted, per table."""
        self.runs_ended = 0
        self.outages = 0
        """Times the database became unreachable."""
        self.disk_full = 0
        """Times the disk holding the database became full."""
        self.trouble: ErrorKind | None = None
        """Why the batch first in the outbox is not written yet; None while all is well."""
        self._trouble_since = 0.0
        self._last_report = 0.0
        self._db = db
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._closing_at = 0.0
        self._close_timeout_s = 0.0
        self.waited_s = 0.0
        """How long the close waited, when it gave up: for the trouble that was left, or for
        a thread still busy (`abandoned`)."""
        self._file = _identity(db.sqlite_file)
        """The SQLite file the engine opened: rows go to it even once it is deleted."""
        self.halted = False
        """Whether the writer stopped for good (that file deleted or replaced, an unexpected
        error): it writes nothing more, and the outbox keeps its batches."""
        self.abandoned = False
        """Whether the close stopped waiting for the thread, still busy with a batch: what the
        thread does after changes neither the counts nor the outbox."""
        self._last: Callable[[], RowBatch] | None = None
        self._settling = threading.Lock()
        """Held while the thread settles a batch's outcome, and while `stop` gives up on it."""
        self._closing = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sql-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float, last: Callable[[], RowBatch]) -> None:
        """Write what is left, then `last()` (the run's end, made once everything else is
        written), retrying for at most `timeout_s` (a full disk: at most `FULL_DISK_CLOSE_S`),
        then end the thread.

        A thread still busy `STOP_GRACE_S` later is given up on (`abandoned`, `waited_s`).
        `last()` is in the outbox when this returns: written, or left there with the rest.
        """
        self._last = last
        self._closing_at = time.monotonic()
        self._close_timeout_s = timeout_s
        self._closing.set()
        self._wake.set()
        self.outbox.wake()
        self._thread.join(timeout_s + STOP_GRACE_S)
        with self._settling:
            if self._thread.is_alive():
                self.abandoned = True
                self.waited_s = timeout_s + STOP_GRACE_S
            self._put_last()

    def write(self, batch: RowBatch) -> int:
        """Write one batch now, in the calling thread, as one transaction (not counted:
        `_count` does that once its outcome is settled); the rows inserted, less those
        whose key was already there (a run's end: 0).

        The thread writes the outbox's batches with it; `sinks.sql.replay`, the rows
        earlier runs left (before the sink hands over any of its own). Raises
        SQLAlchemyError.
        """
        return self._inserts.write(batch)

    def _count(self, batch: RowBatch) -> None:
        if batch.table == "run_end":
            self.runs_ended += 1
        else:
            self.rows_written[batch.table] += len(batch.rows)

    def _run(self) -> None:
        try:
            self._write_until_closed()
        except Exception as exc:
            # Not the database's (those are caught where written): a fault retrying would
            # meet again, say a spooled batch unreadable. Stop, and keep what is left.
            with self._settling:
                if not self.abandoned:
                    self._halt(f"sql sink: writing to {self._db} stopped: {_one_line(exc)}")
            log.debug("sql sink: the writer's error", exc_info=exc)

    def _write_until_closed(self) -> None:
        delay = self._retry_initial_s
        while True:
            if self._closing.is_set() and self.outbox.is_empty():
                with self._settling:
                    if self._last is None or self.abandoned:
                        return
                    self._put_last()
            batch = self.outbox.peek(_LOOK_AGAIN_S)
            if batch is None:
                continue
            failure = self._attempt(batch)
            with self._settling:
                if self.abandoned:
                    self._report_late(batch, failure)
                    return
                kind = self._settle(batch, failure)
            if self.halted:
                return
            if kind is None:
                delay = self._retry_initial_s
                continue
            pause = delay
            if self._closing.is_set():
                left = self._close_wait_left(kind)
                if left <= 0:
                    return
                pause = min(pause, left)
            self._wake.wait(pause)
            self._wake.clear()
            delay = min(delay * 2, self._retry_max_s)

    def _attempt(self, batch: RowBatch) -> Exception | None:
        """Insert `batch`: None once committed, else what kept it out."""
        if self._file_replaced():
            return _FileReplaced(
                f"its file {self._db.sqlite_file} was deleted or replaced while the run wrote "
                "to it (with the rows written before)"
            )
        try:
            self.write(batch)
        except Exception as exc:  # settled, and reported, by `_settle`
            return exc
        return None

    def _settle(self, batch: RowBatch, failure: Exception | None) -> ErrorKind | None:
        """Count, set aside or report `batch` after an attempt that met `failure` (None:
        committed). Returns the trouble to wait out before trying it again, if any."""
        if isinstance(failure, _FileReplaced):
            self._halt(self._cannot_insert(batch, str(failure)))
            return None
        if isinstance(failure, SQLAlchemyError):
            kind = error_kind(failure)
            if kind != "refused":
                self._report_trouble(kind, failure)
                return kind
            self._report_recovery()  # the database answered
            self._reject(batch, reason(failure, self._db))
            return None
        if failure is not None:
            # a row the insert cannot take (a bug): every retry would fail alike
            self._halt(self._cannot_insert(batch, _one_line(failure)))
            log.debug("sql sink: the writer's error", exc_info=failure)
            return None
        if self._file_replaced():
            return None  # committed into a file deleted meanwhile: kept like the rest
        self._count(batch)
        self.outbox.done(batch)
        self._report_recovery()
        return None

    def _put_last(self) -> None:
        """Hand the outbox the run's end (`stop`'s `last`), if not yet; `_settling` held."""
        last, self._last = self._last, None
        if last is not None:
            self.outbox.put(last())

    def _file_replaced(self) -> bool:
        """Whether the SQLite file the engine opened is no longer the one at its path."""
        return self._file is not None and _identity(self._db.sqlite_file) != self._file

    def _report_late(self, batch: RowBatch, failure: Exception | None) -> None:
        """What became of the batch the thread was busy with when the close gave up on it:
        nothing changes for it, the close kept it with the rest."""
        if failure is None:
            outcome = "were committed after all; the next run skips them"
        elif isinstance(failure, SQLAlchemyError):
            outcome = f"were not written ({reason(failure, self._db)})"
        elif isinstance(failure, _FileReplaced):
            outcome = f"were not written ({failure})"
        else:
            outcome = f"were not written ({_one_line(failure)})"
        log.warning(
            "sql sink: the %d rows into table %s the writer was busy with when the run's close "
            "stopped waiting %s; the close kept them in the spool file %s",
            len(batch.rows),
            batch.table,
            outcome,
            self.outbox.spool_path,
        )

    def _close_wait_left(self, kind: ErrorKind) -> float:
        """Seconds the close still waits for trouble of `kind`; <= 0: it gives up."""
        self.waited_s = self._close_timeout_s
        if kind == "disk full":
            self.waited_s = min(self.waited_s, FULL_DISK_CLOSE_S)
        return self._closing_at + self.waited_s - time.monotonic()

    def _report_trouble(self, kind: ErrorKind, exc: SQLAlchemyError) -> None:
        """Log an outage or a full disk when it begins (an outage, also now and then)."""
        now = time.monotonic()
        if kind == self.trouble and (
            kind == "disk full" or now - self._last_report < OUTAGE_REMINDER_S
        ):
            return
        if kind != self.trouble:
            self.trouble, self._trouble_since = kind, now
            if kind == "disk full":
                self.disk_full += 1
            else:
                self.outages += 1
        self._last_report = now
        if kind == "disk full":
            log.warning(
                "sql sink: cannot write to %s: %s; keeping %d rows (memory holds %d, "
                "the spool file the rest) and retrying",
                self._db,
                disk_full(exc, self._db),
                self.outbox.pending_rows,
                self.outbox.max_memory_rows,
            )
        else:
            log.warning(
                "sql sink: database %s unreachable (%s); keeping %d rows and retrying",
                self._db,
                reason(exc, self._db),
                self.outbox.pending_rows,
            )

    def _report_recovery(self) -> None:
        if self.trouble is None:
            return
        message = (
            "sql sink: room again for %s after %.1f s; writing %d waiting rows"
            if self.trouble == "disk full"
            else "sql sink: database %s back after %.1f s; writing %d waiting rows"
        )
        took = time.monotonic() - self._trouble_since
        log.warning(message, self._db, took, self.outbox.pending_rows)
        self.trouble = None

    def _reject(self, batch: RowBatch, why: str) -> None:
        """A batch the database refuses for good (`why`): set aside in the file of refused
        rows (lost, and counted, when that cannot take it), reported."""
        failure = self.refused.add(batch)
        if failure is None:
            where = f"its rows set aside in {self.refused.path}"
        else:
            self.outbox.lose(batch, failure)
            where = f"its rows lost: {failure}"
        self._report(self._cannot_insert(batch, f"{why}; {where}"))
        self.outbox.done(batch)  # last: a flush waiting for it finds the sink failed

    def _halt(self, error: str) -> None:
        """Stop for good, reporting `error`: nothing more is written, and the outbox keeps
        its batches, its memory bound kept (the rest in the spool file), for close to keep."""
        self.halted = True
        self._report(error)
        self.outbox.wake()  # a flush waiting for the outbox to empty

    def _cannot_insert(self, batch: RowBatch, why: str) -> str:
        return (
            f"sql sink: cannot insert {len(batch.rows)} rows into table {batch.table} "
            f"of {self._db}: {why}"
        )

    def _report(self, error: str) -> None:
        """Report, once, what keeps rows from being written: the sink fails."""
        if self.error is None:
            self.error = error
            log.error("%s", self.error)


class _FileReplaced(Exception):
    """The SQLite file the engine opened is gone from its path (the message says so): no
    insert was tried."""


def _one_line(exc: Exception) -> str:
    """The error as "TypeError: what it says", on one line."""
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _identity(file: Path | None) -> tuple[int, int] | None:
    """(device, inode) of `file`; None for no file, or none there now."""
    if file is None:
        return None
    try:
        stat = file.stat()
    except OSError:
        return None
    return stat.st_dev, stat.st_ino
