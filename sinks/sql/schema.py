"""The pipeline's tables in a database: made where missing, tables of older versions
brought up to date in place, and another program's tables of the same names refused.
"""

from __future__ import annotations

from sqlalchemy import Engine, inspect, text

from sinks.sql.database import DatabaseUrl, make_engine, not_a_database
from sinks.sql.models import RUN_STATUSES, Base, Detection, Run

FIRST_VERSION_COLUMNS: dict[str, frozenset[str]] = {
    "runs": frozenset({"id", "started_at", "status"}),
    "detections": frozenset({"id", "run_id", "camera", "frame", "time", "label"}),
}
"""Columns every version wrote: a table of one of these names without them is another's."""


def foreign_tables(engine: Engine) -> str | None:
    """Why the tables of `engine`'s database are another program's (one of the pipeline's
    names without the columns every version wrote); None when they are ours or missing."""
    inspector = inspect(engine)
    for table, needed in FIRST_VERSION_COLUMNS.items():
        if not inspector.has_table(table):
            continue
        if missing := sorted(needed - {c["name"] for c in inspector.get_columns(table)}):
            return (
                f"its {table} table is not this pipeline's (without the columns "
                f"{', '.join(missing)}); left as it is"
            )
    return None


def foreign_database(db: DatabaseUrl) -> str | None:
    """`foreign_tables` of `db`, read without changing it (a SQLite file keeps its journal
    mode); None for a SQLite file the pipeline would make (missing or empty) and for one
    that is no database at all (opening it for writing says so)."""
    if db.sqlite_file is not None and not_a_database(db) is not None:
        return None
    engine = make_engine(db, read_only=True)
    try:
        return foreign_tables(engine)
    finally:
        engine.dispose()


COLUMNS_ADDED = {
    "tracks": ("snapshot_path", "snapshot_frame_path"),
    "runs": ("reason",),
    "zone_visits": ("last_frame", "last_time"),
}
"""Nullable columns that tables of older versions lack, added on open (NULL in their rows,
and in rows that older versions left in spool files)."""
STATUS_CHECK = "ck_runs_status"
"""The name of the check on `runs.status` (`Base`'s naming convention)."""


def create_schema(engine: Engine) -> None:
    """Create missing tables, and bring tables of an older version up to date.

    Older `detections` tables lack `obj` (the box's index in its frame), which makes every
    row unique and so retried inserts idempotent; older `tracks` tables lack the snapshot
    paths, older `runs` tables the reason and (PostgreSQL) the status `lost`, older
    `zone_visits` tables the last frame inside. Each column is added, NULL for the old rows.
    """
    Base.metadata.create_all(engine)
    _add_columns(engine)
    _allow_every_status(engine)
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


def _add_columns(engine: Engine) -> None:
    """Adds the columns of `COLUMNS_ADDED` that the tables lack."""
    for table, names in COLUMNS_ADDED.items():
        columns = {c["name"] for c in inspect(engine).get_columns(table)}
        missing = [name for name in names if name not in columns]
        if not missing:
            continue
        with engine.begin() as conn:
            for name in missing:
                kind = Base.metadata.tables[table].c[name].type.compile(engine.dialect)
                conn.execute(text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))


def _allow_every_status(engine: Engine) -> None:
    """Widens the status check of an older PostgreSQL `runs` table to every status of
    `RUN_STATUSES` (SQLite cannot change a check; only cluster runs, on PostgreSQL, are
    ever marked `lost`)."""
    if engine.dialect.name != "postgresql":
        return
    checks = inspect(engine).get_check_constraints(Run.__tablename__)
    check = next((c for c in checks if c["name"] == STATUS_CHECK), None)
    if check is None or all(f"'{s}'" in check["sqltext"] for s in RUN_STATUSES):
        return
    allowed = ", ".join(f"'{s}'" for s in RUN_STATUSES)
    with engine.begin() as conn:
        conn.execute(
            text(
                f"ALTER TABLE runs DROP CONSTRAINT {STATUS_CHECK}, "
                f"ADD CONSTRAINT {STATUS_CHECK} CHECK (status IN ({allowed}))"
            )
        )
