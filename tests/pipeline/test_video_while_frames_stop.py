"""In a run, a live camera whose frames stop (its source blocked, or reconnecting) has its
video up to its last frame on disk, playable, while the run goes on: no later frame has to
come to write the last fragment. When frames come again they go to a new file, and the
files together hold every frame once, each file's timestamps 0, 1/fps, 2/fps..."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from pipeline import source_check
from pipeline.config import parse_config
from pipeline.runner import Pipeline
from sinks.video.encoding import frames_in
from tests.pipeline.stalling import OneBox, Running, Stalling

FRAMES = 30
"""Frames before the stall, and after it: more than one fragment (25 frames at 25 fps), so
that a fragment is on disk and the next one is still being filled when the frames stop."""


def _frames_on_disk(folder: Path) -> int:
    """The frames that play in the folder's MP4 files now."""
    return sum(frames_in(path) for path in folder.glob("*.mp4"))


def _timestamps(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [float(f.time) for f in container.decode(video=0) if f.time is not None]


@pytest.mark.parametrize("pause", ["source-blocks", "reconnecting"])
def test_a_camera_whose_frames_stop_has_its_video_to_the_last_frame_on_disk_while_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pause: str
) -> None:
    source = Stalling(blocks=pause == "source-blocks", frames=FRAMES, again=FRAMES)
    monkeypatch.setattr(source_check, "make_source", lambda c, *_: source)
    folder = tmp_path / "video"
    config = parse_config(
        "cameras:\n  - id: cam\n    source: rtsp://camera.test/stream\n"
        "    reconnect: {initial_delay_s: 0.01}\n"
        f"sinks:\n  - type: video\n    dir: {folder}\n"
    )
    detector = OneBox()
    with Running(Pipeline(config, detector=detector), source) as run:
        assert source.stalled.wait(10), "the camera never stalled"
        on_disk = 0
        for _ in range(200):  # 10 s at most
            on_disk = _frames_on_disk(folder)
            if on_disk and on_disk == len(detector.seen):
                break
            time.sleep(0.05)
        still_running = run.alive and not source.resume.is_set()
        before = len(detector.seen)
        source.resume.set()
        for _ in range(200):  # the frames after the stall, 10 s at most
            if len(detector.seen) >= before + FRAMES // 2:
                break
            time.sleep(0.05)
    assert still_running
    assert before > 0 and on_disk == before
    assert run.summary is not None and run.summary.sink_errors == []
    files = sorted(folder.glob("*.mp4"))
    assert len(files) == 2  # the frames after the stall in a file of their own
    assert _frames_on_disk(folder) == len(detector.seen)
    for path in files:
        stamps = _timestamps(path)
        assert stamps == pytest.approx([i / 25 for i in range(len(stamps))])
