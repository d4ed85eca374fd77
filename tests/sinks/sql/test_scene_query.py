"""Stored zone visits and line crossings: a visit's row (its last frame inside too, also in
a table of an older version and in rows left in a spool file), listed (`query --list
visits`) and counted (`query --count-by line|zone [--every]`), on SQLite and the local
PostgreSQL, and retention of them."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text, update

from pipeline.cli import main
from pipeline.types import AnalyticsEvent, LineCrossing, Side, StreamEnd, ZoneEvent
from sinks.sql.database import DatabaseUrl
from sinks.sql.models import LineCrossingRow, ZoneVisit
from sinks.sql.reading import DetectionQuery, QueryError
from sinks.sql.retention import delete_older_than
from sinks.sql.scene_query import VisitRecord, count_crossings, count_visits, list_visits
from sinks.sql.scene_rows import scene_rows
from sinks.sql.sink import SqlSink
from sinks.sql.spool import RowBatch, spool_prefix
from tests.sinks.sql.builders import LABELS, count, frame_result

# 2026-11-21 10:00:00 UTC: a multiple of 15 minutes
T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc).timestamp()
MIN = 60.0


def crossing(camera: str, line: str, track: int, direction: str, t: float) -> LineCrossing:
    sides: tuple[Side, Side] = ("left", "right") if direction == "in" else ("right", "left")
    return LineCrossing(camera, line, track, 1, direction, *sides, frame=int(t - T0), time=t)


def visit(
    camera: str, zone: str, track: int, entered: float, left: float, last: float | None = None
) -> ZoneEvent:
    """A `zone.left` event; `last`: when the track was last seen inside (`left` without)."""
    return ZoneEvent(
        "left",
        camera,
        zone,
        track,
        1,
        frame=int(left - T0),
        time=left,
        entered_frame=int(entered - T0),
        entered_time=entered,
        dwell_s=(left if last is None else last) - entered,
        last_frame=None if last is None else int(last - T0),
        last_time=last,
    )


def store(url: str, events: list[AnalyticsEvent]) -> SqlSink:
    """One run whose frames carry `events`, one frame each (by time)."""
    sink = SqlSink(url, LABELS)
    for event in sorted(events, key=lambda e: e.time):
        result = frame_result(event.camera_id, int(event.time - T0), event.time, [])
        sink.write(replace(result, analytics=(event,)))
    sink.end(StreamEnd("cam", frames=1))
    sink.close()
    return sink


CROSSINGS: list[AnalyticsEvent] = [
    crossing("cam", "door", 1, "in", T0 + 1 * MIN),
    crossing("cam", "door", 2, "in", T0 + 2 * MIN),
    crossing("cam", "door", 2, "out", T0 + 3 * MIN),  # the same person going back out
    crossing("cam", "door", 3, "in", T0 + 40 * MIN),  # 10:30-10:45; nothing 10:15-10:30
    crossing("cam", "gate", 4, "out", T0 + 5 * MIN),
    crossing("other", "door", 5, "in", T0 + 6 * MIN),
]


def test_crossings_are_counted_per_line_and_direction_with_distinct_tracks(
    sql_db_url: str,
) -> None:
    store(sql_db_url, CROSSINGS)
    rows = count_crossings(sql_db_url, DetectionQuery(camera="cam"))
    assert rows == [
        {"camera": "cam", "line": "door", "direction": "in", "crossings": 3, "tracks": 3},
        {"camera": "cam", "line": "door", "direction": "out", "crossings": 1, "tracks": 1},
        {"camera": "cam", "line": "gate", "direction": "out", "crossings": 1, "tracks": 1},
    ]
    since = datetime.fromtimestamp(T0 + 2 * MIN, timezone.utc)
    until = datetime.fromtimestamp(T0 + 40 * MIN, timezone.utc)
    window = count_crossings(sql_db_url, DetectionQuery(since=since, until=until))
    assert [(r["camera"], r["line"], r["direction"], r["crossings"]) for r in window] == [
        ("cam", "door", "in", 1),
        ("cam", "door", "out", 1),
        ("cam", "gate", "out", 1),
        ("other", "door", "in", 1),
    ]


def test_crossings_per_period_include_the_empty_periods_between(sql_db_url: str) -> None:
    store(sql_db_url, CROSSINGS)
    rows = count_crossings(sql_db_url, DetectionQuery(camera="cam"), every=timedelta(minutes=15))
    door_in = [
        (r["from"], r["crossings"]) for r in rows if (r["line"], r["direction"]) == ("door", "in")
    ]
    assert door_in == [
        ("2026-11-21T10:00:00.000000Z", 2),
        ("2026-11-21T10:15:00.000000Z", 0),
        ("2026-11-21T10:30:00.000000Z", 1),
    ]
    assert len(rows) == 3 * 3  # every line and direction of the camera, every period


def test_visits_are_counted_per_zone_with_their_dwell(sql_db_url: str) -> None:
    store(
        sql_db_url,
        [
            visit("cam", "bay", 1, T0 + 1 * MIN, T0 + 3 * MIN),
            visit("cam", "bay", 2, T0 + 2 * MIN, T0 + 6 * MIN),
            visit("cam", "bay", 2, T0 + 10 * MIN, T0 + 11 * MIN),  # the same track, again
            visit("cam", "door", 3, T0 + 1 * MIN, T0 + 1.5 * MIN),
        ],
    )
    assert count_visits(sql_db_url, DetectionQuery()) == [
        {
            "camera": "cam",
            "zone": "bay",
            "visits": 3,
            "tracks": 2,
            "mean_dwell_s": 140.0,
            "max_dwell_s": 240.0,
        },
        {
            "camera": "cam",
            "zone": "door",
            "visits": 1,
            "tracks": 1,
            "mean_dwell_s": 30.0,
            "max_dwell_s": 30.0,
        },
    ]


def test_visits_per_period_give_entries_and_the_peak_inside_at_once(sql_db_url: str) -> None:
    store(
        sql_db_url,
        [
            visit("cam", "bay", 1, T0 + 1 * MIN, T0 + 3 * MIN),
            visit("cam", "bay", 2, T0 + 2 * MIN, T0 + 22 * MIN),  # spans into 10:15-10:30
            visit("cam", "bay", 3, T0 + 4 * MIN, T0 + 5 * MIN),  # 1 left at 3: 2 at once at most
            visit("cam", "bay", 4, T0 + 50 * MIN, T0 + 52 * MIN),
        ],
    )
    rows = count_visits(sql_db_url, DetectionQuery(), every=timedelta(minutes=15))
    assert [(r["from"][11:16], r["entered"], r["peak"]) for r in rows] == [
        ("10:00", 3, 2),
        ("10:15", 0, 1),  # track 2 still inside
        ("10:30", 0, 0),
        ("10:45", 1, 1),
    ]


def test_a_period_too_fine_for_the_span_is_refused(sql_db_url: str) -> None:
    store(
        sql_db_url,
        [crossing("cam", "door", 1, "in", T0), crossing("cam", "door", 2, "in", T0 + 86_400)],
    )
    with pytest.raises(QueryError, match="more than 100000 periods"):
        count_crossings(sql_db_url, DetectionQuery(), every=timedelta(seconds=0.5))


def test_periods_times_the_lines_counted_over_the_bound_are_refused_not_built(
    sql_db_url: str,
) -> None:
    # 40,001 periods of one second each, for 3 lines: 120,003 rows, most of them empty
    events: list[AnalyticsEvent] = []
    for line in ("door", "gate", "ramp"):
        events += [crossing("cam", line, 1, "in", T0), crossing("cam", line, 2, "in", T0 + 40_000)]
    store(sql_db_url, sorted(events, key=lambda e: e.time))
    with pytest.raises(QueryError) as caught:
        count_crossings(sql_db_url, DetectionQuery(), every=timedelta(seconds=1))
    assert str(caught.value) == (
        "--every 0:00:01 makes more than 100000 periods for this time span, counted for each "
        "of 3 lines and directions (120,003 rows): choose a longer period, a shorter span "
        "(--since, --until) or fewer cameras (--camera)"
    )


def test_a_database_written_before_zones_and_lines_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    SqlSink(url, LABELS).close()
    with sqlite3.connect(tmp_path / "old.db") as conn:
        conn.execute("DROP TABLE line_crossings")
    with pytest.raises(QueryError, match="has no line_crossings table yet"):
        count_crossings(url, DetectionQuery())


def test_retention_deletes_old_visits_and_crossings(sql_db_url: str) -> None:
    store(
        sql_db_url,
        [
            crossing("cam", "door", 1, "in", T0),
            crossing("cam", "door", 2, "in", T0 + 2 * MIN),
            visit("cam", "bay", 1, T0, T0 + MIN),
            visit("cam", "bay", 2, T0, T0 + 3 * MIN),
        ],
    )
    result = delete_older_than(sql_db_url, datetime.fromtimestamp(T0 + 1.5 * MIN, timezone.utc))
    assert (result.line_crossings, result.zone_visits) == (1, 1)
    assert count(sql_db_url, LineCrossingRow) == 1 and count(sql_db_url, ZoneVisit) == 1


def test_query_command_counts_crossings_per_period_as_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    store(url, CROSSINGS)
    assert (
        main(
            [
                "query",
                "--db",
                url,
                "--count-by",
                "line",
                "--camera",
                "other",
                "--every",
                "1h",
                "--format",
                "csv",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.splitlines() == [
        "from,camera,line,direction,crossings,tracks",
        "2026-11-21T10:00:00.000000Z,other,door,in,1,1",
    ]


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--every", "15m"], "--every goes with --count-by line or --count-by zone"),
        (["--count-by", "zone", "--track", "3"], "--count-by zone does not take --track"),
        (["--count-by", "line", "--min-score", "0.5"], "--count-by line does not take --min-score"),
    ],
)
def test_query_command_refuses_options_that_do_not_go_together(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], problem: str
) -> None:
    assert main(["query", "--db", f"sqlite:///{tmp_path / 'd.db'}", *args]) == 2
    assert capsys.readouterr().err.strip() == f"error: {problem}"


def test_label_filter_matches_crossings_and_visits_by_the_one_label_rule(
    sql_db_url: str,
) -> None:
    store(sql_db_url, [*CROSSINGS, visit("cam", "desk", 1, T0, T0 + MIN)])
    wanted = DetectionQuery(label="person")
    before = (count_crossings(sql_db_url, wanted), count_visits(sql_db_url, wanted))
    engine = create_engine(sql_db_url)
    with engine.begin() as conn:  # as a detector naming its class "Person " stores it
        for model in (LineCrossingRow, ZoneVisit):
            conn.execute(update(model).values(label=" Person "))
    engine.dispose()
    asked = DetectionQuery(label="PERSON")
    assert (count_crossings(sql_db_url, asked), count_visits(sql_db_url, asked)) == before
    assert before[0] and before[1]
    assert count_crossings(sql_db_url, DetectionQuery(label="car")) == []


def utc(unix_seconds: float) -> datetime:
    return datetime.fromtimestamp(unix_seconds, timezone.utc)


def frames(v: VisitRecord) -> tuple[int, int | None, int]:
    """A listed visit's first frame, last frame inside and the frame it was closed on."""
    return (v.entered_frame, v.last_frame, v.left_frame)


def test_a_visit_row_keeps_the_last_frame_inside_apart_from_the_frame_it_closed_on(
    sql_db_url: str,
) -> None:
    store(sql_db_url, [
        visit("cam", "bay", 1, T0 + 10, T0 + 30, last=T0 + 25),  # left 5 frames after
        visit("cam", "bay", 2, T0 + 12, T0 + 40, last=T0 + 34),
        visit("cam", "door", 2, T0 + 50, T0 + 60, last=T0 + 55),
    ])  # fmt: skip
    page = list_visits(sql_db_url, DetectionQuery(camera="cam"))
    assert page.total == 3
    assert [(v.zone, v.track_id, *frames(v)) for v in page.rows] == [  # the last to end first
        ("door", 2, 50, 55, 60),
        ("bay", 2, 12, 34, 40),
        ("bay", 1, 10, 25, 30),
    ]
    door = page.rows[0]
    assert (door.last_time, door.left_at, door.dwell_s) == (utc(T0 + 55), utc(T0 + 60), 5.0)
    one = list_visits(sql_db_url, DetectionQuery(track=2, since=utc(T0 + 11), limit=1))
    assert (one.total, [frames(v) for v in one.rows]) == (2, [(50, 55, 60)])


def test_an_older_zone_visits_table_gets_the_last_frame_columns(sql_db_url: str) -> None:
    store(sql_db_url, [visit("cam", "bay", 1, T0 + 10, T0 + 30, last=T0 + 25)])
    engine = create_engine(sql_db_url)
    with engine.begin() as conn:  # the table as versions before the last frame made it
        conn.execute(text("ALTER TABLE zone_visits DROP COLUMN last_frame"))
        conn.execute(text("ALTER TABLE zone_visits DROP COLUMN last_time"))
    engine.dispose()
    (old,) = list_visits(sql_db_url, DetectionQuery()).rows  # a query reads it as it is
    assert frames(old) == (10, None, 30) and old.last_time is None
    store(sql_db_url, [visit("cam", "bay", 1, T0 + 40, T0 + 60, last=T0 + 52)])  # upgrades it
    rows = list_visits(sql_db_url, DetectionQuery()).rows
    assert [(frames(v), v.last_time) for v in rows] == [
        ((40, 52, 60), utc(T0 + 52)),
        ((10, None, 30), None),
    ]


def test_spooled_visits_keep_their_last_frame_and_an_older_versions_get_null(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    run = store(url, []).run_id
    visits, _ = scene_rows(run, [visit("cam", "bay", 1, T0 + 10, T0 + 30, last=T0 + 25)], LABELS)
    older, _ = scene_rows(run, [visit("cam", "bay", 2, T0 + 10, T0 + 40, last=T0 + 33)], LABELS)
    for row in older:  # as a version before the last frame spooled it
        del row["last_frame"], row["last_time"]
    spool_dir = tmp_path / "spool"
    spool_dir.mkdir()
    left = spool_dir / f"{spool_prefix(DatabaseUrl(url))}run{run}-1.jsonl"
    left.write_text("".join(RowBatch("zone_visits", rows).to_line() for rows in (visits, older)))
    SqlSink(url, LABELS, spool_dir=spool_dir).close()  # replays it
    assert not left.exists()
    rows = list_visits(url, DetectionQuery(run=run)).rows
    assert [(v.track_id, *frames(v), v.last_time) for v in rows] == [
        (2, 10, None, 40, None),
        (1, 10, 25, 30, utc(T0 + 25)),
    ]


def test_query_command_lists_the_latest_runs_visits_with_the_last_frame_inside(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'd.db'}"
    store(url, [visit("cam", "bay", 7, T0 + 10, T0 + 30, last=T0 + 25)])
    store(url, [visit("cam", "bay", 3, T0 + 100, T0 + 130, last=T0 + 124)])
    capsys.readouterr()
    assert main(["query", "--db", url, "--list", "visits"]) == 0
    header, row, footer = capsys.readouterr().out.splitlines()
    cells = dict(zip(header.split(), row.split(), strict=True))
    assert {k: cells[k] for k in ("run_id", "track_id", "entered_frame", "last_frame",
                                  "left_frame", "dwell_s", "at_stream_end")} == {
        "run_id": "2", "track_id": "3", "entered_frame": "100", "last_frame": "124",
        "left_frame": "130", "dwell_s": "24.0", "at_stream_end": "False",
    }  # fmt: skip
    assert cells["last_time"] == "2026-11-21T10:02:04.000000Z"
    assert footer == "(1 zone visits of run 2 (the latest; --run to choose), newest first)"
