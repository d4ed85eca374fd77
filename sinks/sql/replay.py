"""The rows earlier runs left in spool files for a database, written by the next run to it
before any of its own.

A spool file is kept by a run that could not reach its database before it ended
(`sinks.sql.outbox`). The next run writing to the same database reads it line by line
(`replay_spools`); each line done with (written, set aside, or of a run marked lost) is
blanked in place, so that a file kept because a later line could not be done never gives
the same line twice. A file whose every line is done is deleted. Inserts skip rows whose key
is already there (a batch committed after its run stopped waiting for it): those are counted
as already stored, not as written (`SpoolReplay`). A line that cannot be read (cut short
by a crash, damaged) is set aside (`UnreadableLine`) and counted as a line: its rows cannot
be known.

A run killed after a batch was done with but before its line was blanked leaves that line
for the next run, once more. Rows it wrote are then found stored (already stored); a batch
it set aside is found in its file of refused rows, and counted as refused but not set aside
again; an unreadable line it set aside is found in its file of unreadable lines, and counted
but not set aside again (`SetAside`): the killed run summed up neither.
"""

from __future__ import annotations

import fcntl
import glob
import logging
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import IO

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from pipeline.types import SinkMetric
from sinks.sql.database import DatabaseUrl, error_kind, reason
from sinks.sql.models import Run
from sinks.sql.refused import RefusedFile
from sinks.sql.spool import RowBatch, SetAside, UnreadableLine
from sinks.sql.writer import RowWriter

log = logging.getLogger(__name__)


class SpoolReplay:
    """Writes the rows earlier runs left for the database `writer` writes to, and counts
    them: `written` (inserted now), `already_stored` (their key already there), `refused`
    (set aside in `refused`, or found set aside already in an earlier run's file); and the
    lines it could not read, set aside (`unreadable`)."""

    def __init__(self, writer: RowWriter, refused: RefusedFile, db: DatabaseUrl) -> None:
        self.written = 0
        """Rows earlier runs left, inserted by this run (run ends not counted)."""
        self.already_stored = 0
        """Rows earlier runs left that the database already held (committed late), skipped."""
        self.refused: Counter[Path] = Counter()
        """Rows earlier runs left that the database refused, per file of refused rows they
        are in: `refused`'s, or an earlier run's that had set them aside already."""
        self.unreadable: Counter[Path] = Counter()
        """Lines of the files earlier runs left that could not be read (cut short, damaged),
        set aside now or found set aside already, per file they are set aside in. A line
        that could not be set aside is not counted: its file is kept, and the run that sets
        it aside counts it."""
        self._writer = writer
        self._refused = refused
        self._db = db
        self._skipped: Counter[int] = Counter()
        self._lost: set[int] = set()
        self._set_aside: SetAside | None = None
        """The batches in this database's files of refused rows."""

    def run(self, directory: Path, prefix: str) -> None:
        """Write the rows of `directory`'s spool files named `prefix`*, except those of runs
        marked lost: the runs that took their cameras over stored them anew. A batch the
        database refuses for good is set aside in the file of refused rows, so that the rest
        of its file is written; the database unreachable stops the replay (logged)."""
        self._set_aside = SetAside(self._refused.path.parent, f"{glob.escape(prefix)}*.jsonl")
        try:
            with self._writer.engine.connect() as conn:
                self._lost = set(conn.scalars(select(Run.id).where(Run.status == "lost")))
            _, files = replay_spools(directory, prefix, self._write, self._set_aside_unreadable)
        except SQLAlchemyError as exc:
            log.warning(
                "sql sink: rows left by an earlier run in %s not written yet: %s",
                directory,
                reason(exc, self._db),
            )
            return
        if self.written or self.already_stored:
            log.warning(
                "sql sink: wrote %d rows left by an earlier run, %d already stored (%s)",
                self.written,
                self.already_stored,
                ", ".join(str(f) for f in files),
            )
        for run_id, count in sorted(self._skipped.items()):
            log.warning(
                "sql sink: %d rows left by run %d not written: that run was lost, and the "
                "runs that took its cameras over stored them",
                count,
                run_id,
            )

    def summary(self) -> str:
        """The run summary's note on what earlier runs left; "" if nothing."""
        parts = [f"{self.written} written"] if self.written else []
        if self.already_stored:
            parts.append(f"{self.already_stored} already stored")
        for path, rows in self.refused.items():
            already = "" if path == self._refused.path else "already "
            parts.append(f"{rows} refused, {already}set aside in {path}")
        for path, lines in self.unreadable.items():
            parts.append(f"{lines} lines unreadable, set aside in {path}")
        return f"left by an earlier run: {', '.join(parts)}" if parts else ""

    def metrics(self) -> tuple[SinkMetric, ...]:
        return (
            SinkMetric(
                "sql_rows_replayed",
                "Rows earlier runs left in spool files, written by this run before its own.",
                self.written,
            ),
            SinkMetric(
                "sql_rows_already_stored",
                "Rows earlier runs left in spool files that the database already held "
                "(committed after their run stopped waiting), not written again.",
                self.already_stored,
            ),
            SinkMetric(
                "sql_rows_replayed_refused",
                "Rows earlier runs left in spool files that the database refused, set aside "
                "in a file of refused rows (or found there already), not written.",
                self.refused.total(),
            ),
            SinkMetric(
                "sql_lines_replayed_unreadable",
                "Lines of spool files earlier runs left that could not be read (cut short, "
                "damaged), set aside under spool_dir/unreadable/ (or found there already); "
                "their rows, unknown, are in no other count.",
                self.unreadable.total(),
            ),
        )

    def _write(self, batch: RowBatch) -> None:
        rows = [r for r in batch.rows if r["run_id"] not in self._lost]
        self._skipped.update(r["run_id"] for r in batch.rows if r["run_id"] in self._lost)
        if not rows:
            return
        kept = RowBatch(batch.table, rows)
        try:
            inserted = self._writer.write(kept)
        except SQLAlchemyError as exc:
            if error_kind(exc) != "refused" or (aside := self._set_aside_once(kept)) is None:
                raise  # the file stays, for a later run
            self.refused[aside] += len(rows)
            log.error(
                "sql sink: %d rows into table %s left by an earlier run refused (%s); %s %s",
                len(rows),
                kept.table,
                reason(exc, self._db),
                "set aside in" if aside == self._refused.path else "already set aside in",
                aside,
            )
            return
        if kept.table != "run_end":
            self.written += inserted
            self.already_stored += len(rows) - inserted

    def _set_aside_unreadable(self, line: UnreadableLine) -> None:
        self.unreadable[line.aside] += 1

    def _set_aside_once(self, batch: RowBatch) -> Path | None:
        """The file of refused rows `batch` is in: set aside now, or found there already
        (`SetAside.once`); None when it could not be set aside.

        Its line is its key: the rows of a spool line, less those of runs marked lost,
        written out the same way by every run.
        """
        assert self._set_aside is not None  # set by `run`, the only caller

        def set_aside() -> Path | None:
            refused = self._refused.add(batch, replayed=True) is None
            return self._refused.path if refused else None

        found = self._set_aside.once(batch.to_line().encode(), set_aside)
        return None if found is None else found[0]


def leftover_spools(directory: Path, prefix: str) -> list[Path]:
    """Spool files named `<prefix>*.jsonl` in `directory`, oldest first (one that vanishes
    meanwhile left out)."""
    if not directory.is_dir():
        return []
    aged = []
    for path in directory.glob(f"{prefix}*.jsonl"):
        try:
            aged.append((path.stat().st_mtime, path))
        except FileNotFoundError:
            continue  # replayed, and deleted, by another run meanwhile
    return [path for _, path in sorted(aged)]


def replay_spools(
    directory: Path,
    prefix: str,
    write: Callable[[RowBatch], None],
    set_aside: Callable[[UnreadableLine], None],
) -> tuple[int, list[Path]]:
    """Write the batches of spool files left by earlier runs; delete each file once done.

    Files another process holds (locked), or took and deleted meanwhile, are left alone.
    Each line done with is blanked in place. `write` raising stops the replay of that file
    (it is kept, to be replayed later) and is re-raised. An unreadable line is set aside
    (`UnreadableLine`), unless found set aside already, logged, and handed to `set_aside`;
    a file with one that could not be set aside is kept (that line not handed over).
    Returns the number of rows handed to `write` and the files replayed.
    """
    rows = 0
    replayed: list[Path] = []
    for path in leftover_spools(directory, prefix):
        try:
            spool = open(path, "rb+")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            continue  # replayed, and deleted, by another run meanwhile
        except OSError as exc:
            log.warning("sql sink: cannot open leftover spool %s: %s", path, exc.strerror)
            continue
        with spool:
            try:
                fcntl.flock(spool.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a running pipeline's own spool
            if os.fstat(spool.fileno()).st_nlink == 0:
                continue  # another run replayed and deleted it before letting go
            done = _Blanking(spool)
            earlier = SetAside.unreadable(path)
            try:
                for number, line in enumerate(spool, start=1):
                    if not line.strip():
                        done.skip(line)
                        continue
                    batch = UnreadableLine.read(path, number, line)
                    if isinstance(batch, UnreadableLine):  # the rest of the file is still good
                        kept = batch.set_aside(earlier)
                        if kept:
                            set_aside(batch)
                        done.line(line, finished=kept)
                        continue
                    write(batch)
                    done.line(line, finished=True)
                    rows += len(batch.rows)
            finally:
                done.sync()
            if done.all_finished:
                path.unlink(missing_ok=True)
            replayed.append(path)
    return rows, replayed


class _Blanking:
    """Blanks the lines of a spool file done with, in place, as the replay reads them."""

    def __init__(self, spool: IO[bytes]) -> None:
        self._spool = spool
        self._offset = 0
        self._blanked = False
        self.all_finished = True

    def skip(self, line: bytes) -> None:
        self._offset += len(line)

    def line(self, line: bytes, *, finished: bool) -> None:
        """The line just read: blanked when `finished` (the file kept otherwise)."""
        start, self._offset = self._offset, self._offset + len(line)
        if not finished:
            self.all_finished = False
            return
        text = line.rstrip(b"\n")
        try:
            os.pwrite(self._spool.fileno(), b" " * len(text) + line[len(text) :], start)
        except OSError as exc:  # should the file be kept, the line comes back once more
            log.warning("sql sink: cannot mark a line of %s done: %s", self._spool.name, exc)
            return
        self._blanked = True

    def sync(self) -> None:
        """Write the blanks out: a file kept must not give those lines again."""
        if self._blanked:
            try:
                os.fsync(self._spool.fileno())
            except OSError as exc:
                log.warning("sql sink: cannot write out %s: %s", self._spool.name, exc)
