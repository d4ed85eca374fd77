"""DatabaseUrl masks passwords in every message, an older schema is brought up to date, and
errors are told apart: a full disk, an outage, a refusal."""

from __future__ import annotations

import errno
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from sinks.sql.database import DatabaseUrl, create_schema, error_kind, reason
from sinks.sql.query import list_runs, list_tracks
from sinks.sql.reading import DetectionQuery
from tests.sinks.sql.builders import PERSON, Box, sqlite_full_error, write_run
from tests.sinks.sql.conftest import pg_schema, skip_without_pg


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://u:s3cret@db:5432/x", "postgresql+psycopg://u:***@db:5432/x"),
        ("postgresql+psycopg://u:s3cret@db:notaport/x", "postgresql+psycopg://u:***@db:notaport/x"),
        ("not a url u:s3cret@", "not a url u:***@"),
        ("sqlite:///out/detections.db", "sqlite:///out/detections.db"),
        ("postgresql+psycopg://u@db/x?password=s3cret", "postgresql+psycopg://u@db/x?password=***"),
        (
            "postgresql+psycopg://u@db/x?sslmode=require&sslpassword=s3cret",
            "postgresql+psycopg://u@db/x?sslmode=require&sslpassword=***",
        ),
        ("postgresql+psycopg://u:s3c@ret@db/x", "postgresql+psycopg://u:***@db/x"),
        (
            "postgresql+psycopg://u@db:notaport/x?password=s3cret",
            "postgresql+psycopg://u@db:notaport/x?password=***",
        ),
    ],
    ids=[
        "valid",
        "bad-port",
        "unparsable",
        "no-password",
        "password-parameter",
        "sslpassword-parameter",
        "at-in-password",
        "parameter-of-unparsable",
    ],
)
def test_database_url_shows_only_the_masked_form(url: str, masked: str) -> None:
    db = DatabaseUrl(url)
    assert str(db) == db.masked == masked
    assert "s3cret" not in repr(db) and "s3cret" not in f"{db}"


def test_database_url_keeps_the_password_for_connecting_and_scrubs_it_from_reasons() -> None:
    db = DatabaseUrl("postgresql+psycopg://u:s3cret@db/x")
    assert db.connect_url().password == "s3cret"
    exc = ValueError("connection to postgresql+psycopg://u:s3cret@db/x failed:\n s3cret wrong")
    assert reason(exc, db) == "connection to postgresql+psycopg://u:***@db/x failed: *** wrong"
    with pytest.raises(ArgumentError):
        DatabaseUrl("not a url u:s3cret@").connect_url()


def test_database_url_scrubs_secret_query_parameters_from_reasons() -> None:
    db = DatabaseUrl("postgresql+psycopg://u@db/x?password=s3cret&application_name=pipeline")
    assert db.connect_url().query["password"] == "s3cret"
    exc = ValueError('invalid dsn: "password=s3cret host=db": s3cret rejected')
    assert "s3cret" not in reason(exc, db)
    assert "application_name=pipeline" in str(db)


@pytest.mark.parametrize(
    ("url", "file"),
    [
        ("sqlite:///out/detections.db", Path("out/detections.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql+psycopg://u@db/x", None),
        ("not a url", None),
    ],
)
def test_database_url_names_the_sqlite_file(url: str, file: Path | None) -> None:
    assert DatabaseUrl(url).sqlite_file == file


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


def sqlite_locked_error(tmp_path: Path) -> OperationalError:
    db = tmp_path / "locked.db"
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("CREATE TABLE t (x INTEGER)")
    locker.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{db}", connect_args={"timeout": 0})
    try:
        with pytest.raises(OperationalError) as info, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        return info.value
    finally:
        engine.dispose()
        locker.close()


def wrapped(orig: Exception) -> DBAPIError:
    """`orig` (a driver's error) as SQLAlchemy raises it."""
    error = DBAPIError.instance("INSERT ...", {}, orig, psycopg.Error)
    assert isinstance(error, DBAPIError)  # typed as its base, StatementError
    return error


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (sqlite_full_error, "disk full"),
        (lambda _: wrapped(psycopg.errors.DiskFull("could not extend file")), "disk full"),
        (lambda _: OSError(errno.ENOSPC, "No space left on device"), "disk full"),
        (lambda _: OSError(errno.EDQUOT, "Disk quota exceeded"), "disk full"),
        (sqlite_locked_error, "unreachable"),
        (lambda _: wrapped(psycopg.OperationalError("connection refused")), "unreachable"),
        (lambda _: wrapped(psycopg.errors.AdminShutdown("terminating connection")), "unreachable"),
        (lambda _: wrapped(psycopg.errors.UniqueViolation("duplicate key")), "refused"),
        (lambda _: wrapped(psycopg.errors.UndefinedColumn("no column obj")), "refused"),
    ],
    ids=[
        "sqlite-full", "pg-disk-full", "enospc", "quota", "sqlite-locked", "pg-refused",
        "pg-shutdown", "pg-unique", "pg-undefined-column",
    ],
)  # fmt: skip
def test_a_full_disk_is_told_apart_from_an_outage_and_from_a_refusal(
    tmp_path: Path, make: Callable[[Path], BaseException], kind: str
) -> None:
    assert error_kind(make(tmp_path)) == kind


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
