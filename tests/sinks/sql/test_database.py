"""DatabaseUrl masks passwords in every message, and errors are told apart: a full disk,
an outage, a refusal."""

from __future__ import annotations

import errno
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError

from sinks.sql.database import DatabaseUrl, error_kind, make_engine, open_failure, reason
from tests.sinks.sql.builders import sqlite_full_error


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


@pytest.mark.parametrize("password", ["p", "ab", "s3cret", "correct-horse-battery-staple"])
def test_a_short_password_is_masked_where_it_stands_not_inside_the_words_of_a_reason(
    password: str,
) -> None:
    db = DatabaseUrl(f"postgresql+psycopg://u:{password}@db/x?sslpassword={password}")
    exc = ValueError(
        f"import of psycopg halted; connection to postgresql+psycopg://u:{password}@db/x "
        f"failed: password={password} host=db sslpassword='{password}': "
        f'"{password}" rejected for user u; {password} wrong'
    )
    assert reason(exc, db) == (
        "import of psycopg halted; connection to postgresql+psycopg://u:***@db/x "
        "failed: password=*** host=db sslpassword='***': \"***\" rejected for user u; *** wrong"
    )


def test_a_password_in_the_url_of_a_reason_is_masked_whatever_its_length() -> None:
    db = DatabaseUrl("postgresql+psycopg://u:p@db/x")
    exc = ValueError("cannot connect to postgresql+psycopg://u:p@db:5432/x (postgres)")
    assert reason(exc, db) == "cannot connect to postgresql+psycopg://u:***@db:5432/x (postgres)"


def test_database_url_scrubs_secret_query_parameters_from_reasons() -> None:
    db = DatabaseUrl("postgresql+psycopg://u@db/x?password=s3cret&application_name=pipeline")
    assert db.connect_url().query["password"] == "s3cret"
    exc = ValueError('invalid dsn: "password=s3cret host=db": s3cret rejected')
    assert "s3cret" not in reason(exc, db)
    assert "application_name=pipeline" in str(db)


@pytest.mark.parametrize(
    ("url", "module", "install"),
    [
        ("mysql://u:s3cret@db/x", "MySQLdb", "pip install mysqlclient"),
        ("mysql+pymysql://u:s3cret@db/x", "pymysql", "pip install pymysql"),
        ("mssql+pyodbc://u:s3cret@db/x", "pyodbc", "pip install pyodbc"),
        ("oracle+oracledb://u:s3cret@db/x", "oracledb", "pip install oracledb"),
        ("postgresql+psycopg2://u:s3cret@db/x", "psycopg2", "pip install psycopg2-binary"),
    ],
    ids=["mysql", "pymysql", "mssql", "oracle", "psycopg2"],
)
def test_a_missing_database_driver_names_the_driver_of_the_url_dialect(
    monkeypatch: pytest.MonkeyPatch, url: str, module: str, install: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # `import module` fails: not installed
    db = DatabaseUrl(url)
    with pytest.raises(ImportError) as info:
        make_engine(db)
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    message = open_failure(info.value, db)
    assert message.startswith(f"database driver for {dialect} not installed (")
    assert message.endswith(f"install it: {install}") or f"install it: {install};" in message
    assert ("psycopg[binary]" in message) == dialect.startswith("postgresql")
    assert "\n" not in message


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
