"""`query`: a page of the newest rows, runs and tracks listed, tracks per run, rounding."""

from __future__ import annotations

import csv
import io
import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, make_url

from pipeline.cli import EXIT_USAGE, main
from pipeline.cli.records import DEFAULT_PAGE
from sinks.sql.models import Run
from tests.sinks.sql.builders import CAR, PERSON, Box, write_run
from tests.sinks.sql.conftest import pg_schema, skip_without_pg

BOX = Box(0.123456, 1.98765, 10.55555, 20.33333, 0.912345, PERSON, 3)
"""A tracked person whose score and coordinates have more digits than anyone reads."""


@pytest.fixture
def db(tmp_path: Path) -> str:
    """Run 1: gate, 3 frames of one person (track 3). Run 2, an hour later: lobby, 60 frames
    of a person (track 7) and a car (untracked)."""
    url = f"sqlite:///{tmp_path / 'det.db'}"
    now = time.time()
    write_run(url, now - 7200, {"gate": [[BOX]] * 3})
    car = Box(5, 5, 6, 6, 0.5, CAR)
    write_run(url, now - 3600, {"lobby": [[Box(1, 1, 2, 2, 0.7, PERSON, 7), car]] * 60})
    return url


def query(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["query", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_query_without_limit_prints_a_page_of_the_newest_and_says_how_many_more(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = query(capsys, "--db", db)
    assert code == 0
    lines = out.splitlines()
    rows = lines[1:-1]
    assert len(rows) == DEFAULT_PAGE
    frames = [int(r.split()[3]) for r in rows]
    assert frames == sorted(frames, reverse=True) and frames[0] == 59  # newest first
    total = 3 + 120
    assert lines[-1] == (
        f"({DEFAULT_PAGE} detections, newest first; {total - DEFAULT_PAGE} more: "
        "--limit N or --all to see them)"
    )


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_json_and_csv_print_the_page_and_say_how_many_more_on_stderr(
    db: str, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    code, out, err = query(capsys, "--db", db, "--format", fmt, "--limit", "4")
    assert code == 0
    rows = json.loads(out) if fmt == "json" else list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 4
    assert err == "note: 4 detections, newest first; 119 more: --limit N or --all to see them\n"


def test_all_prints_every_row_and_no_note(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = query(capsys, "--db", db, "--all", "--format", "json")
    assert code == 0 and len(json.loads(out)) == 123 and err == ""


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_scores_and_coordinates_are_rounded_in_every_format(
    db: str, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    code, out, _ = query(capsys, "--db", db, "--run", "1", "--limit", "1", "--format", fmt)
    assert code == 0
    for shown in ("0.912", "0.1", "2.0", "10.6", "20.3"):
        assert shown in out
    for unrounded in ("0.9123", "0.12", "1.98", "10.55", "20.33"):
        assert unrounded not in out


def test_a_track_is_of_the_latest_run_unless_run_says_which(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = query(capsys, "--db", db, "--track", "3")
    assert code == 0
    assert out == "no detections of track 3 of run 2 (the latest; --run to choose)\n"
    code, out, _ = query(capsys, "--db", db, "--track", "3", "--run", "1", "--format", "json")
    assert code == 0
    assert [(r["run_id"], r["track_id"]) for r in json.loads(out)] == [(1, 3)] * 3
    code, out, _ = query(capsys, "--db", db, "--track", "7", "--count-by", "camera")
    assert out.splitlines()[1].split() == ["lobby", "60", "1"]


def test_list_runs_prints_each_run_with_its_detections_and_tracks_newest_first(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = query(capsys, "--db", db, "--list", "runs", "--format", "json")
    assert code == 0
    runs = json.loads(out)
    assert [(r["id"], r["detections"], r["tracks"]) for r in runs] == [(2, 120, 1), (1, 3, 1)]
    assert runs[0]["status"] == "finished"


def test_list_tracks_prints_the_latest_runs_tracks_unless_run_says_which(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = query(capsys, "--db", db, "--list", "tracks")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["run_id", "camera", "track_id", "label"]
    assert lines[1].split()[:4] == ["2", "lobby", "1", "person"]
    assert lines[-1] == "(1 tracks of run 2 (the latest; --run to choose), newest first)"
    code, out, _ = query(capsys, "--db", db, "--list", "tracks", "--run", "1", "--format", "csv")
    assert [r["camera"] for r in csv.DictReader(io.StringIO(out))] == ["gate"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--all", "--limit", "3"], "--all and --limit exclude each other"),
        (["--list", "runs", "--count-by", "label"], "--list and --count-by exclude each other"),
        (["--list", "runs", "--camera", "gate"], "--list runs does not take --camera"),
        (["--list", "tracks", "--since", "2h"], "--list tracks does not take --since"),
    ],
)
def test_options_that_cannot_go_together_are_refused_in_one_line(
    db: str, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = query(capsys, "--db", db, *args)
    assert code == 2 and out == "" and err == f"error: {message}\n"


def test_a_track_without_any_run_stored_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    write_run(url, time.time(), {})
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(delete(Run))
    engine.dispose()
    code, _, err = query(capsys, "--db", url, "--track", "1")
    assert code == 1 and err == f"error: database {url} holds no runs yet\n"


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["query", "--track"], "--track"),
        (["query", "--run"], "--run"),
        (["dataset", "export", "--out", "ds", "--run"], "--run"),
    ],
    ids=["query-track", "query-run", "dataset-export-run"],
)
@pytest.mark.parametrize("value", ["0", "2147483648"])
def test_a_stored_id_is_refused_with_the_bound_its_column_holds(
    argv: list[str], option: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, value])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert err.startswith(f"error: {option}: must be from 1 to 2147483647, got '{value}'"), err


@pytest.mark.parametrize("option", ["--video-dir", "--snapshot-dir"])
def test_retention_refuses_a_folder_that_is_not_one_before_deleting_any_row(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], option: str
) -> None:
    (tmp_path / "a-file").write_text("")
    before = query(capsys, "--db", db, "--count-by", "camera")
    for folder in (tmp_path / "no-such-folder", tmp_path / "a-file"):
        with pytest.raises(SystemExit) as exit_:
            main(["retention", "--db", db, "--older-than", "30m", option, str(folder)])
        out, err = capsys.readouterr()
        assert (exit_.value.code, out) == (EXIT_USAGE, "") and err.count("\n") == 1
        assert err.startswith(f"error: {option}: ") and str(folder) in err
    assert query(capsys, "--db", db, "--count-by", "camera") == before
    main(["retention", "--db", db, "--older-than", "30m"])  # which the rows were old enough for
    assert query(capsys, "--db", db, "--count-by", "camera") != before


@pytest.mark.parametrize(
    ("by", "says"), [("zone", "no zone visits"), ("line", "no line crossings")]
)
def test_counting_zones_or_lines_that_saw_nothing_says_what_it_counted(
    db: str, capsys: pytest.CaptureFixture[str], by: str, says: str
) -> None:
    assert query(capsys, "--db", db, "--count-by", by) == (0, f"{says}\n", "")
    assert query(capsys, "--db", db, "--count-by", "camera", "--camera", "nowhere") == (
        0,
        "no detections\n",
        "",
    )


def test_a_since_after_until_is_refused_in_one_line_not_answered_with_no_rows(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = query(
        capsys, "--db", db, "--since", "2026-11-21T10:00Z", "--until", "2026-11-21T09:00Z"
    )
    assert (code, out) == (EXIT_USAGE, "")
    assert err == (
        "error: --since (2026-11-21 10:00:00 UTC) is after --until (2026-11-21 09:00:00 UTC): "
        "no time is in between\n"
    )
    code, out, _ = query(capsys, "--db", db, "--since", "3h", "--until", "30m")
    assert code == 0 and out.endswith(
        "(50 detections, newest first; 73 more: --limit N or --all to see them)\n"
    )


@pytest.mark.parametrize(
    "args", [["--list", "tracks"], ["--list", "visits"], ["--count-by", "label"], []]
)
def test_a_run_that_does_not_exist_is_refused_naming_the_runs_there_are(
    db: str, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = query(capsys, "--db", db, "--run", "99", *args)
    assert code == 1 and out == ""
    assert err == (
        f"error: --run 99: no such run in database {db} "
        "(it holds 2 runs, ids 1 to 2; --list runs lists them)\n"
    )


def test_a_run_that_does_not_exist_is_refused_without_the_database_s_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    skip_without_pg()
    with pg_schema() as url:
        write_run(url, time.time(), {"gate": [[BOX]]})
        with_password = make_url(url).set(password="s3cret-pw")  # trust: not checked
        shown = with_password.render_as_string(hide_password=False)
        code, _, err = query(capsys, "--db", shown, "--run", "99", "--list", "tracks")
    assert code == 1 and "no such run" in err
    assert "s3cret-pw" not in err and ":***@" in err


def test_a_run_of_a_database_with_one_run_names_that_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    write_run(url, time.time(), {"gate": [[BOX]]})
    code, _, err = query(capsys, "--db", url, "--run", "2", "--list", "tracks")
    assert code == 1
    assert err == (
        f"error: --run 2: no such run in database {url} (its one run is 1; --list runs lists them)\n"
    )


class _Output(io.StringIO):
    """stdout noting how many rows had been read from the database at its first write."""

    def __init__(self, rows_read: list[object]) -> None:
        super().__init__()
        self.rows_read = rows_read
        self.read_at_first_write: int | None = None

    def write(self, text: str) -> int:
        if self.read_at_first_write is None:
            self.read_at_first_write = len(self.rows_read)
        return super().write(text)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_all_in_json_and_csv_writes_rows_as_they_are_read_not_once_all_are_in_memory(
    db: str, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    # Every row used to be held before the first was printed: gigabytes for millions.
    from sinks.sql import query as sql_query

    read: list[object] = []
    record = sql_query._record

    def counted(row: Any) -> Any:
        read.append(row)
        return record(row)

    monkeypatch.setattr(sql_query, "_record", counted)
    monkeypatch.setattr(sql_query, "FETCH_ROWS", 10)
    out = _Output(read)
    monkeypatch.setattr("sys.stdout", out)
    assert main(["query", "--db", db, "--all", "--format", fmt]) == 0
    assert out.read_at_first_write is not None and out.read_at_first_write <= 10
    text = out.getvalue()
    rows = json.loads(text) if fmt == "json" else list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == len(read) == 123
    if fmt == "json":  # the documented format, as json.dump writes it
        assert text == json.dumps(rows, indent=1) + "\n"


def test_all_in_json_with_no_matching_row_prints_an_empty_list(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = query(capsys, "--db", db, "--all", "--format", "json", "--camera", "none")
    assert (code, out, err) == (0, "[]\n", "")


def test_list_tracks_all_in_csv_writes_tracks_as_they_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sinks.sql import query as sql_query

    url = f"sqlite:///{tmp_path / 'tracks.db'}"
    write_run(url, time.time(), {f"cam-{i}": [[BOX]] for i in range(30)})  # a track each
    read: list[object] = []
    record = sql_query._track_record

    def counted(row: Any, snapshots: bool) -> Any:
        read.append(row)
        return record(row, snapshots)

    monkeypatch.setattr(sql_query, "_track_record", counted)
    monkeypatch.setattr(sql_query, "FETCH_ROWS", 5)
    out = _Output(read)
    monkeypatch.setattr("sys.stdout", out)
    assert main(["query", "--db", url, "--list", "tracks", "--all", "--format", "csv"]) == 0
    assert out.read_at_first_write is not None and out.read_at_first_write <= 5
    assert len(list(csv.DictReader(io.StringIO(out.getvalue())))) == len(read) == 30
