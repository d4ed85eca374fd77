"""The SQL sink: detections, finished tracks, zone visits, line crossings and the run
itself, as rows of a SQL database.

`SqlSink` turns results into rows (`sinks.sql.pending_rows`) and hands them, in batches,
to a writer thread of its own (`sinks.sql.writer`); the sink's `write` never waits for the
database. When the database cannot be reached (server down, connection cut, SQLite locked),
the writer keeps the batches (in memory up to a bound, then in a spool file:
`sinks.sql.outbox`, `sinks.sql.spool`) and retries with growing pauses; once the database
is back, every batch is written, and written once: each row has a unique key (run, camera,
frame, box index; run, camera, track id; ...) and inserts skip rows already there, so a
batch retried after a commit whose answer was lost adds nothing twice (SQLite, PostgreSQL;
other databases refuse it as a duplicate, `sinks.sql.inserts`).
A full disk is waited out the same way, but it is no outage: what neither the memory bound
nor the spool can take is lost, counted per table, and reported (`describe`, `close`).

Opening the database: `sinks.sql.opening`; rows earlier runs left in spool files, written
first: `sinks.sql.replay`. Reading back (`query` command): `sinks.sql.query`,
`sinks.sql.scene_query`. The schema lives in `sinks.sql.models` and is described in
docs/sql.md.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import get_args

from pipeline.types import (
    FrameResult,
    HeldTrackEvents,
    LabelMap,
    RunOutcome,
    SinkMetric,
    StreamEnd,
)
from sinks.base import Sink, SinkError
from sinks.disk import open_folder
from sinks.sql.database import SQLITE_BUSY_TIMEOUT_MS, DatabaseUrl
from sinks.sql.models import RunStatus
from sinks.sql.opening import open_run
from sinks.sql.outbox import Outbox
from sinks.sql.pending_rows import PendingRows
from sinks.sql.refused import REFUSED_FOLDER, RefusedFile
from sinks.sql.replay import SpoolReplay
from sinks.sql.spool import RowBatch, Table, spool_prefix
from sinks.sql.writer import RowWriter

log = logging.getLogger(__name__)

_LOST_TABLES: tuple[Table, ...] = ("detections", "tracks", "zone_visits", "line_crossings")
"""The tables whose rows `metrics` counts as lost (the run's end is no row of them)."""


class SqlSink(Sink):
    """Writes every detection, every ended track and the run's own row to a SQL database.

    Rows are handed to the writer thread `batch_size` at a time, or once the oldest has
    waited `flush_interval_s` (seconds of `clock`): at a frame's `write`, or at the first
    `tick` after that when no frame comes; each batch is one transaction. While the
    database is away, up to `buffer_rows` rows wait in memory and the rest in a spool file
    under `spool_dir` (at most `spool_max_bytes`); `close` waits up to `close_timeout_s` for
    them to be written (a full disk: at most `FULL_DISK_CLOSE_S`).
    Rows still unwritten then stay in the spool file, and the next run writing to the same
    database writes them first. `stop` (the run's) ends the wait for the database as it
    opens: SinkStopped (`sinks.sql.opening.open_run`).
    """

    name = "sql"

    def __init__(
        self,
        url: str,
        labels: LabelMap,
        *,
        batch_size: int = 500,
        run_config: str = "",
        flush_interval_s: float = 1.0,
        buffer_rows: int = 20_000,
        spool_dir: Path = Path("out/spool"),
        spool_max_bytes: int = 1024 * 1_000_000,
        close_timeout_s: float = 30.0,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
        sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
        clock: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"SqlSink batch_size must be >= 1, got {batch_size}")
        if buffer_rows < batch_size:
            raise ValueError(
                f"SqlSink buffer_rows ({buffer_rows}) must be >= batch_size ({batch_size})"
            )
        self._db = DatabaseUrl(url)
        self._close_timeout_s = close_timeout_s
        self._status: RunStatus = "finished"
        self._closed = False
        self.kept_in: Path | None = None
        """The spool file holding rows that could not be written by the end of the run."""
        self._left = 0
        self._clock = clock
        open_folder(Path(spool_dir), self.name)  # rows wait there while the database is away
        self._engine, self.run_id = open_run(self._db, sqlite_busy_timeout_ms, run_config, stop)
        self._pending = PendingRows(
            self.run_id, labels, batch_size=batch_size, flush_interval_s=flush_interval_s
        )
        prefix = spool_prefix(self._db)
        name = f"{prefix}run{self.run_id}-{os.getpid()}.jsonl"
        self.outbox = Outbox(
            Path(spool_dir) / name, max_memory_rows=buffer_rows, max_spool_bytes=spool_max_bytes
        )
        refused = Path(spool_dir) / REFUSED_FOLDER / name
        self._refused = RefusedFile(refused, max_bytes=spool_max_bytes)
        self._writer = RowWriter(
            self._engine,
            self.outbox,
            db=self._db,
            retry_initial_s=retry_initial_s,
            retry_max_s=retry_max_s,
            refused=self._refused,
        )
        self._replay = SpoolReplay(self._writer, self._refused, self._db)
        self._replay.run(Path(spool_dir), prefix)

    # -------------------------------------------------------------------- Sink

    def write(self, result: FrameResult) -> None:
        """Turn the frame's boxes into rows; hand a batch to the writer when one is ready."""
        self._raise_if_failed()
        now = self._clock()
        self._pending.add(result, now)
        if self._pending.is_due(now):
            self._hand_off()

    def held_events(self, held: HeldTrackEvents) -> None:
        """Record the rows of tracks whose event was held for its snapshot, and hand them to
        the writer at once: no frame of their camera may come to make them due."""
        self._raise_if_failed()
        self._pending.add_tracks(held.track_events)
        self._hand_off()

    def tick(self) -> None:
        """Hand the rows that have waited `flush_interval_s` to the writer, though no frame
        came to make them due (a camera reconnecting or blocked, a still scene under motion
        gating)."""
        self._raise_if_failed()
        if self._pending.is_due(self._clock()):
            self._hand_off()

    def end(self, stream_end: StreamEnd) -> None:
        """Record the tracks and zone visits the stream's end closed, and hand everything to
        the writer."""
        self._pending.add_end(stream_end)
        self._hand_off()
        self._raise_if_failed()

    @property
    def outages(self) -> int:
        """Times the database became unreachable during the run."""
        return self._writer.outages

    @property
    def disk_full(self) -> int:
        """Times the disk holding the database became full during the run."""
        return self._writer.disk_full

    @property
    def rows_written(self) -> dict[str, int]:
        """This run's rows inserted so far per table ("detections", "tracks",
        "zone_visits", "line_crossings"), retries not counted; rows earlier runs left in
        spool files, written first, are not counted here."""
        return dict(self._writer.rows_written)

    def describe(self) -> str:
        """One line for the run summary: rows written, and what went wrong, counted."""
        written = self._writer.rows_written
        scene = "".join(
            f", {written[table]} {table.replace('_', ' ')}"
            for table in ("zone_visits", "line_crossings")
            if written[table]
        )
        text = (
            f"sql {self._db}: {written['detections']} detections, "
            f"{written['tracks']} tracks{scene} written"
        )
        lost = self._lost()
        notes = []
        if self._writer.outages:
            ridden_out = " ridden out" if not lost and self.kept_in is None else ""
            notes.append(f"{self._writer.outages} outage(s){ridden_out}")
        if self._writer.disk_full:
            notes.append(f"disk full {self._writer.disk_full} time(s)")
        if self._refused.rows:
            notes.append(f"{self._refused.rows} refused, set aside in {self._refused.path}")
        if unreadable := self._unreadable():
            notes.append(unreadable)
        if lost:
            notes.append(f"{lost} lost")
        if self.kept_in is not None:
            notes.append(f"{self._left} rows not yet written kept in {self.kept_in}")
        if earlier := self._replay.summary():
            notes.append(earlier)
        return f"{text} ({'; '.join(notes)})" if notes else text

    def metrics(self) -> tuple[SinkMetric, ...]:
        """Rows written, waiting (in memory, in the spool file), lost, refused (set aside in
        the file of refused rows), unreadable in the spool file (set aside) and kept for the
        next run, outages, and what earlier runs left: rows written, already stored or
        refused, lines unreadable (set aside), as the run goes."""
        lost = self.outbox.lost
        return (
            SinkMetric("sql_rows_written", "Rows inserted into the database.",
                       sum(self._writer.rows_written.values())),
            SinkMetric("sql_rows_buffered", "Rows waiting in memory to be written.",
                       self.outbox.memory_rows, "gauge"),
            SinkMetric("sql_rows_spooled", "Rows waiting in the spool file on disk.",
                       self.outbox.spooled_rows, "gauge"),
            SinkMetric("sql_rows_lost", "Rows neither the database, memory nor the spool "
                       "file could take (dropped).", sum(lost[t] for t in _LOST_TABLES)),
            SinkMetric("sql_rows_refused", "Rows the database refused for good, set aside "
                       "in the file of refused rows.", self._refused.rows),
            SinkMetric("sql_rows_unreadable", "Rows of spool file lines that could not be "
                       "read back, set aside under spool_dir/unreadable/.",
                       self.outbox.unreadable_rows),
            SinkMetric("sql_rows_kept", "Rows left unwritten in the spool file at the end of "
                       "the run, for the next run to write.", self._left, "gauge"),
            SinkMetric("sql_outages", "Times the database became unreachable.",
                       self._writer.outages),
            *self._replay.metrics(),
        )  # fmt: skip

    def run_ended(self, outcome: RunOutcome) -> None:
        """The status `close()` records: "finished" (default), "failed" or "interrupted"."""
        if outcome not in get_args(RunOutcome):
            raise ValueError(
                f"run status must be one of finished, failed, interrupted; got {outcome!r}"
            )
        self._status = outcome

    def flush(self, timeout_s: float | None = None) -> bool:
        """Hand over every buffered row and wait until all are written.

        Returns False when rows are still waiting after `timeout_s` (database away), or
        at once when none will be written (the writer stopped: the SQLite file deleted, an
        unexpected error).
        """
        self._hand_off()
        return self.outbox.wait_empty(timeout_s, unless=lambda: self._writer.halted)

    def close(self, status: RunOutcome | None = None) -> None:
        """Write everything, record the run's end and status, release the database.

        Waits up to `close_timeout_s` for an unreachable database (a full disk: at most
        `FULL_DISK_CLOSE_S`), and `STOP_GRACE_S` more for a batch under way; what is still
        unwritten then, that batch included, is kept in the spool file (`kept_in`), and
        SinkError says so, and why. Every row is then counted once (`describe`, `metrics`):
        written, kept, refused (set aside) or lost. Idempotent. `status` overrides
        `run_ended`; a batch the database refused, or rows lost, make it "failed".
        """
        if self._closed:
            return
        self._closed = True
        if status is not None:
            self.run_ended(status)
        try:
            self._hand_off()
            self._writer.stop(self._close_timeout_s, last=self._run_end)
            self._refused.close()
            self.kept_in = self.outbox.persist()
            # what is kept, less the run's own end (one row) when that too is kept
            end_kept = self._writer.runs_ended == 0 and not self.outbox.lost["run_end"]
            self._left = self.outbox.kept_rows - int(end_kept)
        finally:
            self._engine.dispose()
        problems = []
        lost = self._lost()
        if lost:
            problems.append(f"{lost} lost: {self.outbox.loss_reason}")
        if self._writer.error is not None:
            problems.append(self._writer.error.removeprefix("sql sink: "))
        if self._refused.batches > 1:  # the error names the first
            problems.append(f"{self._refused.rows} rows refused in all")
        if unreadable := self._unreadable():
            problems.append(unreadable)
        if self.kept_in is not None:
            kept = f"{self._left} rows kept in {self.kept_in}"
            if not self._writer.halted:
                kept = f"{self._gave_up()}; {kept} are written by the next run to this database"
            problems.append(kept)
        if problems:
            raise SinkError(f"sql sink: {'; '.join(problems)}")

    # -------------------------------------------------------------------- internals

    def _hand_off(self) -> None:
        """Every waiting row to the writer, oldest first."""
        for batch in self._pending.take():
            self.outbox.put(batch)

    def _run_end(self) -> RowBatch:
        """The run's own end, its row's time and status: "failed" when a batch was refused,
        the writer stopped or rows were lost (made once everything else is written, or
        kept)."""
        failed = (
            self._writer.error is not None
            or self.outbox.lost.total() > 0
            or self.outbox.unreadable_rows > 0
        )
        final = "failed" if failed else self._status
        return RowBatch(
            "run_end", [{"run_id": self.run_id, "ended_at": time.time(), "status": final}]
        )

    def _gave_up(self) -> str:
        """Why the close stopped waiting with rows unwritten, and after how long."""
        if self._writer.trouble == "disk full":
            why = f"the disk holding {self._db} still full"
        elif self._writer.trouble == "unreachable":  # the last attempt could not get through
            why = f"database {self._db} still unreachable"
        else:
            why = f"writer still busy with {self._db}"  # a slow batch, under way
        return f"{why} after {self._writer.waited_s:g} s"

    def _unreadable(self) -> str:
        """The rows of spool lines that could not be read back, and where they are; "" if
        none."""
        rows, aside = self.outbox.unreadable_rows, self.outbox.unreadable_in
        if not rows:
            return ""
        if aside is None:
            return f"{rows} rows unreadable in the spool file, not kept (the log says why)"
        return f"{rows} rows unreadable in the spool file, set aside in {aside}"

    def _lost(self) -> str:
        """What was lost, counted ("12 detections, 1 tracks and the run's end"); "" if none."""
        lost = self.outbox.lost
        parts = [f"{lost[t]} {t.replace('_', ' ')}" for t in _LOST_TABLES if lost[t]]
        if lost["run_end"]:
            parts.append("the run's end")
        return ", ".join(parts[:-1]) + f" and {parts[-1]}" if len(parts) > 1 else "".join(parts)

    def _raise_if_failed(self) -> None:
        if self._writer.error is not None:
            raise SinkError(self._writer.error)
