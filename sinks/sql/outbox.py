"""What the SQL writer has yet to write: a bounded memory queue that spills to a file.

The sink `put`s batches; the writer thread `peek`s the oldest, inserts it, and marks it
`done` only once committed, so a batch whose insert failed is tried again. While the
memory queue holds `max_memory_rows` rows (the database is away, or slower than the
pipeline), new batches are appended to a JSON-lines spool file (`sinks.sql.spool`) instead,
and read back in order once the memory queue is empty. Batches are first in,
first out throughout. What is left when the run ends stays in the spool file, for the next
run to write (`persist`). A spool line that cannot be read back (damaged while the run went
on) is set aside (`sinks.sql.spool.UnreadableLine`), its rows counted in `unreadable_rows`;
should the run be killed before it is done with the file, the next run, replaying it, finds
that line set aside already (`sinks.sql.spool.SetAside`).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path

from sinks.disk import write_failure
from sinks.sql.spool import RowBatch, SetAside, SpoolFile, Table, UnreadableLine

log = logging.getLogger(__name__)


class Outbox:
    """Batches waiting for the database, oldest first, at most `max_memory_rows` in memory.

    Thread-safe: `put` from any thread (in the order its callers keep), one consumer
    (`peek`/`done`). Batches beyond the memory bound go to `spool_path` (created when first
    needed). A batch the spool cannot take (beyond `max_spool_bytes`, disk full, any write
    error) waits in memory if there is room, and is lost otherwise: counted per table in
    `lost`, the first reason kept in `loss_reason`, each kind of reason logged once. Only
    the run's end, one row, is never turned away: it always has a place in memory.
    """

    def __init__(self, spool_path: Path, *, max_memory_rows: int, max_spool_bytes: int) -> None:
        self.spool_path = spool_path
        self.max_memory_rows = max_memory_rows
        self.lost: Counter[Table] = Counter()
        """Rows lost per table ("run_end": the run's end) since the outbox was made."""
        self.loss_reason: str | None = None
        self.kept_rows = 0
        """Rows `persist` left in the spool file."""
        self.unreadable_rows = 0
        """Rows of spool lines that could not be read back, set aside (`UnreadableLine`)."""
        self.unreadable_in: Path | None = None
        """The file they are set aside in; None while none could be."""
        self._max_spool_bytes = max_spool_bytes
        self._loss_logged: set[str] = set()
        self._memory: deque[RowBatch] = deque()
        self._memory_rows = 0
        self._spool: SpoolFile | None = None
        self._spool_head: tuple[RowBatch, int] | None = None
        self._unreadable = SetAside.unreadable(spool_path)
        self._spooled_rows = 0
        self._line_rows: deque[tuple[Table, int]] = deque()
        """The table and rows of each unread spool line, oldest first: a line that cannot
        be read back says nothing of its own."""
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
                if isinstance(batch, UnreadableLine):
                    self._spool.consumed(next_offset)
                    self._set_aside(batch)
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
                self._spooled_rows -= self._line_rows.popleft()[1]
                self._spool_head = None
            self._changed.notify_all()

    def is_empty(self) -> bool:
        with self._changed:
            return not self._memory and not self._has_spooled()

    def wake(self) -> None:
        """Wake a consumer waiting in `peek` (e.g. to make it notice a shutdown)."""
        with self._changed:
            self._changed.notify_all()

    def wait_empty(
        self, timeout_s: float | None, unless: Callable[[], bool] = lambda: False
    ) -> bool:
        """Wait until every batch is done; False if some are left after `timeout_s`, or
        as soon as `unless()` (checked when woken: `wake`) says none will be."""
        with self._changed:
            self._changed.wait_for(
                lambda: (not self._memory and not self._has_spooled()) or unless(), timeout_s
            )
            return not self._memory and not self._has_spooled()

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

    def lose(self, batch: RowBatch, why: str) -> None:
        """`batch`, taken out of the outbox, cannot be kept (`why`, one line): counted as
        lost; the caller reports it."""
        with self._changed:
            self._lose([batch], why)

    def _persist(self) -> Path | None:
        """`persist`, the lock held."""
        row_batches = [b for b in self._memory if b.table != "run_end"]
        end_batches = [b for b in self._memory if b.table == "run_end"]
        memory = [b.to_line().encode() for b in row_batches]
        ends = [b.to_line().encode() for b in end_batches]
        # what each line holds, as known when it was written rather than read back: a line
        # damaged on the disk is lost as the rows it held, not as a parse error
        memory_sizes = [(b.table, len(b.rows)) for b in row_batches]
        end_sizes = [(b.table, len(b.rows)) for b in end_batches]
        spooled_sizes = list(self._line_rows)
        self._memory.clear()
        self._memory_rows = 0
        self._spool_head = None
        if not memory and not ends and not self._has_spooled():
            return self._close_spool()
        spooled: list[bytes] = []
        try:
            if self._spool is None:
                self._spool = SpoolFile(self.spool_path)
            spooled = self._spool.unread_lines()
            if not self._spool.on_disk():  # its folder was removed during the run
                gone, self._spool = self._spool, None
                gone.close(delete=False)
                self._spool = SpoolFile(self.spool_path)
        except OSError as exc:
            # lost: what no spool file holds, the lines read from one no name leads to too
            orphans = spooled_sizes if self._spool is None else []
            self._lose_lines([*memory_sizes, *orphans, *end_sizes], exc)
            return self._close_spool()
        # oldest first, the run's end last: a replay records the run's end once its rows are
        # in, and a full disk that loses any row loses the end too (the run stays "running")
        lines = [*memory, *spooled, *ends]
        sizes = [*memory_sizes, *spooled_sizes, *end_sizes]
        self._spool.clear()
        for i, line in enumerate(lines):
            try:
                self._spool.append_line(line)
            except OSError as exc:
                self._lose_lines(sizes[i:], exc)
                break
        return self._close_spool()

    def _close_spool(self) -> Path | None:
        """Close the spool file, deleted when it holds nothing; its path if it holds rows."""
        spool, self._spool = self._spool, None
        self._spooled_rows = 0
        self._line_rows.clear()
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
        self._line_rows.append((batch.table, len(batch.rows)))

    def _set_aside(self, line: UnreadableLine) -> None:
        """A spool line read back unreadable (consumed): set aside, its rows counted."""
        rows = self._line_rows.popleft()[1]
        self._spooled_rows -= rows
        self.unreadable_rows += rows
        if line.set_aside(self._unreadable):
            self.unreadable_in = line.aside

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
                why,
                self.max_memory_rows,
            )

    def _lose(self, batches: list[RowBatch], why: str) -> None:
        for batch in batches:
            self.lost[batch.table] += len(batch.rows)
        self.loss_reason = self.loss_reason or why

    def _lose_lines(self, sizes: list[tuple[Table, int]], exc: OSError) -> None:
        """Spool lines no file could take, as (table, rows) each: lost."""
        for table, rows in sizes:
            self.lost[table] += rows
        self.loss_reason = self.loss_reason or self._spool_failure(exc)

    def _spool_failure(self, exc: OSError) -> str:
        why = write_failure(exc, self.spool_path)
        return f"cannot write the spool file {self.spool_path}: {why}"
