"""A dead shard's run is marked `lost` even when the database could not take the marking as
the shard died: the record kept in the driver's spool folder is marked by the next try."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import pipeline.cluster.lost_runs
from pipeline.cluster.lost_runs import LostRun, mark_lost, mark_recorded, records_path
from pipeline.cluster.resume import prepare_database
from sinks.sql.query import list_runs
from sinks.sql.sink import SqlSink
from tests.sinks.sql.builders import LABELS
from tests.sinks.sql.conftest import pg_schema, skip_without_pg

DEAD = "c.yaml (cluster abc run 2 on shard-1)"


@pytest.fixture
def pg_url() -> Iterator[str]:
    skip_without_pg()
    with pg_schema() as url:
        yield url


def test_a_run_the_database_refused_to_mark_lost_is_marked_by_the_next_try(
    pg_url: str, tmp_path: Path
) -> None:
    """The database refuses the marking as the shard dies (its `runs` table away for a
    moment): the run stays recorded, and the next try (the run's end, the next run) marks
    it with the reason and the time of the death, and takes the record out."""
    SqlSink(pg_url, LABELS, run_config=DEAD, spool_dir=tmp_path / "shard").close()
    engine = create_engine(pg_url)
    try:
        with engine.begin() as conn:  # as a shard killed with its node leaves its run
            conn.execute(text("UPDATE runs SET status = 'running', ended_at = NULL"))
            conn.execute(text("ALTER TABLE runs RENAME TO runs_away"))
        before = datetime.now(timezone.utc)
        mark_lost(pg_url, tmp_path, DEAD, "shard-1 on 10.0.0.8 died: gone")
        died = datetime.now(timezone.utc)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE runs_away RENAME TO runs"))
    finally:
        engine.dispose()
    assert [r.status for r in list_runs(pg_url).rows] == ["running"]
    assert records_path(pg_url, tmp_path).exists()

    mark_recorded(pg_url, tmp_path)

    (run,) = list_runs(pg_url).rows
    assert (run.status, run.reason) == ("lost", "shard-1 on 10.0.0.8 died: gone")
    assert run.ended_at is not None and before <= run.ended_at <= died
    assert not records_path(pg_url, tmp_path).exists()


def test_a_run_another_driver_records_while_the_others_are_marked_stays_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file is not locked while the database is asked: a record added meanwhile (a
    second driver's dead shard) is kept for its own try, not taken out with those marked."""
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    prepare_database(url)
    path = records_path(url, tmp_path)
    other = LostRun(
        "d.yaml (cluster xyz run 1 on shard-0)", "shard-0 died", datetime.now(timezone.utc)
    )
    mark = pipeline.cluster.lost_runs._mark

    def mark_while_another_records(url: str, runs: list[LostRun], then: str) -> bool:
        with path.open("a", encoding="utf-8") as file:
            file.write(other.to_line())
        return mark(url, runs, then)

    monkeypatch.setattr(pipeline.cluster.lost_runs, "_mark", mark_while_another_records)
    mark_lost(url, tmp_path, DEAD, "shard-1 died")
    assert [LostRun.from_line(line) for line in path.read_text(encoding="utf-8").splitlines()] == [
        other
    ]
