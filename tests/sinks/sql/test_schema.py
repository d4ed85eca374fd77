"""The pipeline's tables brought up to date in place: older tables gain the columns of
later versions, their rows kept."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from sqlalchemy import create_engine, text

from sinks.sql.query import list_runs, list_tracks
from sinks.sql.reading import DetectionQuery
from sinks.sql.schema import create_schema
from tests.sinks.sql.builders import PERSON, Box, write_run
from tests.sinks.sql.conftest import pg_schema, skip_without_pg


def test_an_older_detections_table_gets_the_unique_key_column(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # the table as the first version created it
        conn.executescript(
            "CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at DATETIME, ended_at DATETIME,"
            " status VARCHAR(16), config TEXT, hostname VARCHAR(255));"
            "CREATE TABLE detections (id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id),"
            " camera VARCHAR(255), frame INTEGER, pts FLOAT, time DATETIME, label VARCHAR(128),"
            " label_id INTEGER, score FLOAT, x1 FLOAT, y1 FLOAT, x2 FLOAT, y2 FLOAT,"
            " track_id INTEGER);"
            "INSERT INTO runs VALUES (1, '2026-01-01 00:00:00', NULL, 'finished', '', 'h');"
            "INSERT INTO detections VALUES (1, 1, 'gate', 0, 0.0, '2026-01-01 00:00:00',"
            " 'person', 1, 0.5, 0, 0, 1, 1, NULL);"
        )
    url = f"sqlite:///{db}"
    write_run(url, time.time(), {"gate": [[Box(0, 0, 1, 1, 0.9, PERSON)]] * 2})
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT run_id, frame, obj FROM detections ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(1, 0, None), (2, 0, 0), (2, 1, 0)]


def test_an_older_tracks_table_gets_the_snapshot_columns(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    write_run(url, time.time(), {"gate": [[Box(0, 0, 1, 1, 0.9, PERSON)]] * 2})
    with sqlite3.connect(db) as conn:  # the tracks table as versions before snapshots made it
        conn.execute("ALTER TABLE tracks DROP COLUMN snapshot_path")
        conn.execute("ALTER TABLE tracks DROP COLUMN snapshot_frame_path")
    old_rows = list_tracks(url, DetectionQuery(limit=None))  # a query reads it as it is
    assert old_rows.total == 1 and old_rows.rows[0].snapshot_path is None
    write_run(url, time.time(), {"gate": [[Box(0, 0, 1, 1, 0.9, PERSON)]] * 2})
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT run_id, snapshot_path FROM tracks ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(1, None), (2, None)]


def test_an_older_postgresql_runs_table_gets_the_reason_and_the_status_lost() -> None:
    skip_without_pg()
    with pg_schema() as url:
        run_id = write_run(url, time.time(), {"gate": [[Box(0, 0, 1, 1, 0.9, PERSON)]] * 2})
        engine = create_engine(url)
        try:
            with engine.begin() as conn:  # the runs table as versions before it made it
                conn.execute(text("ALTER TABLE runs DROP COLUMN reason"))
                conn.execute(text("ALTER TABLE runs DROP CONSTRAINT ck_runs_status"))
                conn.execute(
                    text(
                        "ALTER TABLE runs ADD CONSTRAINT ck_runs_status CHECK "
                        "(status IN ('running', 'finished', 'failed', 'interrupted'))"
                    )
                )
            (old,) = list_runs(url).rows  # a query reads it as it is
            assert (old.status, old.reason) == ("finished", None)
            create_schema(engine)
            with engine.begin() as conn:
                conn.execute(
                    text("UPDATE runs SET status = 'lost', reason = 'its node died' WHERE id = :i"),
                    {"i": run_id},
                )
            (run,) = list_runs(url).rows
        finally:
            engine.dispose()
    assert (run.status, run.reason) == ("lost", "its node died")


def test_a_deleted_newest_run_id_is_never_given_to_the_next_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.db'}"
    write_run(url, time.time(), {"gate": [[Box(0, 0, 1, 1, 0.9, PERSON)]]})
    engine = create_engine(url)
    with engine.begin() as conn:  # what `retention` does to a run with no rows left
        conn.execute(text("DELETE FROM detections"))
        conn.execute(text("DELETE FROM tracks"))
        conn.execute(text("DELETE FROM runs"))
    engine.dispose()
    write_run(url, time.time(), {"gate": [[Box(0, 0, 1, 1, 0.9, PERSON)]]})
    assert [run.id for run in list_runs(url).rows] == [2]
