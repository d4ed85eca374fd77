"""`validate` finds what would stop a sink opening at `run`, without opening it."""

from __future__ import annotations

import contextlib
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from pipeline.folders import folder_problem
from tests.conftest import VideoFactory, free_port
from tests.sinks.small_disk import small_disk


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port another program listens on, for the test's length."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield int(server.getsockname()[1])


def validate(tmp_path: Path, clip: Path, sinks: str) -> int:
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: cam\n    source: {clip}\n"
        "detector: {model: person_ssdlite, device: cpu}\n"
        f"sinks:\n{sinks}"
    )
    return main(["validate", str(config)])


@pytest.mark.parametrize(
    "sink",
    [
        "  - {type: live, host: 127.0.0.1, port: PORT}\n",
        "  - {type: zmq, endpoint: 'tcp://127.0.0.1:PORT'}\n",
    ],
    ids=["live", "zmq"],
)
def test_a_port_another_program_holds_is_found_by_validate(
    tmp_path: Path,
    synthetic_video: VideoFactory,
    held_port: int,
    capsys: pytest.CaptureFixture[str],
    sink: str,
) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    code = validate(tmp_path, clip, sink.replace("PORT", str(held_port)))
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "sinks[0] (" in err and f"cannot listen on 127.0.0.1:{held_port}" in err
    assert "Traceback" not in err


def test_an_output_folder_that_cannot_be_made_is_found_by_validate(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    (tmp_path / "a-file").write_text("not a folder")
    code = validate(tmp_path, clip, f"  - {{type: video, dir: {tmp_path / 'a-file' / 'video'}}}\n")
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "sinks[0] (video): cannot make the folder" in err and "is not a folder" in err


@pytest.mark.parametrize(
    ("kind", "field"), [("video", "dir"), ("snapshots", "dir"), ("sql", "spool_dir")]
)
def test_run_refuses_an_output_folder_it_could_never_write_before_building_the_detector(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, kind: str, field: str,
) -> None:  # fmt: skip
    built: list[object] = []

    def build(*args: object) -> None:  # a first run's ONNX export takes many seconds here
        built.append(args)
        raise AssertionError("the detector was built")

    monkeypatch.setattr("pipeline.runner.build_run_detector", build)
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    (tmp_path / "a-file").write_text("not a folder")
    folder = tmp_path / "a-file" / kind
    db = tmp_path / "det.db"
    extra = f", url: 'sqlite:///{db}'" if kind == "sql" else ""
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: cam\n    source: {clip}\n"
        f"sinks:\n  - {{type: {kind}, {field}: {folder}{extra}}}\n"
    )
    code = main(["run", "--no-progress", str(config)])
    out, err = capsys.readouterr()
    assert (code, built, out) == (EXIT_FAILED, [], "")
    assert err == (
        f"error: {kind} sink: cannot make the folder {folder}: {tmp_path / 'a-file'} is not a "
        "folder\n"
    )
    assert not db.exists()  # no sink opened


def test_run_refuses_another_programs_sqlite_database_before_building_the_detector(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    def build(*args: object) -> None:
        raise AssertionError("the detector was built")

    monkeypatch.setattr("pipeline.runner.build_run_detector", build)
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    theirs = tmp_path / "theirs.db"
    with contextlib.closing(sqlite3.connect(theirs)) as conn:
        conn.execute("CREATE TABLE runs (name TEXT)")
        conn.commit()
    before = theirs.read_bytes()
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: cam\n    source: {clip}\n"
        f"sinks:\n  - {{type: sql, url: 'sqlite:///{theirs}', spool_dir: {tmp_path / 'spool'}}}\n"
    )
    code = main(["run", "--no-progress", str(config)])
    out, err = capsys.readouterr()
    assert (code, out) == (EXIT_FAILED, "")
    assert err.startswith(f"error: sql sink: cannot write to sqlite:///{theirs}: ")
    assert "its runs table is not this pipeline's" in err and err.count("\n") == 1
    assert theirs.read_bytes() == before and sorted(tmp_path.glob("theirs*")) == [theirs]


def _run_without_a_detector(
    tmp_path: Path, clip: Path, sinks: str, monkeypatch: pytest.MonkeyPatch
) -> int:
    """`run` on `clip` with `sinks`, failing the test if it gets as far as the detector."""

    def build(*args: object) -> None:  # a first run's ONNX export takes many seconds here
        raise AssertionError("the detector was built")

    monkeypatch.setattr("pipeline.runner.build_run_detector", build)
    config = tmp_path / "cams.yaml"
    config.write_text(f"cameras:\n  - id: cam\n    source: {clip}\nsinks:\n{sinks}")
    return main(["run", "--no-progress", str(config)])


def test_run_refuses_a_zmq_port_another_program_holds_before_building_the_detector(
    tmp_path: Path, synthetic_video: VideoFactory, held_port: int,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    endpoint = f"tcp://127.0.0.1:{held_port}"
    code = _run_without_a_detector(
        tmp_path, clip, f"  - {{type: zmq, endpoint: '{endpoint}'}}\n", monkeypatch
    )
    out, err = capsys.readouterr()
    assert (code, out) == (EXIT_FAILED, "")
    assert err == (
        f"error: zmq sink: cannot bind '{endpoint}': Address already in use; another program "
        "(or pipeline) uses that port; choose another endpoint\n"
    )


def test_a_zmq_host_given_by_interface_name_is_left_to_zeromq_before_work() -> None:
    from pipeline.config import ZmqSinkConfig
    from pipeline.preflight import check_sink_before_work

    # ZeroMQ binds `tcp://lo:PORT` on the interface's address; no socket call knows "lo".
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    check_sink_before_work(ZmqSinkConfig(type="zmq", endpoint=f"tcp://lo:{port}"))


def test_validate_leaves_a_zmq_host_given_by_interface_name_to_zeromq() -> None:
    from pipeline.config import ZmqSinkConfig
    from pipeline.preflight import sink_problem

    # It said "cannot listen on lo:PORT: Name or service not known" of an endpoint that
    # ZeroMQ binds on the interface's address.
    port = free_port()
    assert sink_problem(ZmqSinkConfig(type="zmq", endpoint=f"tcp://lo:{port}")) is None


def test_run_refuses_a_sqlite_database_in_a_folder_that_cannot_be_made_before_the_detector(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    (tmp_path / "a-file").write_text("not a folder")
    db = tmp_path / "a-file" / "db" / "det.db"
    sink = f"  - {{type: sql, url: 'sqlite:///{db}', spool_dir: {tmp_path / 'spool'}}}\n"
    code = _run_without_a_detector(tmp_path, clip, sink, monkeypatch)
    out, err = capsys.readouterr()
    assert (code, out) == (EXIT_FAILED, "")
    assert err == (
        f"error: sql sink: cannot open database sqlite:///{db}: cannot make the folder "
        f"{db.parent}: {tmp_path / 'a-file'} is not a folder\n"
    )


def test_run_leaves_its_own_sqlite_database_as_it_was_when_checking_it_can_write(
    tmp_path: Path,
) -> None:
    from sinks.sql.database import DatabaseUrl, sqlite_write_refused

    db = tmp_path / "det.db"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA user_version = 3")
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.commit()
    before = db.read_bytes()
    assert sqlite_write_refused(DatabaseUrl(f"sqlite:///{db}")) is None
    assert sqlite_write_refused(DatabaseUrl(f"sqlite:///{tmp_path / 'new.db'}")) is None
    assert db.read_bytes() == before and sorted(tmp_path.iterdir()) == [db]


def test_an_ipc_endpoint_in_a_missing_folder_is_found_by_validate(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    endpoint = f"ipc://{tmp_path / 'no-such-folder' / 'events'}"
    code = validate(tmp_path, clip, f"  - {{type: zmq, endpoint: '{endpoint}'}}\n")
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert f"sinks[0] (zmq): cannot bind '{endpoint}':" in err and "is not a folder" in err


def test_another_programs_sqlite_database_is_found_by_validate_and_left_as_it_is(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    theirs = tmp_path / "theirs.db"
    with contextlib.closing(sqlite3.connect(theirs)) as conn:
        conn.execute("CREATE TABLE runs (name TEXT)")
        conn.commit()
    before = theirs.read_bytes()
    code = validate(tmp_path, clip, f"  - {{type: sql, url: 'sqlite:///{theirs}'}}\n")
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert (
        "sinks[0] (sql): cannot write to" in err and "its runs table is not this pipeline's" in err
    )
    assert theirs.read_bytes() == before and sorted(p.name for p in tmp_path.glob("theirs*")) == [
        "theirs.db"
    ]


def test_a_database_server_that_does_not_answer_is_found_by_validate(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    url = f"postgresql+psycopg://viewer:s3cret@127.0.0.1:{free_port()}/test"
    code = validate(tmp_path, clip, f"  - {{type: sql, url: '{url}'}}\n")
    err = capsys.readouterr().err
    assert code == EXIT_FAILED
    assert "sinks[0] (sql): cannot open database" in err and "s3cret" not in err


def test_validate_opens_no_sink_and_creates_nothing(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    out = tmp_path / "out"
    sinks = (
        f"  - {{type: video, dir: {out / 'video'}}}\n"
        f"  - {{type: sql, url: 'sqlite:///{out / 'db' / 'detections.db'}', "
        f"spool_dir: {out / 'spool'}}}\n"
        f"  - {{type: live, host: 127.0.0.1, port: {free_port()}}}\n"
        f"  - {{type: zmq, endpoint: 'tcp://127.0.0.1:{free_port()}'}}\n"
    )
    assert validate(tmp_path, clip, sinks) == EXIT_OK, capsys.readouterr().err
    assert not out.exists()


def test_a_calibration_clip_that_is_no_video_is_found_by_validate(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    (tmp_path / "calibration.mp4").write_text("not a video")
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: cam\n    source: {clip}\n"
        "detector: {model: person_ssdlite, device: cpu, precision: int8, "
        f"calibration: {tmp_path / 'calibration.mp4'}}}\nsinks: []\n"
    )
    code = main(["validate", str(config)])  # validate said ok; run then refused it
    err = capsys.readouterr().err
    assert code == EXIT_USAGE
    assert (
        "detector: calibration clip" in err and "cannot decode it" in err and err.count("\n") == 1
    )


def test_an_output_folder_on_a_read_only_file_system_is_said_to_be_read_only(
    tmp_path: Path,
) -> None:
    with small_disk(
        tmp_path / "disk", "1m", read_only=True
    ) as disk:  # root may write anywhere else
        assert folder_problem(disk.path / "out") == (
            f"cannot make the folder {disk.path / 'out'}: read-only file system"
        )
        assert folder_problem(disk.path) == (
            f"cannot write in the folder {disk.path}: read-only file system"
        )


@pytest.mark.parametrize("what", ["folder", "text file"])
def test_a_sqlite_url_naming_a_folder_or_a_file_that_is_no_database_is_found_by_validate_and_run(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, what: str,
) -> None:  # fmt: skip
    clip = synthetic_video("clip.mp4", frames=1, size=(32, 32))
    db = tmp_path / "detections.db"
    if what == "folder":
        db.mkdir()
    else:
        db.write_text("notes, not a database\n")
    sink = f"  - {{type: sql, url: 'sqlite:///{db}', spool_dir: {tmp_path / 'spool'}}}\n"
    assert validate(tmp_path, clip, sink) == EXIT_FAILED
    err = capsys.readouterr().err
    assert f"sinks[0] (sql): cannot open database sqlite:///{db}: {db} " in err
    assert "not a SQLite database" in err and err.count("\n") == 1
    assert _run_without_a_detector(tmp_path, clip, sink, monkeypatch) == EXIT_FAILED
    err = capsys.readouterr().err
    assert err.startswith(f"error: sql sink: cannot open database sqlite:///{db}: {db} ")
    assert "not a SQLite database" in err and err.count("\n") == 1
    assert db.is_dir() if what == "folder" else db.read_text() == "notes, not a database\n"
