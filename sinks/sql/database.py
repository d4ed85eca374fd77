"""Opening SQL databases: the URL, engines, the schema, one-line error reasons, error kinds.

Shared by the SQL sink (`sinks.sql.sink`, `sinks.sql.writer`) and the read API
(`sinks.sql.query`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from sinks.sql.models import Base, Detection

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer or reader waits for another process's lock before failing."""

PG_CONNECT_TIMEOUT_S = 5
"""Longest wait for a PostgreSQL connection (unless the URL sets connect_timeout)."""
PG_TCP_USER_TIMEOUT_MS = 15_000
"""A PostgreSQL connection whose data goes unacknowledged this long is dropped, so a vanished
server is noticed in seconds instead of the system's TCP timeout (many minutes)."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A database URL as configured, parsed once; `str()` gives it with the password masked.

    Messages show `masked` (the password replaced by '***', also when the text is not a
    valid URL); the password itself serves only to connect (`connect_url`) and is shown by
    nothing, `repr` included.
    """

    _raw: str = field(repr=False)
    masked: str = field(init=False)
    sqlite_file: Path | None = field(init=False)
    """The file of a SQLite URL; None for other backends, in-memory databases and non-URLs."""
    _parsed: URL | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            url = make_url(self._raw)
            masked = url.render_as_string(hide_password=True)
            parsed: URL | None = url
        except (SQLAlchemyError, ValueError, TypeError):  # a path of non-UTF-8 bytes too
            parsed = None  # reported when connecting, by `connect_url`
            masked = _mask_unparsable(self._raw)
        object.__setattr__(self, "_parsed", parsed)
        object.__setattr__(self, "masked", masked)
        object.__setattr__(self, "sqlite_file", None if parsed is None else _sqlite_file(parsed))

    def __str__(self) -> str:
        return self.masked

    def connect_url(self) -> URL:
        """The parsed URL, password included: for `create_engine` only, never for display.

        Raises what `make_url` raises (ArgumentError, ValueError) when the text is no URL.
        """
        if self._parsed is None:
            self._raw.encode()  # UnicodeEncodeError (a ValueError): no driver takes such bytes
            return make_url(self._raw)  # raises the error that parsing met
        return self._parsed

    def scrub(self, message: str) -> str:
        """`message` with this URL, and its password wherever it stands, masked."""
        message = message.replace(self._raw, self.masked)
        password = None if self._parsed is None else self._parsed.password
        if password:
            message = message.replace(str(password), "***")
        return message


def _mask_unparsable(url: str) -> str:
    """Hide everything between the first ':' after "//" and the last '@'."""
    at = url.rfind("@")
    slashes = url.find("//")
    start = 0 if slashes < 0 else slashes + 2
    colon = url.find(":", start, at) if at >= 0 else -1
    return url if colon < 0 else f"{url[: colon + 1]}***{url[at:]}"


def _sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL points at; None for other backends and in-memory databases."""
    if url.get_backend_name() != "sqlite":
        return None
    db = url.database
    if not db or db == ":memory:" or db.startswith("file:"):
        return None
    return Path(db)


def reason(exc: BaseException, db: DatabaseUrl) -> str:
    """A one-line reason for `exc`, without the SQL statement or the password."""
    orig = getattr(exc, "orig", None)  # DBAPIError: the driver's own message is the useful one
    text_ = str(orig if orig is not None else exc) or type(exc).__name__
    return " ".join(db.scrub(text_).split())


def open_failure(exc: BaseException, db: DatabaseUrl) -> str:
    """Why `db` cannot be opened, with a hint on how to fix it."""
    why = reason(exc, db)
    if isinstance(exc, ImportError):
        return (
            f"database driver not installed ({why}); install it, e.g. "
            "pip install 'psycopg[binary]' and use postgresql+psycopg://user@host/db"
        )
    if isinstance(exc, (NoSuchModuleError, ArgumentError, ValueError)):
        return f"{why} ({URL_FORMS})"
    return why


URL_FORMS = "expected e.g. sqlite:///out/detections.db or postgresql+psycopg://user@host/db"


def is_transient(exc: BaseException) -> bool:
    """True for errors that a later retry may not get: lost or refused connections, locks.

    Constraint violations, bad data and SQL errors are permanent: retrying cannot help.
    """
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(
        exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)
    )


def _enable_sqlite_wal(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            # WAL lets `query` read while the pipeline writes; the timeout rides out the
            # short write locks instead of failing with "database is locked".
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()


def make_engine(
    db: DatabaseUrl, *, sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS
) -> Engine:
    """An engine for `db`; SQLite gets WAL mode, PostgreSQL bounded connect/send timeouts.

    Raises SQLAlchemyError / ImportError / ValueError for unusable URLs.
    """
    parsed = db.connect_url()
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "postgresql" and parsed.get_driver_name() == "psycopg":
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        if "tcp_user_timeout" not in parsed.query:
            connect_args["tcp_user_timeout"] = PG_TCP_USER_TIMEOUT_MS
    engine = create_engine(
        parsed, pool_pre_ping=backend != "sqlite", connect_args=connect_args
    )
    if backend == "sqlite":
        _enable_sqlite_wal(engine, sqlite_busy_timeout_ms)
    return engine


def create_schema(engine: Engine) -> None:
    """Create missing tables, and bring a `detections` table of an older version up to date.

    Older tables lack `obj` (the box's index in its frame), which makes every row unique
    and so retried inserts idempotent; it is added, NULL for the old rows.
    """
    Base.metadata.create_all(engine)
    columns = {c["name"] for c in inspect(engine).get_columns(Detection.__tablename__)}
    if "obj" in columns:
        return
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE detections ADD COLUMN obj INTEGER"))
        conn.execute(
            text(
                "CREATE UNIQUE INDEX IF NOT EXISTS uq_detections_run_id_camera_frame_obj "
                "ON detections (run_id, camera, frame, obj)"
            )
        )
