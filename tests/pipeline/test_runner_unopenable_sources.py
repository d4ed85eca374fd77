"""A run fails a camera whose file or image folder cannot open before it sets up its
detector, and ends there when no camera is left."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline import runner
from pipeline.config import DetectorConfig, parse_config
from pipeline.runner import Pipeline
from pipeline.types import CameraStatus, RunOutcome, StreamEnd
from tests.conftest import VideoFactory, write_video
from tests.pipeline.test_pipelining import EagerDetector, Recorder


def missing(name: str = "missing.mp4") -> str:
    """What a run says of the file `name`, relative and not there, in the folder it runs in."""
    return f"file not found: '{name}' (relative to '{Path.cwd()}')"


class StatusRecorder(Recorder):
    """A `Recorder` that keeps the cameras' status reports too."""

    def __init__(self) -> None:
        super().__init__()
        self.statuses: list[CameraStatus] = []

    def status(self, status: CameraStatus) -> None:
        self.statuses.append(status)


def never_build(config: DetectorConfig, announce: object) -> EagerDetector:
    raise AssertionError("the run went on to build its detector")


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("missing.mp4", "file not found: 'missing.mp4' (relative to "),
        ("{type: file, path: folder}", "not a file: 'folder'"),
        ("{type: images, path: folder}", "no images (.bmp, .jpeg, .jpg, .png, .tif, .tiff, "),
        ("empty.mp4", "empty file (0 bytes): 'empty.mp4'"),
        ("text.mp4", "not a video (cannot open it: Invalid data found when processing input)"),
        ("cut.mp4", "not a video (cannot open it: "),
    ],
    ids=[
        "missing-file",
        "folder-as-file",
        "folder-without-images",
        "empty-file",
        "text-file-named-mp4",
        "truncated-header",
    ],
)
def test_a_run_whose_only_camera_cannot_open_ends_before_its_detector_is_built(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    source: str,
    error: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("a shopping list, not a recording\n" * 20)
    (tmp_path / "cut.mp4").write_bytes(
        write_video(tmp_path / "whole.mp4", 2, (32, 32)).read_bytes()[:40]
    )
    config = parse_config(f"cameras:\n  - id: cam\n    source: {source}\n", check_sources=False)
    monkeypatch.setattr(runner, "build_run_detector", never_build)
    with caplog.at_level(logging.ERROR):
        summary = Pipeline(config).run()

    assert not summary.ok and not summary.interrupted and summary.frames == 0
    assert summary.cameras["cam"].status.startswith(f"FAILED: camera cam: {error}")
    (said,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert said == summary.cameras["cam"].error  # one line, said once


def test_a_run_with_one_good_and_one_missing_camera_runs_the_good_one_fully(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    synthetic_video: VideoFactory,
) -> None:
    clip = synthetic_video("good.mp4", frames=5, size=(64, 48))
    monkeypatch.chdir(tmp_path)
    text = f"cameras:\n  - id: good\n    source: {clip}\n  - id: gone\n    source: missing.mp4\n"
    recorder = StatusRecorder()
    pipeline = Pipeline(
        parse_config(text, check_sources=False), detector=EagerDetector(), extra_sinks=[recorder]
    )
    with caplog.at_level(logging.ERROR):
        summary = pipeline.run()

    assert summary.cameras["good"].ok and summary.cameras["good"].frames == 5
    assert recorder.frames("good") == list(range(5))
    assert summary.cameras["gone"].status == f"FAILED: camera gone: {missing()}"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"camera gone: {missing()}"]  # said before set-up, not again
    # the sinks hear of the missing camera as of one whose reader failed to open it
    assert [(s.state, s.message) for s in recorder.statuses if s.camera_id == "gone"] == [
        ("connecting", None),
        ("failed", missing()),
    ]
    (end,) = [m for m in recorder.messages if isinstance(m, StreamEnd) and m.camera_id == "gone"]
    assert end.frames == 0 and end.error == f"camera gone: {missing()}"


def test_a_missing_file_found_before_set_up_stays_failed_if_it_appears_during_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, synthetic_video: VideoFactory
) -> None:
    clip = synthetic_video("good.mp4", frames=3, size=(64, 48))
    monkeypatch.chdir(tmp_path)
    text = f"cameras:\n  - id: good\n    source: {clip}\n  - id: late\n    source: late.mp4\n"

    def build_while_it_appears(config: DetectorConfig, announce: object) -> EagerDetector:
        (tmp_path / "late.mp4").write_bytes(clip.read_bytes())
        return EagerDetector()

    monkeypatch.setattr(runner, "build_run_detector", build_while_it_appears)
    summary = Pipeline(parse_config(text, check_sources=False)).run()
    assert summary.cameras["late"].status == (f"FAILED: camera late: {missing('late.mp4')}")
    assert summary.cameras["late"].frames == 0 and summary.cameras["good"].frames == 3


class OwnedDetector(EagerDetector):
    """An `EagerDetector` that says whether it was closed (its owner closes it)."""

    closed = False

    def close(self) -> None:
        self.closed = True


class OutcomeRecorder(StatusRecorder):
    """A `StatusRecorder` that keeps how the run ended too."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: list[RunOutcome] = []

    def run_ended(self, outcome: RunOutcome) -> None:
        self.outcomes.append(outcome)


def test_a_run_handed_its_detector_and_sinks_ends_before_its_set_up_when_no_camera_is_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cluster's shard hands over its detector and the sinks it opened: with no camera to
    # read, nothing more is set up; the sinks hear of each camera and are closed, as at the
    # end of any run, and the detector is left to its owner.
    monkeypatch.chdir(tmp_path)
    config = parse_config(
        "cameras:\n  - id: cam\n    source: missing.mp4\n  - id: spare\n    source: gone.mp4\n"
        "sinks:\n  - {type: video, dir: out}\n",
        check_sources=False,
    )

    def never_build_sinks(*_args: object, **_kwargs: object) -> list[object]:
        raise AssertionError("the run went on to open its configured sinks")

    monkeypatch.setattr(runner, "build_sinks", never_build_sinks)
    detector, recorder = OwnedDetector(), OutcomeRecorder()
    pipeline = Pipeline(config, detector=detector, extra_sinks=[recorder])
    pipeline.stop_camera("spare")
    summary = pipeline.run()

    assert summary.cameras["cam"].status == f"FAILED: camera cam: {missing()}"
    assert summary.cameras["spare"].status == "not started: stopped before it opened"
    assert not summary.ok and summary.frames == 0 and summary.outputs == ["recorder"]
    assert [(s.camera_id, s.state, s.message) for s in recorder.statuses] == [
        ("cam", "failed", missing())
    ]
    ends = [m for m in recorder.messages if isinstance(m, StreamEnd)]
    assert ends == recorder.messages
    assert [(m.camera_id, m.frames, m.error) for m in ends] == [
        ("cam", 0, f"camera cam: {missing()}"),
        ("spare", 0, None),
    ]
    assert recorder.outcomes == ["failed"] and recorder.closed
    assert not detector.closed
