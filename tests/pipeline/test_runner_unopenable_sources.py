"""A run fails a camera whose file or image folder cannot open before it sets up its
detector, and ends there when no camera is left."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from pipeline import runner
from pipeline.config import DetectorConfig, parse_config
from pipeline.runner import Pipeline
from pipeline.types import CameraStatus, StreamEnd
from tests.conftest import VideoFactory, write_video
from tests.pipeline.test_pipelining import EagerDetector, Recorder

MISSING = "cannot open missing.mp4: No such file or directory"


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
        ("missing.mp4", MISSING),
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
    assert summary.cameras["gone"].status == f"FAILED: camera gone: {MISSING}"
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [f"camera gone: {MISSING}"]  # said before set-up, not again
    # the sinks hear of the missing camera as of one whose reader failed to open it
    assert [(s.state, s.message) for s in recorder.statuses if s.camera_id == "gone"] == [
        ("connecting", None),
        ("failed", MISSING),
    ]
    (end,) = [m for m in recorder.messages if isinstance(m, StreamEnd) and m.camera_id == "gone"]
    assert end.frames == 0 and end.error == f"camera gone: {MISSING}"


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
    assert summary.cameras["late"].status == (
        "FAILED: camera late: cannot open late.mp4: No such file or directory"
    )
    assert summary.cameras["late"].frames == 0 and summary.cameras["good"].frames == 3


def test_a_run_handed_its_sinks_runs_them_to_the_end_when_its_only_camera_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A cluster's shard hands over sinks it opened: they hear of the camera, and are closed.
    monkeypatch.chdir(tmp_path)
    config = parse_config("cameras:\n  - id: cam\n    source: missing.mp4\n", check_sources=False)
    recorder = StatusRecorder()
    summary = Pipeline(config, detector=EagerDetector(), extra_sinks=[recorder]).run()

    assert summary.cameras["cam"].status == f"FAILED: camera cam: {MISSING}"
    assert [(s.state, s.message) for s in recorder.statuses] == [
        ("connecting", None),
        ("failed", MISSING),
    ]
    (end,) = [m for m in recorder.messages if isinstance(m, StreamEnd)]
    assert end.camera_id == "cam" and end.error == f"camera cam: {MISSING}"
    assert recorder.closed
