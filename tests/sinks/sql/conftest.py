"""Databases for the SQL tests: a SQLite file, or a fresh schema of the local PostgreSQL.

The PostgreSQL cases are skipped only when the server cannot be reached. Override the
server with PIPELINE_TEST_PG_URL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from tests.sinks.sql.private_postgres import (
    PrivatePostgres,
    initdb_template,
    running_private_postgres,
)

PG_URL = os.environ.get("PIPELINE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_reachable() -> str | None:
    """None when PostgreSQL at PG_URL answers; else why not (one line)."""
    engine = create_engine(PG_URL, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return None
    except (SQLAlchemyError, ImportError) as exc:
        return " ".join(str(exc).split())[:200]
    finally:
        engine.dispose()


@contextmanager
def pg_schema(host: str | None = None, port: int | None = None) -> Iterator[str]:
    """A URL whose tables live in a new schema (dropped after); optionally via host:port."""
    admin = create_engine(PG_URL, pool_pre_ping=True)  # the server may restart meanwhile
    schema = f"test_sql_{uuid.uuid4().hex[:12]}"
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    if host is not None:
        url = url.set(host=host, port=port)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def skip_without_pg() -> None:
    why = pg_reachable()
    if why is not None:
        pytest.skip(f"PostgreSQL at {PG_URL} not reachable: {why}")


@pytest.fixture(params=["sqlite", "postgresql"])
def sql_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL with no tables in it: a SQLite file path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'pipeline.db'}"
        return
    skip_without_pg()
    with pg_schema() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template() -> Iterator[Path]:
    """One initdb for the session's private servers: copying its folder is faster."""
    with initdb_template() as data:
        yield data


@pytest.fixture
def private_postgres(postgres_template: Path) -> Iterator[PrivatePostgres]:
    """A running PostgreSQL server of this test's own (never the shared one), removed after."""
    with running_private_postgres(postgres_template) as server:
        yield server
