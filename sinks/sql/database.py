"""Opening SQL databases: the URL, engines, one-line error reasons, error kinds (a full
disk, an unreachable database, a refusal), and class names matched in SQL. The tables
themselves are `sinks.sql.schema`'s.

Shared by the SQL sink (`sinks.sql.sink`, `sinks.sql.writer`) and the read API
(`sinks.sql.reading`, `sinks.sql.query`).
"""

from __future__ import annotations

import os
import re
import sqlite3
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote

from sqlalchemy import Engine, String, create_engine, event
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
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from pipeline.types import LabelMap
from pipeline.urls import is_secret_parameter, mask_credentials
from sinks.disk import file_system, is_disk_full

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer or reader waits for another process's lock before failing."""

PG_CONNECT_TIMEOUT_S = 5
"""Longest wait for a PostgreSQL connection (unless the URL sets connect_timeout)."""
PG_TCP_USER_TIMEOUT_MS = 15_000
"""A PostgreSQL connection whose data goes unacknowledged this long is dropped, so a vanished
server is noticed in seconds instead of the system's TCP timeout (many minutes)."""


@dataclass(frozen=True)
class DatabaseUrl:
    """A database URL as configured, parsed once; `str()` gives it with credentials masked.

    Messages show `masked` (the password and secret query parameters such as `password=`
    replaced by '***', also when the text is not a valid URL); the credentials themselves
    serve only to connect (`connect_url`) and are shown by nothing, `repr` included.
    """

    _raw: str = field(repr=False)
    masked: str = field(init=False)
    sqlite_file: Path | None = field(init=False)
    """The file of a SQLite URL; None for other backends, in-memory databases and non-URLs."""
    _parsed: URL | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            url = make_url(self._raw)
            rendered = url.render_as_string(hide_password=True)
            parsed: URL | None = url
        except (SQLAlchemyError, ValueError, TypeError):  # a path of non-UTF-8 bytes too
            parsed = None  # reported when connecting, by `connect_url`
            rendered = _mask_unparsable(self._raw)
        masked = mask_credentials(rendered)  # secret query parameters too
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
        """`message` with this URL, and its credentials wherever they stand as whole words,
        masked (a one-letter password leaves the words holding its letter readable)."""
        message = message.replace(self._raw, self.masked)
        for secret in self._secrets():
            message = _whole(secret).sub("***", message)
        return mask_credentials(message)

    def _secrets(self) -> list[str]:
        """The password and the values of secret query parameters, longest first."""
        if self._parsed is None:
            return []
        secrets = [str(self._parsed.password or "")]
        for name, value in self._parsed.query.items():
            if is_secret_parameter(name):
                secrets += [value] if isinstance(value, str) else list(value)
        return sorted((s for s in secrets if s), key=len, reverse=True)


def _whole(secret: str) -> re.Pattern[str]:
    """`secret` where it stands as a whole, not inside a word: a password `p` is masked in
    `password=p` but not in `import` (a whole word is what a driver's message quotes)."""
    before = r"(?<!\w)" if re.match(r"\w", secret[0]) else ""
    after = r"(?!\w)" if re.match(r"\w", secret[-1]) else ""
    return re.compile(before + re.escape(secret) + after)


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
    if not db or db == ":memory:":
        return None
    if db.startswith("file:") and url.query.get("uri") in ("true", "1"):
        path, _, params = db.removeprefix("file:").partition("?")
        if path in ("", ":memory:") or "mode=memory" in params:
            return None
        return Path(unquote(path.removeprefix("//")))
    return Path(db)


SQLITE_HEADER = b"SQLite format 3\x00"
"""The first bytes of every SQLite database file."""


def not_a_database(db: DatabaseUrl) -> str | None:
    """Why `db` is not an existing database, or None. Reading commands check this before
    they connect, since SQLite would make a database of a missing or empty file.

    Only SQLite files are checked (a server answers for itself): the file must exist, be a
    regular file and start with SQLite's header.
    """
    path = db.sqlite_file
    if path is None:
        return None
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
            return f"{path} is {kind}, not a SQLite database"
        with path.open("rb") as f:
            header = f.read(len(SQLITE_HEADER))
    except FileNotFoundError:
        return (
            f"database file {path} does not exist "
            "(run the pipeline with an sql output first, or check the path)"
        )
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror or exc}"
    if header != SQLITE_HEADER:
        what = "is empty" if info.st_size == 0 else "holds something else"
        return f"{path} {what}: not a SQLite database (left as it is)"
    return None


SQLITE_READONLY = 8
"""SQLite's primary result code for a write the file, or its folder, does not allow
(sqlite3.h); extended codes keep it in their low byte."""


def sqlite_write_refused(db: DatabaseUrl) -> sqlite3.Error | None:
    """SQLite's own error writing to `db`'s existing database file when it may not (the
    file or its folder read-only); None when it may, and when that cannot be known yet (no
    file, another program's, a lock): opening it for writing says so then. Found by a write
    rolled back: the file is left as it was."""
    path = db.sqlite_file
    if path is None or not path.is_file():
        return None
    if path.stat().st_size > 0 and not_a_database(db) is not None:
        return None  # another program's file (`foreign_database`); an empty one SQLite takes
    try:
        connection = sqlite3.connect(
            f"{path.resolve().as_uri()}?mode=rw", uri=True, timeout=0, isolation_level=None
        )
    except sqlite3.Error:
        return None
    try:
        connection.execute("BEGIN IMMEDIATE")
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        connection.execute(f"PRAGMA user_version = {int(version)}")  # writes what is there
    except sqlite3.Error as exc:
        code = getattr(exc, "sqlite_errorcode", None)  # Python 3.11+
        if code is not None and code & 0xFF == SQLITE_READONLY:
            return exc
        return None
    finally:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        connection.close()
    return None


def reason(exc: BaseException, db: DatabaseUrl) -> str:
    """A one-line reason for `exc`, without the SQL statement or the password."""
    orig = getattr(exc, "orig", None)  # DBAPIError: the driver's own message is the useful one
    text_ = str(orig if orig is not None else exc) or type(exc).__name__
    return " ".join(db.scrub(text_).split())


def open_failure(exc: BaseException, db: DatabaseUrl) -> str:
    """Why `db` cannot be opened, with a hint on how to fix it."""
    why = reason(exc, db)
    if isinstance(exc, ImportError):
        return _missing_driver(exc, db, why)
    if isinstance(exc, (NoSuchModuleError, ArgumentError, ValueError)):
        return f"{why} ({URL_FORMS})"
    if error_kind(exc) == "disk full" and db.sqlite_file is not None:
        return f"{why} ({disk_full(exc, db)})"
    return why


DRIVER_PACKAGES = {
    "MySQLdb": "mysqlclient",
    "mysql": "mysql-connector-python",
    "psycopg": "'psycopg[binary]'",
    "psycopg2": "psycopg2-binary",
    "cx_Oracle": "cx_Oracle",
}
"""What to pip install for a driver module whose package is named otherwise (else: its name)."""

PSYCOPG_HINT = "pip install 'psycopg[binary]' and use postgresql+psycopg://user@host/db"


def _missing_driver(exc: ImportError, db: DatabaseUrl, why: str) -> str:
    """'database driver for <backend> not installed (why)', and how to install the module
    `exc` found missing (for PostgreSQL: or psycopg, the driver the pipeline is tested with)."""
    try:
        backend: str | None = db.connect_url().get_backend_name()
    except (SQLAlchemyError, ValueError):
        backend = None
    message = f"database driver for {backend or 'the URL'} not installed ({why})"
    module = (exc.name or "").split(".", 1)[0]
    if module:
        message += f"; install it: pip install {DRIVER_PACKAGES.get(module, module)}"
    if backend == "postgresql" and module != "psycopg":
        message += f"; or {PSYCOPG_HINT}"
    return message


URL_FORMS = "expected e.g. sqlite:///out/detections.db or postgresql+psycopg://user@host/db"


ErrorKind = Literal["disk full", "unreachable", "refused"]
"""What an error writing rows means for the rows: the disk holding the database is full
(only room helps), the database is unreachable (lost or refused connections, locks: a retry
may get through), or it refuses them for good (constraints, bad data, SQL errors)."""

SQLITE_FULL = 13
"""SQLite's result code for a database file that cannot grow (sqlite3.h)."""
PG_DISK_FULL = "53100"
"""PostgreSQL's SQLSTATE for a full disk on the server."""


def error_kind(exc: BaseException) -> ErrorKind:
    """The kind of `exc`, an error met writing rows (see `ErrorKind`)."""
    orig = getattr(exc, "orig", None)  # DBAPIError: the driver's own error
    if any(_says_disk_full(e) for e in (exc, orig) if e is not None):
        return "disk full"
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return "unreachable"
    if isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, PoolTimeoutError)):
        return "unreachable"
    return "refused"


def _says_disk_full(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)  # an extended code: the primary one is 8 bits
    return (
        is_disk_full(exc)
        or (isinstance(code, int) and code & 0xFF == SQLITE_FULL)
        or getattr(exc, "sqlstate", None) == PG_DISK_FULL
    )


def disk_full(exc: BaseException, db: DatabaseUrl) -> str:
    """Which disk is full, for an error of kind "disk full": "disk full: the file system at
    ... (free of total)" for SQLite, the server's own words for a database server."""
    if db.sqlite_file is not None:
        return f"disk full: {file_system(db.sqlite_file)}"
    return f"the database server's disk is full ({reason(exc, db)})"


class LabelKey(FunctionElement[str]):
    """A stored class name as `LabelMap.key` matches it: in SQLite, `LabelMap.key` itself
    (a function each connection is given); elsewhere `lower(trim(name))`, the server's
    lower case, which is no case folding (ß stays ß)."""

    type = String()
    name = "label_key"
    inherit_cache = True


@compiles(LabelKey)
def _lowered(element: LabelKey, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower(trim({compiler.process(element.clauses, **kw)}))"


@compiles(LabelKey, "sqlite")
def _folded(element: LabelKey, compiler: SQLCompiler, **kw: Any) -> str:
    return f"label_key({compiler.process(element.clauses, **kw)})"


def _sqlite_label_key(name: str | None) -> str | None:
    return None if name is None else LabelMap.key(name)


def _set_up_sqlite(engine: Engine, busy_timeout_ms: int, *, wal: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.create_function("label_key", 1, _sqlite_label_key, deterministic=True)
        cur = dbapi_conn.cursor()
        try:
            # WAL lets `query` read while the pipeline writes; the timeout rides out the
            # short write locks instead of failing with "database is locked".
            if wal:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()


def _read_only(url: URL, path: Path) -> URL:
    """`url`, a SQLite file's, as a URI that opens the file read-only (mode=ro)."""
    database = url.database or ""
    if not (database.startswith("file:") and url.query.get("uri") in ("true", "1")):
        database = f"file:{quote(os.path.abspath(path))}"  # a URI: '?', '#', '%' escaped
    return url.set(database=database).update_query_dict({"mode": "ro", "uri": "true"})


def make_engine(
    db: DatabaseUrl,
    *,
    sqlite_busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
    read_only: bool = False,
) -> Engine:
    """An engine for `db`; SQLite gets WAL mode, PostgreSQL bounded connect/send timeouts.

    `read_only`: a SQLite file is opened read-only and keeps its journal mode, so that
    reading a database that may not be ours changes nothing in it (other backends: as is).
    Raises SQLAlchemyError / ImportError / ValueError for unusable URLs.
    """
    parsed = db.connect_url()
    if read_only and db.sqlite_file is not None:
        parsed = _read_only(parsed, db.sqlite_file)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "postgresql" and parsed.get_driver_name() == "psycopg":
        if "connect_timeout" not in parsed.query:
            connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
        if "tcp_user_timeout" not in parsed.query:
            connect_args["tcp_user_timeout"] = PG_TCP_USER_TIMEOUT_MS
    engine = create_engine(parsed, pool_pre_ping=backend != "sqlite", connect_args=connect_args)
    if backend == "sqlite":
        _set_up_sqlite(engine, sqlite_busy_timeout_ms, wal=not read_only)
    return engine
