"""Reading the SQL output back (query_detections, count_detections), deleting old records
(delete_older_than), and the `query` and `retention` commands that do both."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, select, text, update

import sinks.sql.retention
from pipeline.cli import main
from pipeline.types import StreamEnd
from sinks.base import SinkError
from sinks.sql.bounds import ID_MAX, LIMIT_MAX
from sinks.sql.models import Detection, Run, Track
from sinks.sql.query import (
    count_detections,
    latest_detections,
    latest_run,
    list_runs,
    list_tracks,
    query_detections,
)
from sinks.sql.reading import DetectionQuery, QueryError
from sinks.sql.retention import delete_older_than
from sinks.sql.sink import SqlSink
from tests.sinks.sql.builders import (
    CAR,
    DAY,
    LABELS,
    PERSON,
    T0,
    Box,
    detection_key,
    frame_result,
    record_key,
    table_counts,
    utc,
    write_run,
)

# ---------------------------------------------------------------------------- querying

CAMS = ("cam-a", "cam-b")


@dataclass(frozen=True)
class Written:
    """One detection written by `written_detections`, with the frame it came from."""

    run: int
    camera: str
    index: int
    wall_time: float
    box: Box

    @property
    def key(self) -> tuple[Any, ...]:
        return detection_key(self.camera, self.index, self.wall_time, self.box)


@pytest.fixture
def sql_written_detections(sql_db_url: str) -> tuple[str, list[Written]]:
    """Two runs of two cameras with persons and cars, some tracked; cam-b's frames are
    written after cam-a's but interleave with them in time."""
    written: list[Written] = []
    for run_no in range(2):
        sink = SqlSink(sql_db_url, LABELS, batch_size=4)
        for camera, offset in zip(CAMS, (0.0, 0.25), strict=True):
            for index in range(6):
                wall = T0 + run_no * 100 + index + offset
                boxes = [
                    Box(index, 0, index + 10, 10, 0.1 + 0.15 * index, 1, 1 + run_no),
                    Box(0, index, 20, index + 20, 0.9 - 0.1 * index, 2 if index % 2 else 1),
                ]
                sink.write(frame_result(camera, index, wall, boxes))
                written += [Written(sink.run_id, camera, index, wall, b) for b in boxes]
            sink.end(StreamEnd(camera_id=camera, frames=6))
        sink.close()
    return sql_db_url, written


def _score(w: Written) -> float:
    return float(np.float32(w.box.score))


QUERIES: dict[str, tuple[DetectionQuery, Callable[[Written], bool]]] = {
    "camera": (DetectionQuery(camera="cam-b"), lambda w: w.camera == "cam-b"),
    "label": (DetectionQuery(label="car"), lambda w: w.box.label == 2),
    "track": (DetectionQuery(track=2), lambda w: w.box.track_id == 2),
    "since": (DetectionQuery(since=utc(T0 + 3.25)), lambda w: w.wall_time >= T0 + 3.25),
    "until": (DetectionQuery(until=utc(T0 + 2.25)), lambda w: w.wall_time < T0 + 2.25),
    "since-until": (
        DetectionQuery(since=utc(T0 + 1), until=utc(T0 + 4)),
        lambda w: T0 + 1 <= w.wall_time < T0 + 4,
    ),
    "naive-since-is-utc": (
        DetectionQuery(since=utc(T0 + 103).replace(tzinfo=None)),
        lambda w: w.wall_time >= T0 + 103,
    ),
    "min-score": (DetectionQuery(min_score=0.7), lambda w: _score(w) >= 0.7),
    "combined": (
        DetectionQuery(camera="cam-a", label="person", min_score=0.5),
        lambda w: w.camera == "cam-a" and w.box.label == 1 and _score(w) >= 0.5,
    ),
    "nothing": (DetectionQuery(camera="cam-z"), lambda w: False),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_query_filter_returns_exactly_the_matching_rows(
    sql_written_detections: tuple[str, list[Written]], name: str
) -> None:
    url, written = sql_written_detections
    query, keep = QUERIES[name]
    expected = sorted((w.key for w in written if keep(w)), key=lambda k: k[3])
    got = [record_key(r) for r in query_detections(url, query)]
    # Rows of one time keep their insertion (id) order: compare as time-ordered multisets
    # here, and check the exact id order in the ordering test.
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert [k[3] for k in got] == [k[3] for k in expected]
    if name != "nothing":
        assert got, "the filter must match something for the test to mean anything"


def test_query_by_run_returns_only_that_runs_rows(
    sql_written_detections: tuple[str, list[Written]],
) -> None:
    url, written = sql_written_detections
    second = max(w.run for w in written)
    got = query_detections(url, DetectionQuery(run=second))
    assert {r.run_id for r in got} == {second}
    assert len(got) == sum(w.run == second for w in written)


def test_query_orders_by_time_then_id_and_limit_keeps_the_earliest(
    sql_written_detections: tuple[str, list[Written]],
) -> None:
    url, written = sql_written_detections
    everything = query_detections(url, DetectionQuery())
    assert len(everything) == len(written)
    assert [(r.time, r.id) for r in everything] == sorted((r.time, r.id) for r in everything)
    # cam-b was written after cam-a, yet its rows interleave with cam-a's by time.
    assert [r.camera for r in everything[:4]] == ["cam-a", "cam-a", "cam-b", "cam-b"]

    limited = query_detections(url, DetectionQuery(limit=5))
    assert limited == everything[:5]


def test_latest_detections_are_the_newest_first_with_how_many_match_in_all(
    sql_written_detections: tuple[str, list[Written]],
) -> None:
    url, _ = sql_written_detections
    everything = query_detections(url, DetectionQuery(camera="cam-a"))
    page = latest_detections(url, DetectionQuery(camera="cam-a", limit=5))
    assert page.rows == everything[::-1][:5]
    assert (page.total, page.more) == (len(everything), len(everything) - 5)
    whole = latest_detections(url, DetectionQuery(camera="cam-a"))
    assert whole.rows == everything[::-1] and whole.more == 0


def test_latest_run_is_the_one_started_last(
    sql_written_detections: tuple[str, list[Written]],
) -> None:
    url, written = sql_written_detections
    assert latest_run(url) == max(w.run for w in written)


def test_runs_are_listed_newest_first_with_their_detections_and_tracks_counted(
    two_runs: tuple[str, int, int],
) -> None:
    url, old, recent = two_runs
    page = list_runs(url)
    assert [(r.id, r.detections, r.tracks) for r in page.rows] == [(recent, 11, 2), (old, 10, 1)]
    assert page.rows[1].as_dict()["started_at"].endswith("Z")
    assert [r.id for r in list_runs(url, limit=1).rows] == [recent]
    assert list_runs(url, limit=1).more == 1


def test_tracks_are_listed_per_run_and_filtered_newest_first(
    two_runs: tuple[str, int, int],
) -> None:
    url, old, recent = two_runs
    page = list_tracks(url, DetectionQuery(run=recent))
    # lobby's track ended later than gate's: it was written with more frames after the same start
    assert [(t.run_id, t.camera, t.track_id) for t in page.rows] == [
        (recent, "lobby", 1),
        (recent, "gate", 1),
    ]
    assert [t.camera for t in list_tracks(url, DetectionQuery(run=old)).rows] == ["gate"]
    only = list_tracks(url, DetectionQuery(run=recent, camera="gate", limit=1))
    assert (len(only.rows), only.total) == (1, 1)
    assert list_tracks(url, DetectionQuery(label="car")).total == 0
    assert list_tracks(url, DetectionQuery(limit=1)).more == 2


def test_query_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        DetectionQuery(limit=0)


@pytest.mark.parametrize("value", ["most+1", 2**63, 10**30, -(2**63) - 1, -1, 0])
@pytest.mark.parametrize(
    ("name", "most"), [("track", ID_MAX), ("run", ID_MAX), ("limit", LIMIT_MAX)]
)
def test_an_id_or_limit_the_database_cannot_hold_is_refused_before_it_is_asked(
    name: str, most: int, value: int | str
) -> None:
    value = most + 1 if value == "most+1" else value
    with pytest.raises(ValueError, match=f"query {name} must be from 1 to {most}, got {value}"):
        DetectionQuery(**{name: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("score", [float("nan"), float("inf"), -0.1, 1.5])
def test_a_min_score_outside_0_to_1_is_refused(score: float) -> None:
    with pytest.raises(ValueError, match="query min_score must be from 0 to 1"):
        DetectionQuery(min_score=score)


def test_the_largest_ids_and_limit_query_without_error(
    sql_written_detections: tuple[str, list[Written]],
) -> None:
    url, _ = sql_written_detections
    huge = DetectionQuery(track=ID_MAX, run=ID_MAX, limit=LIMIT_MAX, min_score=1.0)
    assert query_detections(url, huge) == []
    assert count_detections(url, huge, "camera") == []


def test_record_as_dict_is_json_ready_with_utc_z_time(sql_db_url: str) -> None:
    sink = SqlSink(sql_db_url, LABELS)
    sink.write(frame_result("cam", 2, T0 + 0.5, [Box(1, 2, 3, 4, 0.5, 1, -1)]))
    sink.close()
    (record,) = query_detections(sql_db_url, DetectionQuery())

    d = json.loads(json.dumps(record.as_dict()))
    assert d["time"] == "2023-11-14T22:13:20.500000Z"
    assert datetime.fromisoformat(d["time"].replace("Z", "+00:00")) == utc(T0 + 0.5)
    assert (d["camera"], d["frame"], d["label"], d["track_id"]) == ("cam", 2, "person", None)
    assert (d["x1"], d["y1"], d["x2"], d["y2"], d["score"]) == (1.0, 2.0, 3.0, 4.0, 0.5)


def test_query_of_missing_sqlite_file_raises_and_creates_no_file(tmp_path: Path) -> None:
    db = tmp_path / "missing" / "nothing.db"
    with pytest.raises(QueryError, match="does not exist") as err:
        query_detections(f"sqlite:///{db}", DetectionQuery())
    assert str(db) in str(err.value)
    assert not db.exists()
    assert not db.parent.exists()


def test_query_of_database_without_tables_says_so(sql_db_url: str) -> None:
    engine = create_engine(sql_db_url)  # creates a SQLite database / uses the empty schema
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE other (x INTEGER)"))
    engine.dispose()
    with pytest.raises(QueryError, match="has no detections table yet"):
        query_detections(sql_db_url, DetectionQuery())


def not_a_database(tmp_path: Path, kind: str) -> Path:
    """Something of the user's at a database path: an empty file, a text file, a folder,
    a named pipe."""
    path = tmp_path / "user.db"
    if kind == "empty":
        path.touch()
    elif kind == "text":
        path.write_text("the user's notes\n" * 20)
    elif kind == "folder":
        path.mkdir()
    else:
        os.mkfifo(path)
    return path


def untouched(tmp_path: Path, path: Path, before: tuple[str, bytes | None]) -> bool:
    """Whether `path` is as it was and nothing else appeared beside it (no -wal, -journal)."""
    content = path.read_bytes() if path.is_file() else None
    return [p.name for p in tmp_path.iterdir()] == [path.name] and (before[1] == content)


def snapshot(path: Path) -> tuple[str, bytes | None]:
    return path.name, path.read_bytes() if path.is_file() else None


@pytest.mark.parametrize("kind", ["empty", "text", "folder", "fifo"])
@pytest.mark.parametrize("uri", [False, True], ids=["path", "file-uri"])
def test_query_and_retention_never_turn_a_file_that_is_not_a_database_into_one(
    tmp_path: Path, kind: str, uri: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    path = not_a_database(tmp_path, kind)
    before = snapshot(path)
    url = f"sqlite:///file:{path}?uri=true" if uri else f"sqlite:///{path}"
    with pytest.raises(QueryError, match=f"{path}.* not a SQLite database"):
        query_detections(url, DetectionQuery())
    with pytest.raises(QueryError, match="not a SQLite database"):
        count_detections(url, DetectionQuery(), "label")
    with pytest.raises(QueryError, match="not a SQLite database"):
        delete_older_than(url, datetime.now(timezone.utc))
    code, _, err = run_cli(capsys, "retention", "--db", url, "--older-than", "1d")
    assert code == 1 and err.count("\n") == 1 and "not a SQLite database" in err
    assert untouched(tmp_path, path, before)


@pytest.mark.parametrize("uri", [False, True], ids=["path", "file-uri"])
def test_query_and_retention_leave_a_foreign_sqlite_database_as_it_is(
    tmp_path: Path, uri: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "theirs.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:  # journal_mode "delete": SQLite's
        conn.execute("CREATE TABLE notes (body TEXT)")
        conn.execute("INSERT INTO notes VALUES ('the user''s notes')")
        conn.commit()
    before = snapshot(path)
    url = f"sqlite:///file:{path}?uri=true" if uri else f"sqlite:///{path}"
    for args in (
        ("query", "--db", url),
        ("query", "--db", url, "--count-by", "label"),
        ("query", "--db", url, "--list", "runs"),
        ("retention", "--db", url, "--older-than", "1d", "--dry-run"),
        ("retention", "--db", url, "--older-than", "1d"),  # it writes to databases of ours only
    ):
        code, _, err = run_cli(capsys, *args)
        assert code == 1 and err.count("\n") == 1 and "has no detections table yet" in err
    assert untouched(tmp_path, path, before)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)


@pytest.mark.parametrize("uri", [False, True], ids=["path", "file-uri"])
def test_a_foreign_sqlite_database_with_a_detections_table_is_named_so_and_left_as_it_is(
    tmp_path: Path, uri: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "theirs.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE detections (body TEXT)")
        conn.execute("INSERT INTO detections VALUES ('their row')")
        conn.commit()
    before = snapshot(path)
    url = f"sqlite:///file:{path}?uri=true" if uri else f"sqlite:///{path}"
    for args in (
        ("query", "--db", url),
        ("query", "--db", url, "--list", "runs"),
        ("retention", "--db", url, "--older-than", "1d"),
        ("serve", "--db", url, "--port", "0"),
    ):
        code, _, err = run_cli(capsys, *args)
        assert code == 1 and err.count("\n") == 1, err
        assert "its detections table is not this pipeline's" in err and "Traceback" not in err
    assert untouched(tmp_path, path, before)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("delete",)  # not made WAL


def test_a_database_without_the_tables_a_listing_reads_says_they_are_not_the_pipelines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "half.db"
    with contextlib.closing(sqlite3.connect(path)) as conn:  # detections as ours, no runs
        conn.execute("CREATE TABLE detections (id, run_id, camera, frame, time, label)")
        conn.commit()
    code, _, err = run_cli(capsys, "query", "--db", f"sqlite:///{path}", "--list", "runs")
    assert code == 1 and err.count("\n") == 1
    assert "runs" in err and "not laid out as this pipeline writes them" in err


def test_query_of_missing_sqlite_file_uri_raises_and_creates_no_file(tmp_path: Path) -> None:
    db = tmp_path / "nothing.db"
    with pytest.raises(QueryError, match="does not exist"):
        query_detections(f"sqlite:///file:{db}?uri=true&mode=rwc", DetectionQuery())
    assert list(tmp_path.iterdir()) == []


def test_query_of_unreachable_database_raises_query_error_with_password_masked() -> None:
    with pytest.raises(QueryError) as err:
        query_detections("postgresql+psycopg://u:s3cret@127.0.0.1:1/x", DetectionQuery())
    assert "s3cret" not in str(err.value)
    assert "u:***@127.0.0.1:1/x" in str(err.value)
    assert isinstance(err.value, SinkError)


# ---------------------------------------------------------------------------- counting and retention


@pytest.fixture
def two_runs(sql_db_url: str) -> tuple[str, int, int]:
    """An old run (10 days ago) and a recent one (1 h ago) with persons and cars."""
    now = time.time()
    old = write_run(
        sql_db_url,
        now - 10 * DAY,
        {"gate": [[Box(0, 0, 1, 1, 0.9, PERSON, 1), Box(0, 0, 2, 2, 0.8, CAR, 2)]] * 5},
    )
    engine = create_engine(sql_db_url)
    with engine.begin() as conn:  # it also ended then
        conn.execute(
            update(Run)
            .where(Run.id == old)
            .values(
                started_at=datetime.fromtimestamp(now - 10 * DAY, timezone.utc),
                ended_at=datetime.fromtimestamp(now - 10 * DAY + 5, timezone.utc),
            )
        )
    engine.dispose()
    recent = write_run(
        sql_db_url,
        now - 3600,
        {
            "gate": [[Box(0, 0, 1, 1, 0.9, PERSON, 1)]] * 3,
            "lobby": [[Box(0, 0, 1, 1, 0.7, PERSON, 4), Box(0, 0, 1, 1, 0.6, PERSON, -1)]] * 4,
        },
    )
    return sql_db_url, old, recent


def test_count_by_label_camera_and_run_counts_detections_and_distinct_tracks(
    two_runs: tuple[str, int, int],
) -> None:
    url, old, recent = two_runs
    by_label = count_detections(url, DetectionQuery(), "label")
    assert [(r.key, r.detections, r.tracks) for r in by_label] == [
        ("person", 5 + 3 + 8, 3),  # tracks: (old, gate, 1), (recent, gate, 1), (recent, lobby, 4)
        ("car", 5, 1),
    ]
    by_camera = count_detections(url, DetectionQuery(), "camera")
    assert [(r.key, r.detections, r.tracks) for r in by_camera] == [
        ("gate", 10 + 3, 3),
        ("lobby", 8, 1),
    ]
    by_run = count_detections(url, DetectionQuery(), "run")
    assert {r.key: r.detections for r in by_run} == {str(old): 10, str(recent): 11}
    # filters apply before counting
    recent_persons = count_detections(url, DetectionQuery(run=recent, min_score=0.65), "camera")
    assert [(r.key, r.detections) for r in recent_persons] == [("lobby", 4), ("gate", 3)]


def test_retention_deletes_old_rows_and_runs_left_empty_and_vacuums_sqlite(
    two_runs: tuple[str, int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _, recent = two_runs
    monkeypatch.setattr(sinks.sql.retention, "RETENTION_CHUNK", 3)  # several chunks per table
    cutoff = datetime.fromtimestamp(time.time() - DAY, timezone.utc)

    dry = delete_older_than(url, cutoff, dry_run=True)
    # a dry run counts runs that have rows still (they would be emptied first): none yet
    assert (dry.detections, dry.tracks, dry.runs, dry.vacuumed) == (10, 1, 0, False)
    assert table_counts(url) == {"detections": 21, "tracks": 3, "runs": 2}

    done = delete_older_than(url, cutoff)
    assert (done.detections, done.tracks, done.runs) == (10, 1, 1)
    assert table_counts(url) == {"detections": 11, "tracks": 2, "runs": 1}
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.scalar(select(Run.id)) == recent
    engine.dispose()
    if url.startswith("sqlite"):
        assert done.vacuumed
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0


# ---------------------------------------------------------------------------- commands


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_query_command_counts_by_camera_since_a_relative_time(
    two_runs: tuple[str, int, int], capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, _ = two_runs
    code, out, _ = run_cli(
        capsys,
        "query",
        "--db",
        url,
        "--since",
        "2 days ago",
        "--count-by",
        "camera",
        "--format",
        "json",
    )
    assert code == 0
    assert json.loads(out) == [
        {"camera": "lobby", "detections": 8, "tracks": 1},
        {"camera": "gate", "detections": 3, "tracks": 1},
    ]
    code, out, _ = run_cli(capsys, "query", "--db", url, "--count-by", "label")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["label", "detections", "tracks"]
    assert lines[1].split() == ["person", "16", "3"] and lines[-1] == "(2 groups)"


def test_query_command_refuses_an_unreadable_time_naming_the_forms(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["query", "--since", "last tuesday"])
    assert exit_.value.code == 2
    assert "not a time: 'last tuesday'" in capsys.readouterr().err


def test_retention_command_deletes_records_and_old_video_files(
    two_runs: tuple[str, int, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _, _ = two_runs
    videos = tmp_path / "video"
    videos.mkdir()
    old_video = videos / "gate_20261101-100000.mp4"
    old_video.write_bytes(b"x")
    then = time.time() - 10 * DAY
    os.utime(old_video, (then, then))
    new_video = videos / "gate_20261121-100000.mp4"
    new_video.write_bytes(b"x")

    code, out, _ = run_cli(
        capsys,
        "retention",
        "--db",
        url,
        "--older-than",
        "7d",
        "--video-dir",
        str(videos),
        "--dry-run",
    )
    assert code == 0 and "would delete 10 detections, 1 tracks" in out
    assert old_video.exists() and table_counts(url)["detections"] == 21

    code, out, _ = run_cli(
        capsys, "retention", "--db", url, "--older-than", "7d", "--video-dir", str(videos)
    )
    assert code == 0 and "deleted 10 detections, 1 tracks" in out
    assert "deleted 1 video files" in out
    assert not old_video.exists() and new_video.exists()
    assert table_counts(url)["detections"] == 11


def test_retention_command_on_a_missing_database_fails_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(
        capsys, "retention", "--db", f"sqlite:///{tmp_path / 'none.db'}", "--older-than", "1d"
    )
    assert code == 1 and err.count("\n") == 1 and "does not exist" in err


@pytest.mark.parametrize("asked", ["person", "PERSON", " Person "])
def test_label_filter_matches_stored_labels_by_the_one_label_rule(
    two_runs: tuple[str, int, int], asked: str
) -> None:
    url, _, _ = two_runs
    wanted = DetectionQuery(label="person")
    before = (count_detections(url, wanted, "camera"), list_tracks(url, wanted).total)
    engine = create_engine(url)
    with engine.begin() as conn:  # as a detector naming its class "Person " stores it
        for model in (Detection, Track):
            conn.execute(update(model).where(model.label == "person").values(label=" Person "))
    engine.dispose()
    q = DetectionQuery(label=asked)
    assert (count_detections(url, q, "camera"), list_tracks(url, q).total) == before
    assert before[1] > 0 and before[0]
    assert count_detections(url, DetectionQuery(label="per son"), "camera") == []


def test_a_non_ascii_label_is_found_in_any_case_and_in_sqlite_by_case_folding_too(
    two_runs: tuple[str, int, int],
) -> None:
    url, _, _ = two_runs

    def found(label: str) -> tuple[list[Any], int]:
        q = DetectionQuery(label=label)
        return count_detections(url, q, "camera"), list_tracks(url, q).total

    people, cars = found("person"), found("car")
    engine = create_engine(url)
    with engine.begin() as conn:  # as a model whose classes have such names stores them
        for model in (Detection, Track):
            conn.execute(update(model).where(model.label == "person").values(label="Straße"))
            conn.execute(update(model).where(model.label == "car").values(label="ÆBLE"))
    engine.dispose()

    assert people[0] and people[1] > 0 and cars[0] and people != cars
    for spelling in ("Straße", "straße", " STRAßE "):
        assert found(spelling) == people
    assert found("æble") == cars
    # the pipeline's rule folds ß to ss; of the databases, only SQLite is taught it
    assert found("STRASSE") == (people if url.startswith("sqlite") else ([], 0))
