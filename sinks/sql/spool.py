"""Spool files: the batches of rows the SQL writer has yet to write, as JSON lines.

`RowBatch` is a batch of rows for one table, and its line in a spool file; `SpoolFile` a
file of them, appended to and read back from the front (the outbox's overflow,
`sinks.sql.outbox`). A spool file left by a run that could not reach its database before
it ended is replayed by the next run writing to the same database (`sinks.sql.replay`;
`spool_prefix` names a database's files). Files are locked (flock) by the process writing
them, so a running pipeline's spool is never taken by another one. A line that is no batch
(cut short by a crash, damaged) is set aside, as it is, in `UNREADABLE_FOLDER`
(`UnreadableLine`), and the rest of its file is written. `SetAside` finds the lines already
set aside, by their line, so that each is set aside once, even by a run killed in between.
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from sinks.disk import write_failure
from sinks.sql.database import DatabaseUrl

log = logging.getLogger(__name__)

Table = Literal["detections", "tracks", "zone_visits", "line_crossings", "run_end"]
TABLES: tuple[Table, ...] = get_args(Table)
UNREADABLE_FOLDER = "unreadable"
"""The folder, under the spool folder, of the spool lines that could not be read back."""


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
        """The batch of a spool line; ValueError, saying why, for a line that is none."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        if data.get("table") not in TABLES:
            raise ValueError(f"unknown table {data.get('table')!r}")
        rows = data.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError('"rows" is not a list of objects')
        if not all(isinstance(r.get("run_id"), int) for r in rows):
            raise ValueError('a row without a "run_id"')
        return cls(data["table"], rows)


@dataclass(frozen=True)
class UnreadableLine:
    """A line of the spool file `spool` (its `number`th, from 1) that is no batch: cut short
    by a crash, or damaged. It is set aside as it is, never dropped: a person who mends it
    moves the file into the spool folder, and the next run writes it."""

    spool: Path
    number: int
    text: bytes
    why: str

    @property
    def aside(self) -> Path:
        """The file it is set aside in: the spool file's name, in `UNREADABLE_FOLDER`."""
        return self.spool.parent / UNREADABLE_FOLDER / self.spool.name

    @property
    def line(self) -> bytes:
        """The line as it is set aside: its text, newline-ended."""
        return self.text if self.text.endswith(b"\n") else self.text + b"\n"

    def set_aside(self, earlier: SetAside) -> bool:
        """Append the line to `aside`, unless `earlier` finds it set aside already, and log,
        in one line, what became of it; whether it is kept there."""
        found = earlier.once(self.line, self._append)
        if found is None:
            return False
        aside, already = found
        where = "already set aside in" if already else "set aside as it was in"
        log.error("sql sink: %s; %s %s", self, where, aside)
        return True

    def _append(self) -> Path | None:
        """Append the line to `aside`, written out to the disk: `aside`, or None (logged)."""
        try:
            self.aside.parent.mkdir(parents=True, exist_ok=True)
            with open(self.aside, "ab") as file:
                file.write(self.line)
                file.flush()
                os.fsync(file.fileno())
        except OSError as exc:
            why = write_failure(exc, self.aside)
            log.error(
                "sql sink: %s; it could not be kept: cannot write %s: %s", self, self.aside, why
            )
            return None
        return self.aside

    def __str__(self) -> str:
        return f"line {self.number} of {self.spool} unreadable ({self.why})"

    @classmethod
    def read(cls, spool: Path, number: int, text: bytes) -> RowBatch | UnreadableLine:
        """The batch of line `number` of `spool`, or that line, unreadable."""
        try:
            return RowBatch.from_line(text.decode())
        except ValueError as exc:  # bad UTF-8 or JSON, or no batch's shape
            return cls(spool, number, text, " ".join(str(exc).split()))


def line_key(line: bytes) -> bytes:
    """The key `SetAside` finds a line by."""
    return hashlib.blake2b(line, digest_size=16).digest()


class SetAside:
    """The spool lines set aside in the files of `folder` that `pattern` (a glob) names,
    found by their line, so that each is set aside once (`once`).

    A run killed after it set a line aside but before it blanked the line in its spool file
    (`sinks.sql.replay`), or before it was done with its own spool file (`sinks.sql.outbox`),
    leaves that line to the next run, which finds it here instead of setting it aside again.
    The files are read at the first `once`; one that cannot be read is left out (logged):
    its lines may then be set aside once more, never lost.
    """

    def __init__(self, folder: Path, pattern: str) -> None:
        self._folder = folder
        self._pattern = pattern
        self._lines: dict[bytes, Path] | None = None

    @classmethod
    def unreadable(cls, spool: Path) -> SetAside:
        """The lines of `spool` set aside unreadable (`UnreadableLine.aside`)."""
        return cls(spool.parent / UNREADABLE_FOLDER, glob.escape(spool.name))

    def once(self, line: bytes, set_aside: Callable[[], Path | None]) -> tuple[Path, bool] | None:
        """The file `line` is set aside in, and whether it was there already; None when it
        could not be set aside.

        A line not found is set aside by `set_aside()`, which returns its file (None if it
        could not), the line written out to the disk: its spool line is blanked next, and a
        power cut must not keep the blank and lose the line. (Blanking first instead would
        lose it to a kill between the two.)
        """
        if self._lines is None:
            self._lines = self._read()
        key = line_key(line)
        if (earlier := self._lines.get(key)) is not None:
            return earlier, True
        if (aside := set_aside()) is None:
            return None
        self._lines[key] = aside
        return aside, False

    def _read(self) -> dict[bytes, Path]:
        lines: dict[bytes, Path] = {}
        for path in sorted(self._folder.glob(self._pattern)):
            try:
                with open(path, "rb") as file:
                    for line in file:
                        lines.setdefault(line_key(line), path)
            except OSError as exc:
                why = exc.strerror or type(exc).__name__
                log.warning("sql sink: cannot read the lines set aside in %s: %s", path, why)
        return lines


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
        self.lines_read = 0
        """Lines before `read_offset`."""
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

    def read_next(self) -> tuple[RowBatch | UnreadableLine, int]:
        """The batch at the read offset (or its line, unreadable) and the offset after it."""
        line = self._line_at(self.read_offset)
        next_offset = self.read_offset + len(line)
        return UnreadableLine.read(self.path, self.lines_read + 1, line), next_offset

    def consumed(self, next_offset: int) -> None:
        self.read_offset = next_offset
        self.lines_read += 1
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
        self.read_offset, self.lines_read, self.unread, self.size = 0, 0, 0, 0

    def sync(self) -> None:
        os.fsync(self._fd)

    def on_disk(self) -> bool:
        """Whether a name still leads to the file (it was not deleted while open)."""
        return os.fstat(self._fd).st_nlink > 0

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


def spool_prefix(db: DatabaseUrl) -> str:
    """File-name prefix of the spool files of one database (same for every run using it)."""
    key = str(db.sqlite_file.resolve()) if db.sqlite_file is not None else db.masked
    return f"sql-{hashlib.sha1(key.encode()).hexdigest()[:12]}-"
