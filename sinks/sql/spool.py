"""What the SQL writer has yet to write: a bounded memory queue that spills to a file.

The sink's thread `put`s batches; the writer thread `peek`s the oldest, inserts it, and
marks it `done` only once committed, so a batch whose insert failed is tried again. While
the memory queue holds `max_memory_rows` rows (the database is away, or slower than the
pipeline), new batches are appended to a JSON-lines spool file instead, and read back in
order once the memory queue is empty. Batches are first in, first out throughout.

A spool file left by a run that could not reach its database before it ended is replayed by
the next run writing to the same database (`replay_spools`; `spool_prefix` names a
database's files). Files are locked (flock) by the process writing them, so a running
pipeline's spool is never taken by another one.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from sinks.disk import write_failure
from sinks.sql.database import DatabaseUrl

log = logging.getLogger(__name__)

Table = Literal["detections", "tracks", "zone_visits", "line_crossings", "run_end"]
TABLES: tuple[Table, ...] = get_args(Table)


@dataclass(frozen=True, eq=False)
class RowBatch:
    """Rows for one table, written in one transaction.

    Rows are JSON-ready dicts (times as Unix seconds), so that a batch survives a trip
    through the spool file unchanged. "run_end" holds the one row that closes a run.
    """

    table: Table
    rows: list[dict[str, Any]]

    def to_line(self) -> str:
        return json.dumps({"table": self.table, "rows": self.rows}, separators=(",", ":")) + "\n"

    @classmethod
    def from_line(cls, line: str) -> RowBatch:
        data = json.loads(line)
        if data.get("table") not in TABLES:
            raise ValueError(f"unknown table {data.get('table')!r}")
        return cls(data["table"], list(data["rows"]))


class SpoolFile:
    """An append-only JSON-lines file of batches, read back from the front; flock-ed.

    Written without a buffer, a line at a time: a write the disk cannot take (full) is cut
    off again, so the file only ever holds whole lines, and raises OSError.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._fd)
            raise
        self.read_offset = 0
        self.unread = 0
        self.size = os.fstat(self._fd).st_size

    def append(self, batch: RowBatch) -> None:
        self.append_line(batch.to_line().encode())

    def append_line(self, line: bytes) -> None:
        """Add one whole line at the end, or nothing (and raise OSError)."""
        written = 0
        try:
            while written < len(line):
                written += os.pwrite(self._fd, line[written:], self.size + written)
        except OSError:
            os.ftruncate(self._fd, self.size)  # frees what the cut line took
            raise
        self.size += written
        self.unread += 1

    def read_next(self) -> tuple[RowBatch | None, int]:
        """The batch at the read offset (None if unreadable) and the offset after it."""
        line = self._line_at(self.read_offset)
        try:
            return RowBatch.from_line(line.decode()), self.read_offset + len(line)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("sql sink: unreadable line in %s skipped: %s", self.path, exc)
            return None, self.read_offset + len(line)

    def consumed(self, next_offset: int) -> None:
        self.read_offset = next_offset
        self.unread -= 1
        if self.unread == 0:  # all written: start the file over instead of growing it
            self.clear()

    def unread_lines(self) -> list[bytes]:
        lines = []
        offset = self.read_offset
        while offset < self.size:
            line = self._line_at(offset)
            lines.append(line)
            offset += len(line)
        return lines

    def clear(self) -> None:
        os.ftruncate(self._fd, 0)
        self.read_offset, self.unread, self.size = 0, 0, 0

    def sync(self) -> None:
        os.fsync(self._fd)

    def close(self, *, delete: bool) -> None:
        os.close(self._fd)  # closing releases the lock
        if delete:
            self.path.unlink(missing_ok=True)

    def _line_at(self, offset: int) -> bytes:
        """The line (newline included) that starts at `offset`."""
        parts = []
        while offset < self.size:
            chunk = os.pread(self._fd, min(1 << 16, self.size - offset), offset)
            end = chunk.find(b"\n")
            if end >= 0:
                parts.append(chunk[: end + 1])
                break
            parts.append(chunk)
            offset += len(chunk)
        return b"".join(parts)


class Outbox:
    """Batches waiting for the database, oldest first, at most `max_memory_rows` in memory.

    Thread-safe: one producer (`put`) and one consumer (`peek`/`done`). Batches beyond the
    memory bound go to `spool_path` (created when first needed). A batch the spool cannot
    take (beyond `max_spool_bytes`, disk full, any write error) waits in memory if there is
    room, and is lost otherwise: counted per table in `lost`, the first reason kept in
    `loss_reason`, each kind of reason logged once. Only the run's end, one row, is never
    turned away: it always has a place in memory.
    """

    def __init__(self, spool_path: Path, *, max_memory_rows: int, max_spool_bytes: int) -> None:
        self.spool_path = spool_path
        self.max_memory_rows = max_memory_rows
        self.lost: Counter[Table] = Counter()
        """Rows lost per table ("run_end": the run's end) since the outbox was made."""
        self.loss_reason: str | None = None
        self.kept_rows = 0
        """Rows `persist` left in the spool file."""
        self._max_spool_bytes = max_spool_bytes
        self._loss_logged: set[str] = set()
        self._memory: deque[RowBatch] = deque()
        self._memory_rows = 0
        self._spool: SpoolFile | None = None
        self._spool_head: tuple[RowBatch, int] | None = None
        self._spooled_rows = 0
        self._changed = threading.Condition()

    @property
    def memory_rows(self) -> int:
        with self._changed:
            return self._memory_rows

    @property
    def spooled_rows(self) -> int:
        with self._changed:
            return self._spooled_rows

    @property
    def pending_rows(self) -> int:
        with self._changed:
            return self._memory_rows + self._spooled_rows

    def put(self, batch: RowBatch) -> None:
        """Queue `batch`; never blocks on the database, never raises: at worst the batch
        goes to the spool, or is lost (and counted)."""
        with self._changed:
            spooling = self._spool is not None and self._spool.unread > 0
            if batch.table == "run_end" or (not spooling and self._memory_has_room(batch)):
                self._to_memory(batch)
            else:
                self._to_spool(batch)
            self._changed.notify_all()

    def peek(self, timeout_s: float) -> RowBatch | None:
        """The oldest batch not yet done, waiting up to `timeout_s` for one; None if none."""
        with self._changed:
            if not self._memory and not self._has_spooled():
                self._changed.wait(timeout_s)
            if self._memory:
                return self._memory[0]
            if not self._has_spooled():
                return None
            assert self._spool is not None
            while self._spool_head is None and self._spool.unread > 0:
                batch, next_offset = self._spool.read_next()
                if batch is None:
                    self._spool.consumed(next_offset)
                else:
                    self._spool_head = (batch, next_offset)
            return None if self._spool_head is None else self._spool_head[0]

    def done(self, batch: RowBatch) -> None:
        """`batch` (the last `peek`) is committed: drop it."""
        with self._changed:
            if self._memory and self._memory[0] is batch:
                self._memory.popleft()
                self._memory_rows -= len(batch.rows)
            elif self._spool_head is not None and self._spool_head[0] is batch:
                assert self._spool is not None
                self._spool.consumed(self._spool_head[1])
                self._spooled_rows -= len(batch.rows)
                self._spool_head = None
            else:
                # Only after persist() took everything over (a writer still busy when the
                # run's close gave up on it): the batch is in the spool and its replay skips
                # the rows this write already stored.
                log.debug("sql sink: a batch written after the outbox was persisted")
            self._changed.notify_all()

    def is_empty(self) -> bool:
        with self._changed:
            return not self._memory and not self._has_spooled()

    def wake(self) -> None:
        """Wake a consumer waiting in `peek` (e.g. to make it notice a shutdown)."""
        with self._changed:
            self._changed.notify_all()

    def wait_empty(self, timeout_s: float | None) -> bool:
        """Wait until every batch is done; False if some are left after `timeout_s`."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not self._memory and not self._has_spooled(), timeout_s
            )

    def persist(self) -> Path | None:
        """Move what is left to the spool file and close it (the run is over).

        Returns the spool file when it holds batches (for the next run to replay), None
        when it holds none (the file is then deleted). What the spool cannot take (disk
        full) is lost and counted, not logged: the caller reports it.
        """
        with self._changed:
            rows, lost = self._memory_rows + self._spooled_rows, self.lost.total()
            kept_in = self._persist()
            self.kept_rows = rows - (self.lost.total() - lost) if kept_in is not None else 0
            return kept_in

    def _persist(self) -> Path | None:
        """`persist`, the lock held."""
        memory = [b.to_line().encode() for b in self._memory]
        self._memory.clear()
        self._memory_rows = 0
        self._spool_head = None
        if not memory and not self._has_spooled():
            return self._close_spool()
        try:
            if self._spool is None:
                self._spool = SpoolFile(self.spool_path)
            spooled = self._spool.unread_lines()
        except OSError as exc:
            self._lose_lines(memory, exc)
            return self._close_spool()
        lines = [*memory, *spooled]  # oldest first
        self._spool.clear()
        for i, line in enumerate(lines):
            try:
                self._spool.append_line(line)
            except OSError as exc:
                self._lose_lines(lines[i:], exc)
                break
        return self._close_spool()

    def _close_spool(self) -> Path | None:
        """Close the spool file, deleted when it holds nothing; its path if it holds rows."""
        spool, self._spool = self._spool, None
        self._spooled_rows = 0
        if spool is None:
            return None
        kept = spool.unread > 0
        try:
            if kept:
                spool.sync()
        except OSError as exc:  # what the system still held for the file may be lost
            log.error("sql sink: %s may be incomplete: %s", self.spool_path, exc.strerror)
        finally:
            spool.close(delete=not kept)
        return self.spool_path if kept else None

    def _has_spooled(self) -> bool:
        return self._spool is not None and self._spool.unread > 0

    def _memory_has_room(self, batch: RowBatch) -> bool:
        return self._memory_rows + len(batch.rows) <= self.max_memory_rows

    def _to_memory(self, batch: RowBatch) -> None:
        self._memory.append(batch)
        self._memory_rows += len(batch.rows)

    def _to_spool(self, batch: RowBatch) -> None:
        if self._spool is not None and self._spool.size >= self._max_spool_bytes:
            limit = f"its size limit ({self._max_spool_bytes} bytes)"
            self._turn_away(batch, "limit", f"the spool file {self.spool_path} reached {limit}")
            return
        try:
            if self._spool is None:
                self._spool = SpoolFile(self.spool_path)
            self._spool.append(batch)
        except OSError as exc:
            self._turn_away(batch, f"errno {exc.errno}", self._spool_failure(exc))
            return
        self._spooled_rows += len(batch.rows)

    def _turn_away(self, batch: RowBatch, kind: str, why: str) -> None:
        """A batch the spool cannot take: kept in memory where there is room, else lost."""
        if self._memory_has_room(batch):
            self._to_memory(batch)  # out of order; inserts do not depend on it
            return
        self._lose([batch], why)
        if kind not in self._loss_logged:
            self._loss_logged.add(kind)
            log.error(
                "sql sink: %s; rows beyond the %d in memory are lost (counted)",
                why, self.max_memory_rows,
            )

    def _lose(self, batches: list[RowBatch], why: str) -> None:
        for batch in batches:
            self.lost[batch.table] += len(batch.rows)
        self.loss_reason = self.loss_reason or why

    def _lose_lines(self, lines: list[bytes], exc: OSError) -> None:
        self._lose([RowBatch.from_line(line.decode()) for line in lines], self._spool_failure(exc))

    def _spool_failure(self, exc: OSError) -> str:
        why = write_failure(exc, self.spool_path)
        return f"cannot write the spool file {self.spool_path}: {why}"


def spool_prefix(db: DatabaseUrl) -> str:
    """File-name prefix of the spool files of one database (same for every run using it)."""
    key = str(db.sqlite_file.resolve()) if db.sqlite_file is not None else db.masked
    return f"sql-{hashlib.sha1(key.encode()).hexdigest()[:12]}-"


def leftover_spools(directory: Path, prefix: str) -> Iterator[Path]:
    """Spool files named `<prefix>*.jsonl` in `directory`, oldest first."""
    if not directory.is_dir():
        return iter(())
    files = sorted(directory.glob(f"{prefix}*.jsonl"), key=lambda p: p.stat().st_mtime)
    return iter(files)


def replay_spools(
    directory: Path, prefix: str, write: Callable[[RowBatch], None]
) -> tuple[int, list[Path]]:
    """Write the batches of spool files left by earlier runs; delete each file once done.

    Files another process holds (locked) are left alone. `write` raising stops the replay
    of that file (it is kept, to be replayed later) and is re-raised. Returns the number
    of rows written and the files replayed.
    """
    rows = 0
    replayed: list[Path] = []
    for path in leftover_spools(directory, prefix):
        try:
            spool = open(path, "r+", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            log.warning("sql sink: cannot open leftover spool %s: %s", path, exc.strerror)
            continue
        try:
            try:
                fcntl.flock(spool.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a running pipeline's own spool
            for number, line in enumerate(spool, start=1):
                if not line.strip():
                    continue
                try:
                    batch = RowBatch.from_line(line)
                except (ValueError, KeyError, TypeError) as exc:
                    # A line cut short by a crash; the rest of the file is still good.
                    log.error("sql sink: %s line %d unreadable, skipped: %s", path, number, exc)
                    continue
                write(batch)
                rows += len(batch.rows)
            path.unlink()
            replayed.append(path)
        finally:
            spool.close()
    return rows, replayed
