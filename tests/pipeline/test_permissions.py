"""Files and folders the user may not read or write: each ends in one error line naming
what is wrong, never a traceback, and what else can run runs on.

The commands run with file modes binding them, root included (`tests.pipeline.unprivileged`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from detector.architectures import ARCHITECTURES
from detector.checkpoints import save_checkpoint
from pipeline.types import LabelMap
from tests.conftest import write_video
from tests.detector.training.datasets import make_shapes_dataset, write_coco
from tests.pipeline.unprivileged import error_lines, read_only, run_unprivileged, unreadable
from tests.pipeline.without_detector import DETECTOR_BUILT

DETECTOR = (
    # the bundled model finds no people in rectangles: keep its 3 best boxes a frame
    "detector:\n  device: cpu\n  runtime: torch\n  batch_size: 4\n"
    "  score_threshold: 0.0\n  max_detections: 3\n"
)
FRAMES = 8
NOT_READABLE = "file not readable (Permission denied):"
"""What `run` and `validate` alike say of a video file whose mode refuses the user."""


def config(tmp_path: Path, cameras: dict[str, Path], sinks: str, detector: str = DETECTOR) -> Path:
    cams = "".join(f"  - id: {cid}\n    source: {path}\n" for cid, path in cameras.items())
    file = tmp_path / "cams.yaml"
    file.write_text(f"cameras:\n{cams}{detector}sinks:\n{sinks}")
    return file


def sql_sink(db: Path) -> str:
    return f"  - type: sql\n    url: sqlite:///{db}\n"


def stored(db: Path) -> dict[str, int]:
    """The frames with detections the run stored in `db`, per camera."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT camera, count(DISTINCT frame) FROM detections GROUP BY camera"
        ).fetchall()
    return dict(rows)


def assert_one_error(stderr: str, *naming: str) -> str:
    """The one error line of `stderr`, which names each of `naming`; no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1, stderr
    assert all(name in lines[0] for name in naming), lines[0]
    return lines[0]


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    return write_video(tmp_path / "clip.mp4", frames=FRAMES)


@pytest.mark.parametrize(("kind", "new"), [("video", False), ("video", True), ("snapshots", False)])
def test_run_with_an_unwritable_output_folder_stops_at_start_naming_sink_and_folder(
    tmp_path: Path, clip: Path, kind: str, new: bool
) -> None:
    locked = read_only(tmp_path / "out")
    folder = locked / kind if new else locked
    db = tmp_path / "det.db"
    sinks = sql_sink(db) + f"  - type: {kind}\n    dir: {folder}\n"
    done = run_unprivileged("run", str(config(tmp_path, {"cam": clip}, sinks)), "--no-progress")

    verb = "make" if new else "write in"
    line = assert_one_error(done.stderr, f"{kind} sink: cannot {verb} the folder {folder}: ")
    assert line.startswith("error: ") and line.endswith(": permission denied")
    assert done.returncode == 1
    assert "frames/s" not in done.stdout  # no closing summary: no frame was read
    assert not db.exists()  # checked before any sink opened (or the detector was built)


def test_a_video_folder_made_read_only_mid_run_fails_the_video_sink_alone(
    tmp_path: Path,
) -> None:
    clip = write_video(tmp_path / "long.mp4", frames=30, fps=10)
    folder = tmp_path / "video"
    db = tmp_path / "det.db"
    sinks = (  # a file each 0.6 s of video (6 frames): new files open after the lock
        f"  - type: video\n    dir: {folder}\n    segment_minutes: 0.01\n" + sql_sink(db)
    )
    file = config(tmp_path, {"cam": clip}, sinks, "detector:\n  batch_size: 2\n")
    done = run_unprivileged(str(file), str(folder), "12", module="tests.pipeline.locked_mid_run")

    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    errors = done.stdout.splitlines()
    assert len(errors) == 1 and errors[0].startswith("video sink: cannot open "), done.stdout
    assert str(folder) in errors[0] and ": Permission denied (" in errors[0], errors[0]
    assert stored(db) == {"cam": 30}  # the sql sink went on with every frame
    assert len(list(folder.glob("*.mp4"))) >= 1  # what was written before is kept


@pytest.mark.parametrize("locked", ["file", "folder"])
def test_run_with_a_read_only_sqlite_database_ends_in_one_line_naming_it_before_the_detector(
    tmp_path: Path, clip: Path, locked: str
) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / "det.db"
    with sqlite3.connect(db) as made:
        made.execute("PRAGMA user_version = 7")
    before = db.read_bytes()
    read_only(folder) if locked == "folder" else db.chmod(0o444)
    done = run_unprivileged(
        "run",
        str(config(tmp_path, {"cam": clip}, sql_sink(db))),
        "--no-progress",
        module="tests.pipeline.without_detector",  # a first run's export takes seconds
    )

    assert DETECTOR_BUILT not in done.stderr, done.stderr
    line = assert_one_error(done.stderr, f"sqlite:///{db}", "readonly database")
    assert line.startswith("error: sql sink: cannot open database")
    assert done.returncode == 1
    assert db.read_bytes() == before and sorted(folder.iterdir()) == [db]  # left as it was


@pytest.mark.parametrize("locked", ["file", "folder"])
def test_validate_with_a_read_only_sqlite_database_names_it(tmp_path: Path, locked: str) -> None:
    folder = tmp_path / "db"
    folder.mkdir()
    db = folder / "det.db"
    sqlite3.connect(db).close()
    read_only(folder) if locked == "folder" else db.chmod(0o444)
    file = config(tmp_path, {"cam": write_video(tmp_path / "clip.mp4")}, sql_sink(db))
    done = run_unprivileged("validate", str(file))

    # in run's words (SQLite's own), and in the one check both use
    assert_one_error(done.stderr, f"{file}: sinks[0] (sql): cannot open", "readonly database")
    assert done.returncode == 1


def test_run_with_an_unreadable_video_fails_that_camera_alone(tmp_path: Path, clip: Path) -> None:
    hidden = unreadable(write_video(tmp_path / "hidden.mp4", frames=FRAMES))
    db = tmp_path / "det.db"
    cameras = {"hidden": hidden, "open": clip}
    done = run_unprivileged("run", str(config(tmp_path, cameras, sql_sink(db))), "--no-progress")

    # in validate's words: the one check both make
    assert_one_error(done.stderr, f"camera hidden: {NOT_READABLE} '{hidden}'")
    assert done.returncode == 1
    assert stored(db) == {"open": FRAMES}


def test_validate_with_an_unreadable_video_names_the_file(tmp_path: Path, clip: Path) -> None:
    hidden = unreadable(write_video(tmp_path / "hidden.mp4", frames=FRAMES))
    file = config(tmp_path, {"hidden": hidden}, sql_sink(tmp_path / "det.db"))
    done = run_unprivileged("validate", str(file))

    assert_one_error(done.stderr, "cameras[0].source", f"{NOT_READABLE} '{hidden}'")
    assert done.returncode == 2


@pytest.mark.parametrize("command", ["run", "validate"])
def test_a_video_in_a_folder_the_user_may_not_enter_is_named_unreadable_not_missing(
    tmp_path: Path, clip: Path, command: str
) -> None:
    # was: "cannot check the path" from validate, "No such file or directory" from run
    (tmp_path / "locked").mkdir()
    hidden = write_video(tmp_path / "locked" / "hidden.mp4", frames=FRAMES)
    hidden.parent.chmod(0o000)
    file = config(tmp_path, {"hidden": hidden}, sql_sink(tmp_path / "det.db"))
    done = run_unprivileged(command, str(file), *(["--no-progress"] if command == "run" else []))

    assert_one_error(done.stderr, f"{NOT_READABLE} '{hidden}'")
    assert done.returncode == (1 if command == "run" else 2)


@pytest.mark.parametrize("command", ["run", "validate"])
def test_an_unreadable_checkpoint_is_named_as_unreadable_not_as_damaged(
    tmp_path: Path, clip: Path, command: str
) -> None:
    checkpoint = tmp_path / "best.pt"
    model = ARCHITECTURES["person_ssdlite"](3, 300)
    save_checkpoint(checkpoint, model, "person_ssdlite", 300, LabelMap(("bg", "cat", "dog")), {})
    unreadable(checkpoint)
    detector = DETECTOR.replace("cpu\n", f"cpu\n  model: {checkpoint}\n", 1)
    file = config(tmp_path, {"cam": clip}, sql_sink(tmp_path / "det.db"), detector)
    done = run_unprivileged(command, str(file), *(["--no-progress"] if command == "run" else []))

    line = assert_one_error(done.stderr, f"cannot read model checkpoint {checkpoint}: ")
    assert line.endswith(": permission denied") and "damaged" not in line
    assert done.returncode == 2
    assert not (tmp_path / "det.db").exists()


@pytest.fixture(scope="module")
def coco(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A COCO dataset of 4 shapes images, 2 for validation: its train.json."""
    shapes = make_shapes_dataset(tmp_path_factory.mktemp("shapes"), images=4, val=2)
    return write_coco(shapes, tmp_path_factory.mktemp("coco")) / "train.json"


@pytest.mark.parametrize("new", [True, False])
def test_train_into_an_unwritable_folder_stops_before_training(
    tmp_path: Path, coco: Path, new: bool
) -> None:
    locked = read_only(tmp_path / "locked")
    folder = locked / "run" if new else locked
    done = run_unprivileged(
        "train", "--data", str(coco), "--out", str(folder), "--epochs", "1", "--workers", "0"
    )

    verb = "make" if new else "write in"
    assert_one_error(done.stderr, f"--out: cannot {verb} the folder {folder}: permission denied")
    assert done.returncode == 2 and "val mAP" not in done.stderr


@pytest.mark.parametrize("new", [True, False])
def test_dataset_export_into_an_unwritable_folder_ends_in_one_line(
    tmp_path: Path, new: bool
) -> None:
    locked = read_only(tmp_path / "locked")
    folder = locked / "ds" if new else locked
    done = run_unprivileged(
        "dataset", "export", "--db", f"sqlite:///{tmp_path / 'det.db'}", "--run", "1",
        "--out", str(folder), "--no-progress",
    )  # fmt: skip

    verb = "make" if new else "write in"
    assert_one_error(done.stderr, f"--out: cannot {verb} the folder {folder}: permission denied")
    assert done.returncode == 2


def test_a_read_only_onnx_cache_costs_a_warning_not_the_run(tmp_path: Path, clip: Path) -> None:
    """The network is exported for this run alone, and onnxruntime runs it: caching is an
    optimisation. (A cache folder that cannot be made takes the same way.)"""
    locked = tmp_path / "cache"
    read_only(locked / "onnx")
    db = tmp_path / "det.db"
    detector = DETECTOR.replace("runtime: torch", "runtime: onnxruntime\n  precision: fp32")
    file = config(tmp_path, {"cam": clip}, sql_sink(db), detector)
    temp = tmp_path / "temp"
    temp.mkdir()
    env = {"SSD_PIPELINE_CACHE": str(locked), "TMPDIR": str(temp)}
    done = run_unprivileged("run", str(file), "--no-progress", env=env)

    assert "Traceback" not in done.stderr and error_lines(done.stderr) == [], done.stderr
    warnings = [line for line in done.stderr.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, done.stderr
    assert (
        f"ONNX cache: cannot write in the folder {locked / 'onnx'}: permission denied"
        in warnings[0]
    )
    assert "for this run only" in warnings[0]
    assert done.returncode == 0
    assert "detector: person_ssdlite on cpu, onnxruntime, fp32" in done.stdout
    assert stored(db) == {"cam": FRAMES}
    assert list((locked / "onnx").glob("*")) == []
    assert list(temp.glob("ssd-pipeline-onnx-*")) == []  # the run's network went with it
