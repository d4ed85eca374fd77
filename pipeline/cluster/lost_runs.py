"""The runs of dead shards, marked `lost` in the database: recorded first in a file of the
driver's spool folder (`LOST_FOLDER` in the SQL sink's `spool_dir`), then marked with every
record not marked yet, and taken out of the file once marked. A marking that the database
refuses, or that the run's stop cuts short while the database does not answer (or a driver
killed meanwhile), leaves its record for the next try: the next shard that dies, the end of
the run, and the next cluster run writing to that database from that folder, before any of
its shards starts (so before they replay their spool files, which leave a lost run's rows
out). So a dead shard's row ends `lost` once a try finds the database answering; it keeps
`running` only where the record could not be written either (a warning says so).

Marking is idempotent (only a row still `running` is marked), so a record marked twice, by
two drivers sharing the folder, changes nothing the second time. The file is locked (flock)
only while it is read or written, never while the database is waited for.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from pipeline.cluster.waits import StoppedWaiting, unless_stopped

log = logging.getLogger(__name__)

LOST_FOLDER = "lost"
"""The folder, under the SQL sink's `spool_dir` on the driver, of the runs to mark lost."""
MARKING_THREAD = "cluster-mark-lost"
"""The name of the thread that marks the runs while the driver waits for the database."""


@dataclass(frozen=True)
class LostRun:
    """A dead shard's run: its `config` (which names it among all runs), why it was lost,
    and when its shard was seen dead (its row's `ended_at`)."""

    config: str
    why: str
    ended_at: datetime

    def to_line(self) -> str:
        record = {"config": self.config, "why": self.why, "at": self.ended_at.timestamp()}
        return json.dumps(record, separators=(",", ":")) + "\n"

    @classmethod
    def from_line(cls, line: str) -> LostRun:
        """The record of a line; ValueError (or KeyError, TypeError) for one that is none."""
        data = json.loads(line)
        at = datetime.fromtimestamp(float(data["at"]), timezone.utc)
        return cls(str(data["config"]), str(data["why"]), at)


def mark_lost(
    url: str, spool_dir: Path, run_config: str, why: str, stop: threading.Event | None = None
) -> None:
    """Records that the run of `run_config` (a dead shard's) is over, `why`, and marks it
    in the database at `url`, with the records earlier tries left (`mark_recorded`). A
    record that cannot be written is said, and the run marked all the same."""
    lost = LostRun(run_config, why, datetime.now(timezone.utc))
    path = records_path(url, spool_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path, "a") as file:
            file.write(lost.to_line())
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        log.warning("cannot record the run of %s as lost in %s: %s", run_config, path, exc)
        _mark_unless_stopped(url, [lost], stop, kept=None)
        return
    mark_recorded(url, spool_dir, stop)


def mark_recorded(url: str, spool_dir: Path, stop: threading.Event | None = None) -> None:
    """Marks lost, in the database at `url`, the runs recorded in `spool_dir` (by this run
    or an earlier one), and takes them out of the file. A database that refuses, or that
    the run's `stop` ends the wait for, is logged, not raised: the records are kept."""
    path = records_path(url, spool_dir)
    try:
        records = _read(path)
    except OSError as exc:
        log.warning("cannot read the runs to mark lost in %s: %s", path, exc)
        return
    if records and _mark_unless_stopped(url, records, stop, kept=path):
        try:
            _forget(path, set(records))
        except OSError as exc:  # marked again next time: that changes nothing
            log.warning("cannot take the runs marked lost out of %s: %s", path, exc)


def records_path(url: str, spool_dir: Path) -> Path:
    """The file of the runs of the database at `url` to mark lost (named as its spool
    files are: `spool_prefix`)."""
    from sinks.sql.database import DatabaseUrl
    from sinks.sql.spool import spool_prefix

    return Path(spool_dir) / LOST_FOLDER / f"{spool_prefix(DatabaseUrl(url))}runs.jsonl"


def _mark_unless_stopped(
    url: str, runs: list[LostRun], stop: threading.Event | None, kept: Path | None
) -> bool:
    """Whether `runs` were marked lost: False (said, with the file `kept` that records them
    for the next try, if any) when the database refused or the run's `stop` ended the wait
    for it (`unless_stopped`)."""
    then = f"; kept in {kept} for the next try" if kept is not None else ""
    try:
        return unless_stopped(lambda: _mark(url, runs, then), stop, MARKING_THREAD)
    except StoppedWaiting:
        log.warning(
            "the run stopped while marking the runs of %s lost in %s, which has not answered%s",
            ", ".join(r.config for r in runs),
            _shown(url),
            then,
        )
        return False


def _mark(url: str, runs: list[LostRun], then: str) -> bool:
    """Marks `runs` lost in one transaction; False when the database refuses, said with
    `then` (what becomes of them)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    from sinks.sql.database import DatabaseUrl, make_engine, reason

    db = DatabaseUrl(url)
    engine = make_engine(db)
    update = text(
        "UPDATE runs SET status = 'lost', ended_at = :at, reason = :why "
        "WHERE config = :config AND status = 'running'"
    )
    try:
        with engine.begin() as conn:
            for run in runs:
                conn.execute(update, {"at": run.ended_at, "why": run.why, "config": run.config})
    except SQLAlchemyError as exc:
        configs = ", ".join(r.config for r in runs)
        why = reason(exc, db)
        log.warning("cannot mark the runs of %s lost in %s: %s%s", configs, db, why, then)
        return False
    finally:
        engine.dispose()
    return True


def _read(path: Path) -> list[LostRun]:
    """The records of `path` (none when it is missing); a line that is none (cut short by a
    crash) is said and left out."""
    try:
        with _locked(path, "r") as file:
            lines = file.readlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        try:
            records.append(LostRun.from_line(line))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("a line of %s is no run to mark lost (%s): left out", path, exc)
    return records


def _forget(path: Path, marked: set[LostRun]) -> None:
    """Takes `marked` out of `path`, keeping the lines added since; deleted once empty (a
    file already deleted: another driver marked them too)."""
    try:
        with _locked(path, "r+") as file:
            kept = [line for line in file.readlines() if not _among(line, marked)]
            if not kept:
                path.unlink()
                return
            file.seek(0)
            file.truncate()
            file.writelines(kept)
    except FileNotFoundError:
        log.debug("the runs marked lost were taken out of %s already", path)


def _among(line: str, runs: set[LostRun]) -> bool:
    """Whether `line` records one of `runs`; a line that is none is (it was said as read)."""
    try:
        return LostRun.from_line(line) in runs
    except (ValueError, KeyError, TypeError):
        return True


@contextmanager
def _locked(path: Path, mode: str) -> Iterator[IO[str]]:
    """`path` opened in `mode`, locked (flock) against other drivers while it is open: the
    file at `path` once locked (another driver may have deleted the one opened, emptied,
    while this one waited for its lock)."""
    while True:
        file = path.open(mode, encoding="utf-8")
        try:
            fcntl.flock(file, fcntl.LOCK_EX)
            if _same_file(file, path):
                yield file
                return
        finally:
            file.close()


def _same_file(file: IO[str], path: Path) -> bool:
    """Whether `file` is the file at `path` (none there: False)."""
    opened = os.fstat(file.fileno())
    try:
        there = path.stat()
    except FileNotFoundError:
        return False
    return (opened.st_dev, opened.st_ino) == (there.st_dev, there.st_ino)


def _shown(url: str) -> str:
    """The database at `url` as messages name it (no password)."""
    from sinks.sql.database import DatabaseUrl

    return str(DatabaseUrl(url))
