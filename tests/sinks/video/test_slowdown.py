"""A live camera whose frames clearly slow down after its file opened (a detector falling
behind) has that file finished, every frame it was given in it, and the next one opened
with an encoder that holds no frame back; a hiccup does not do that, nor a motion-gated
camera's still scene, and frames that keep slowing down and speeding up make one file more
at most."""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.types import StreamInfo
from sinks.video.encoding import Encoding
from sinks.video.files import WrittenFile
from sinks.video.sink import VideoSink
from sinks.video.slowdown import SLOW_S, SLOWER
from tests.clock import Clock
from tests.sinks.video.conftest import LABELS, edges_on_disk, picture_types, write_at

RATE = Fraction(25)
VERYFAST = Encoding(preset="veryfast")  # B-frames and look-ahead: 12 frames held back


def _edges(first: int, end: int) -> list[int]:
    """Where the square is in frames `first` to `end` - 1 (`write_at`)."""
    return [5 * (k % 15) for k in range(first, end)]


def _live(tmp_path: Path, clock: Clock, camera: str, still_gap_s: float | None = None) -> VideoSink:
    sink = VideoSink(tmp_path, LABELS, encoding=VERYFAST, clock=clock)
    sink.start(StreamInfo(camera, 96, 64, RATE, "synthetic", live=True, still_gap_s=still_gap_s))
    return sink


def _finished(sink: VideoSink, camera: str) -> list[WrittenFile]:
    return sink.records.get(camera, [])


def test_a_live_camera_whose_frames_slow_down_ends_its_file_and_holds_none_back_in_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sinks.video")
    clock = Clock(0.0)
    sink = _live(tmp_path, clock, "lobby")
    for i in range(100):  # every frame of the camera, as it comes
        write_at(sink, clock, "lobby", i, at=i / 25)
    for i in range(100, 130):  # its detector falls behind: 2 frames a second
        write_at(sink, clock, "lobby", i, at=4 + (i - 99) / 2)
        if not _finished(sink, "lobby"):
            continue
        # finished as it ended, before the run does: every frame it was given plays from disk
        [ended] = _finished(sink, "lobby")
        assert edges_on_disk(ended.path) == _edges(0, ended.frames)
        [next_file] = [p for p in tmp_path.glob("lobby_*.mp4") if p != ended.path]
        # its next file holds no frame back: all but the last frame (a fragment waits for
        # the next frame) are on disk as they come
        assert edges_on_disk(next_file) == _edges(ended.frames, i)
    sink.close()
    first, second = _finished(sink, "lobby")
    # a sustained slowdown: it ended within SLOW_S of the frames slowing down
    assert 100 < first.frames <= 100 + SLOW_S * 2
    assert first.frames + second.frames == 130
    assert edges_on_disk(second.path) == _edges(first.frames, 130)
    assert "B" in picture_types(first.path)
    assert "B" not in picture_types(second.path)
    [said] = [r.getMessage() for r in caplog.records if "slowed" in r.getMessage()]
    assert said.startswith("video sink: camera 'lobby' has slowed down to ")


def test_a_live_camera_whose_frames_stop_for_a_second_keeps_its_file(tmp_path: Path) -> None:
    clock = Clock(0.0)
    sink = _live(tmp_path, clock, "lobby")
    for i in range(250):  # 10 s of video, and no frame from 5 s to 6.5 s
        write_at(sink, clock, "lobby", i, at=i / 25 + (1.5 if i >= 125 else 0.0))
    sink.close()
    [file] = _finished(sink, "lobby")
    assert file.frames == 250
    assert "B" in picture_types(file.path)


@pytest.mark.parametrize("slow_fps", [0.5, 2.0, 10.0])
def test_frames_that_keep_slowing_down_and_speeding_up_make_one_file_more_at_most(
    tmp_path: Path, slow_fps: float
) -> None:
    clock = Clock(0.0)
    sink = _live(tmp_path, clock, "swinging")
    index, at = 0, 0.0
    for _ in range(8):  # 5 s at the video's rate, then 5 s slower, 80 s in all
        for gap in [1 / 25] * 125 + [1 / slow_fps] * round(5 * slow_fps):
            write_at(sink, clock, "swinging", index, at)
            index, at = index + 1, at + gap
    sink.close()
    files = _finished(sink, "swinging")
    assert len(files) == 2  # the slowdown's file, holding no frame back, does not end early
    assert sum(f.frames for f in files) == index
    assert "B" not in picture_types(files[1].path)


def test_frames_a_little_over_half_the_videos_rate_keep_the_file(tmp_path: Path) -> None:
    clock = Clock(0.0)
    sink = _live(tmp_path, clock, "lobby")
    fps = float(RATE) / SLOWER * 1.1
    for i in range(125):  # 5 s at the video's rate, then 20 s at 55 % of it
        write_at(sink, clock, "lobby", i, at=i / 25)
    for i in range(125, 125 + round(20 * fps)):
        write_at(sink, clock, "lobby", i, at=5 + (i - 124) / fps)
    sink.close()
    assert len(_finished(sink, "lobby")) == 1


def test_a_motion_gated_cameras_still_scene_does_not_end_its_file(tmp_path: Path) -> None:
    clock = Clock(0.0)
    # motion gating without full_rate_video: a still scene's frame a second
    sink = _live(tmp_path, clock, "gated", still_gap_s=1.0)
    for i in range(50):  # things move
        write_at(sink, clock, "gated", i, at=i / 25)
    for i in range(50, 60):  # the scene is still
        write_at(sink, clock, "gated", i, at=2 + (i - 49))
    sink.close()
    [file] = _finished(sink, "gated")
    assert file.frames == 60
    assert "B" in picture_types(file.path)
