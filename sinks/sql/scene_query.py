"""What zones and lines saw, from the `zone_visits` and `line_crossings` tables: the
visits listed (`query --list visits`), and counted (`query --count-by line|zone [--every
PERIOD]`).

Rows are grouped in Python after one filtered SELECT, the same on SQLite and PostgreSQL;
periods (`every`) are aligned on whole multiples of the period since 1970-01-01 UTC (15
minutes: :00, :15, :30, :45; one day: UTC midnight).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from sqlalchemy import Engine, Select, func, inspect, null, select

from sinks.sql.database import DatabaseUrl
from sinks.sql.models import LineCrossingRow, ZoneVisit
from sinks.sql.reading import (
    DetectionQuery,
    JsonRow,
    Page,
    QueryError,
    existing_database,
    iso_z,
    label_is,
)

_Query = TypeVar("_Query", bound=Select)  # any row shape

MAX_PERIODS = 100_000
"""Most rows a count by period may return: its periods times the lines and directions (or
zones) counted, each of which has a row in every period. A finer `every` over a longer time
is refused, as one request would otherwise build millions of rows in the server."""


@dataclass(frozen=True)
class _Visit:
    camera: str
    zone: str
    track: tuple[int, int]
    entered: float
    left: float
    dwell_s: float


@dataclass(frozen=True)
class VisitRecord(JsonRow):
    """One row of the `zone_visits` table: a finished visit."""

    run_id: int
    camera: str
    zone: str
    track_id: int
    label: str
    entered_frame: int
    entered_at: datetime
    last_frame: int | None
    """The last frame the track was seen inside (None in rows of older versions)."""
    last_time: datetime | None
    left_frame: int
    """The frame the visit was closed on: `leave_frames` detected frames after the last."""
    left_at: datetime
    dwell_s: float
    at_stream_end: bool


def list_visits(url: str, q: DetectionQuery) -> Page[VisitRecord]:
    """The finished zone visits matching `q` (camera, label, run, track; since/until on the
    time they entered); the last `q.limit` to end (all without a limit), newest first, and
    how many match in all. Raises QueryError."""
    model = ZoneVisit
    with _scene_database(url, model.__tablename__) as engine, engine.connect() as conn:
        # an older table lacks the last frame inside: read as NULL
        columns = {c["name"] for c in inspect(engine).get_columns(model.__tablename__)}
        last = [
            getattr(model, name) if name in columns else null().label(name)
            for name in ("last_frame", "last_time")
        ]
        stmt = select(
            model.run_id, model.camera, model.zone, model.track_id, model.label,
            model.entered_frame, model.entered_at, *last, model.left_frame, model.left_at,
            model.dwell_s, model.at_stream_end,
        )  # fmt: skip
        stmt = _filtered(stmt, model, model.entered_at, q)
        total_stmt = _filtered(select(func.count(model.id)), model, model.entered_at, q)
        if q.track is not None:
            stmt = stmt.where(model.track_id == q.track)
            total_stmt = total_stmt.where(model.track_id == q.track)
        stmt = stmt.order_by(model.left_at.desc(), model.id.desc()).limit(q.limit)
        total = conn.scalar(total_stmt) or 0
        rows = [VisitRecord(*row) for row in conn.execute(stmt)]
    return Page(rows, int(total))


def count_crossings(
    url: str, q: DetectionQuery, every: timedelta | None = None
) -> list[dict[str, Any]]:
    """Line crossings matching `q` (camera, label, run, since/until on the crossing's time)
    per camera, line and direction, with the distinct tracks among them. With `every`:
    per period too, from the first period with a crossing to the last, also periods with
    none. Raises QueryError."""
    model = LineCrossingRow
    stmt = select(
        model.camera, model.line, model.direction, model.time, model.run_id, model.track_id
    )
    stmt = _filtered(stmt, model, model.time, q)
    with _scene_database(url, model.__tablename__) as engine, engine.connect() as conn:
        rows = conn.execute(stmt).all()
    groups: dict[tuple[Any, ...], list[tuple[int, int]]] = defaultdict(list)
    key: tuple[Any, ...]
    for camera, line, direction, time, run_id, track_id in rows:
        key = (camera, line, direction)
        if every is not None:
            key = (_period_start(time.timestamp(), every), *key)
        groups[key].append((run_id, track_id))
    if every is not None:
        _fill_empty_periods(groups, every)
    out = []
    for key in sorted(groups):
        tracks = groups[key]
        head = {} if every is None else {"from": iso_z(_utc(key[0]))}
        camera, line, direction = key[-3:]
        out.append(
            {
                **head,
                "camera": camera,
                "line": line,
                "direction": direction,
                "crossings": len(tracks),
                "tracks": len(set(tracks)),
            }
        )
    return out


def _filtered(
    stmt: _Query, model: type[LineCrossingRow] | type[ZoneVisit], time: Any, q: DetectionQuery
) -> _Query:
    """`stmt` restricted to `q`'s camera, run and label, and to `since`/`until` on `time`."""
    for column, value in ((model.camera, q.camera), (model.run_id, q.run)):
        if value is not None:
            stmt = stmt.where(column == value)
    if q.label is not None:
        stmt = stmt.where(label_is(model.label, q.label))
    if q.since is not None:
        stmt = stmt.where(time >= q.since)
    if q.until is not None:
        stmt = stmt.where(time < q.until)
    return stmt


def _fill_empty_periods(groups: dict[tuple[Any, ...], list[Any]], every: timedelta) -> None:
    """Periods without a crossing, from the first period with one to the last, added
    empty for each line and direction (a chart's zeros)."""
    if not groups:
        return
    starts = [key[0] for key in groups]
    lines = {key[1:] for key in groups}
    _check_span(starts, every, len(lines), "lines and directions")
    step = every.total_seconds()
    periods = round((max(starts) - min(starts)) / step) + 1
    for rest in lines:
        for n in range(periods):
            groups.setdefault((min(starts) + n * step, *rest), [])


def count_visits(
    url: str, q: DetectionQuery, every: timedelta | None = None
) -> list[dict[str, Any]]:
    """Finished zone visits matching `q` (camera, label, run; since/until on the time they
    entered) per camera and zone: visits, distinct tracks, mean and longest dwell.

    With `every`: per period from the first visit's to the last one's, also periods with
    none, the visits that entered in it and `peak`, the most visits open at once in it
    (occupancy), counted from the visits' enter and leave times. Raises QueryError.
    """
    model = ZoneVisit
    stmt = select(
        model.camera,
        model.zone,
        model.run_id,
        model.track_id,
        model.entered_at,
        model.left_at,
        model.dwell_s,
    )
    stmt = _filtered(stmt, model, model.entered_at, q)
    with _scene_database(url, model.__tablename__) as engine, engine.connect() as conn:
        visits = [
            _Visit(camera, zone, (run_id, track_id), entered.timestamp(), left.timestamp(), dwell)
            for camera, zone, run_id, track_id, entered, left, dwell in conn.execute(stmt)
        ]
    by_zone: dict[tuple[str, str], list[_Visit]] = defaultdict(list)
    for visit in visits:
        by_zone[(visit.camera, visit.zone)].append(visit)
    if every is None:
        return [_visit_totals(*key, by_zone[key]) for key in sorted(by_zone)]
    starts = [_period_start(t, every) for v in visits for t in (v.entered, v.left)]
    _check_span(starts, every, len(by_zone), "zones")
    return [
        row
        for camera, zone in sorted(by_zone)
        for row in _visit_periods(camera, zone, by_zone[(camera, zone)], every)
    ]


def _visit_totals(camera: str, zone: str, visits: list[_Visit]) -> dict[str, Any]:
    dwell = [v.dwell_s for v in visits]
    return {
        "camera": camera,
        "zone": zone,
        "visits": len(visits),
        "tracks": len({v.track for v in visits}),
        "mean_dwell_s": round(sum(dwell) / len(dwell), 2),
        "max_dwell_s": round(max(dwell), 2),
    }


def _visit_periods(
    camera: str, zone: str, visits: list[_Visit], every: timedelta
) -> list[dict[str, Any]]:
    """Per period: visits entered, and the peak of visits open at once (a sweep over the
    enter (+1) and leave (-1) times; a leave before an enter at the same instant)."""
    step = every.total_seconds()
    changes = sorted([(v.entered, 1) for v in visits] + [(v.left, -1) for v in visits])
    first = _period_start(min(v.entered for v in visits), every)
    last = _period_start(max(v.left for v in visits), every)
    entered: dict[float, int] = defaultdict(int)
    for v in visits:
        entered[_period_start(v.entered, every)] += 1
    rows = []
    open_now, i = 0, 0
    start = first
    while start <= last:
        peak = open_now
        while i < len(changes) and changes[i][0] < start + step:
            open_now += changes[i][1]
            peak = max(peak, open_now)
            i += 1
        rows.append(
            {
                "from": iso_z(_utc(start)),
                "camera": camera,
                "zone": zone,
                "entered": entered.get(start, 0),
                "peak": peak,
            }
        )
        start += step
    return rows


def _period_start(unix_seconds: float, every: timedelta) -> float:
    step = every.total_seconds()
    return (unix_seconds // step) * step


class TooManyPeriods(QueryError):
    """`every` too fine for the time span counted: the request's fault, not the database's."""


def _check_span(starts: list[float], every: timedelta, groups: int, what: str) -> None:
    """TooManyPeriods when the periods from the first of `starts` to the last, times the
    `groups` (`what`: lines and directions, zones) that each have a row in every period,
    are more than MAX_PERIODS."""
    if not starts:
        return
    periods = round((max(starts) - min(starts)) / every.total_seconds()) + 1
    if periods * groups <= MAX_PERIODS:
        return
    if groups == 1:
        raise TooManyPeriods(
            f"--every {every} makes more than {MAX_PERIODS} periods for this time span: "
            "choose a longer period or a shorter span (--since, --until)"
        )
    raise TooManyPeriods(
        f"--every {every} makes more than {MAX_PERIODS} periods for this time span, counted "
        f"for each of {groups} {what} ({periods * groups:,} rows): choose a longer period, "
        "a shorter span (--since, --until) or fewer cameras (--camera)"
    )


def _utc(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, tz=timezone.utc)


@contextmanager
def _scene_database(url: str, table: str) -> Iterator[Engine]:
    """`existing_database`, also refusing one without `table` (written before zones and
    lines were stored)."""
    db = DatabaseUrl(url)
    with existing_database(db) as engine:
        if not inspect(engine).has_table(table):
            raise QueryError(
                f"database {db} has no {table} table yet (run the pipeline with zones or "
                "lines and an sql output writing to it first)"
            )
        yield engine
