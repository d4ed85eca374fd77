"""Reading many rows back: they come from the driver a bounded number at a time, so that
Ctrl-C stops `query --all` between two fetches, not after the whole table is in memory."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event

from sinks.sql import query
from sinks.sql.reading import DetectionQuery
from tests.sinks.sql.builders import PERSON, T0, Box, write_run

ROWS = 12


class CountingCursor(sqlite3.Cursor):
    """A cursor that notes how many rows each fetch of a SELECT of rows (not of a count)
    returned."""

    fetched: list[int]
    rows_of_a_table = False

    def execute(self, sql: str, *args: Any) -> CountingCursor:
        read = sql.lstrip().upper()
        self.rows_of_a_table = read.startswith("SELECT") and "COUNT(" not in read
        super().execute(sql, *args)
        return self

    def _note(self, rows: list[Any]) -> list[Any]:
        if self.rows_of_a_table:
            self.fetched.append(len(rows))
        return rows

    def fetchall(self) -> list[Any]:
        return self._note(super().fetchall())

    def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._note(super().fetchmany(self.arraysize if size is None else size))


@pytest.fixture
def fetches() -> Iterator[list[int]]:
    """The rows each fetch of the SQLite driver returned while the test reads."""
    fetched: list[int] = []

    class Counting(sqlite3.Connection):
        def cursor(self, factory: Callable[..., sqlite3.Cursor] | None = None) -> Any:
            cursor = super().cursor(CountingCursor)
            cursor.fetched = fetched
            return cursor

    def counting(_dialect: Any, _record: Any, _args: Any, params: dict[str, Any]) -> None:
        params["factory"] = Counting

    event.listen(Engine, "do_connect", counting)
    try:
        yield fetched
    finally:
        event.remove(Engine, "do_connect", counting)


@pytest.mark.parametrize("read", ["latest_detections", "query_detections", "list_tracks"])
def test_all_rows_of_a_query_are_fetched_a_bounded_number_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fetches: list[int], read: str
) -> None:
    url = f"sqlite:///{tmp_path / 'det.db'}"
    frames = {f"cam-{i}": [[Box(0, 0, 10, 10, 0.9, PERSON)]] * 2 for i in range(ROWS // 2)}
    write_run(url, T0, frames)
    fetches.clear()  # those of the writing
    monkeypatch.setattr(query, "FETCH_ROWS", 5)
    found = getattr(query, read)(url, DetectionQuery())
    rows = found if isinstance(found, list) else found.rows
    assert len(rows) == (ROWS if read != "list_tracks" else ROWS // 2)
    assert fetches and max(fetches) <= 5
