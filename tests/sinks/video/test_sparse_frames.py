"""Frames that come seldom do not wait in memory. A live camera's file has a fragment a frame
(its frames can slow down after the file opened, whose fragments are settled then), keeping
the encoder's B-frames and look-ahead while its frames come at the video's rate; a file
camera's fragments hold a second of video, or as many frames as come in about a second of
wall time (one at least). Where every frame comes seldom the encoder holds none back, so what
is on disk plays up to the last frame but one; a live camera's frames that slow down change
that for its next file, which they start (test_slowdown.py)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.types import StreamInfo
from sinks.video.encoding import FRAGMENT_US, Encoding, Pacing, fragment_us
from sinks.video.files import Rotation
from sinks.video.sink import VideoSink
from tests.clock import Clock
from tests.sinks.video.conftest import (
    LABELS,
    edges_on_disk,
    fragment_frames,
    picture_types,
    write_at,
)

RATE = Fraction(25)


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])  # veryfast: B-frames, look-ahead
def test_a_max_fps_camera_has_every_frame_but_the_last_on_disk_as_it_comes(
    tmp_path: Path, preset: str
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, encoding=Encoding(preset=preset), clock=clock)
    # max_fps: 1 without full_rate_video: a frame a second of a 25 fps stream
    sink.start(StreamInfo("lapse", 96, 64, RATE, "synthetic", live=True, frame_gap_s=1.0))
    for i in range(8):
        write_at(sink, clock, "lapse", i, at=float(i))
        [path] = tmp_path.glob("lapse_*.mp4")
        assert edges_on_disk(path) == [5 * (k % 15) for k in range(i)]
    sink.close()


def test_frames_that_came_seldom_give_the_next_file_short_fragments(tmp_path: Path) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, clock=clock)
    # every frame of the stream reaches the sink, but only one a second (a slow detector)
    sink.start(StreamInfo("slow", 96, 64, RATE, "synthetic", live=True))
    for i in range(4):
        write_at(sink, clock, "slow", i, at=float(i))
    clock.now = 10.0
    sink.tick()  # its frames stopped: the file is finished, the gaps seen are kept
    [first] = sink.records["slow"]
    for i in range(4, 10):
        write_at(sink, clock, "slow", i, at=6.0 + i)
        [path] = [p for p in tmp_path.glob("slow_*.mp4") if p != first.path]
        assert edges_on_disk(path) == [5 * (k % 15) for k in range(4, i)]
    sink.close()


def test_a_file_cameras_frames_at_the_videos_rate_keep_fragments_of_a_second(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, clock=clock)
    sink.start(StreamInfo("clip", 96, 64, RATE, "synthetic"))
    for i in range(60):
        write_at(sink, clock, "clip", i, at=i / 25)
    sink.close()
    [path] = tmp_path.glob("clip_*.mp4")
    assert fragment_frames(path) == [25, 25, 10]


def test_a_live_camera_at_the_videos_rate_gets_a_fragment_a_frame_and_keeps_b_frames(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, encoding=Encoding(preset="veryfast"), clock=clock)
    sink.start(StreamInfo("lobby", 96, 64, RATE, "synthetic", live=True))
    for i in range(60):
        write_at(sink, clock, "lobby", i, at=i / 25)
    sink.close()
    [path] = tmp_path.glob("lobby_*.mp4")
    assert fragment_frames(path) == [1] * 60
    assert "B" in picture_types(path)


def test_a_live_camera_at_the_videos_rate_keeps_its_encoders_delay_after_its_frames_stopped(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, encoding=Encoding(preset="veryfast"), clock=clock)
    sink.start(StreamInfo("lobby", 96, 64, RATE, "synthetic", live=True))
    for i in range(30):
        write_at(sink, clock, "lobby", i, at=i / 25)
    clock.now = 6.0
    sink.tick()  # its frames stopped: the wait until the next one is no gap between frames
    for i in range(30, 70):
        write_at(sink, clock, "lobby", i, at=6.0 + i / 25)
    sink.close()
    _, second = (f.path for f in sink.records["lobby"])
    assert fragment_frames(second) == [1] * 40
    assert "B" in picture_types(second)


def test_fragments_hold_a_second_of_video_or_the_frames_of_a_second_of_wall_time() -> None:
    assert fragment_us(RATE, None) == fragment_us(RATE, 0.04) == FRAGMENT_US
    assert fragment_us(RATE, 0.2) == 200_000  # 5 frames, 5 x 40 ms
    assert fragment_us(RATE, 1.0) == fragment_us(RATE, 30.0) == 40_000  # one frame
    assert fragment_us(Fraction(30000, 1001), 0.5) == 66_733  # 2 frames, rounded down


def test_a_motion_gated_camera_gets_a_fragment_a_frame_and_keeps_b_frames_in_every_file(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(
        tmp_path,
        LABELS,
        encoding=Encoding(preset="veryfast"),
        rotation=Rotation(segment_s=2.0),  # 50 frames a file
        clock=clock,
    )
    # motion gating without full_rate_video: a still scene's frame a second, else all
    sink.start(StreamInfo("gated", 96, 64, RATE, "synthetic", live=True, still_gap_s=1.0))
    for i in range(20):  # still: the next file opens with gaps of about 0.4 s seen
        write_at(sink, clock, "gated", i, at=float(i))
    for i in range(20, 100):  # things move
        write_at(sink, clock, "gated", i, at=20 + (i - 20) / 25)
    sink.close()
    files = [f.path for f in sink.records["gated"]]
    assert len(files) == 2
    for path in files:
        assert fragment_frames(path) == [1] * 50
        assert "B" in picture_types(path)


def test_only_frames_that_always_come_seldom_make_the_encoder_hold_none_back() -> None:
    # the encoder holds no frame back: B-frames wait for a later frame
    assert Pacing(frame_gap_s=1.0).no_delay(RATE)
    assert not Pacing(still_gap_s=1.0).no_delay(RATE)
    assert not Pacing(frame_gap_s=0.04, still_gap_s=1.0).no_delay(RATE)
    assert Pacing(frame_gap_s=0.5, still_gap_s=1.0).no_delay(RATE)


def test_a_live_camera_whose_frames_slow_down_has_a_fragment_a_frame_in_every_file(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    rotation = Rotation(segment_s=4.0)  # 100 frames a file
    encoding = Encoding(preset="veryfast")
    sink = VideoSink(tmp_path, LABELS, encoding=encoding, rotation=rotation, clock=clock)
    sink.start(StreamInfo("slowing", 96, 64, RATE, "synthetic", live=True))
    for i in range(50):  # every frame of the camera, as it comes
        write_at(sink, clock, "slowing", i, at=i / 25)
    for i in range(50, 150):  # its detector slows to 2 frames a second
        write_at(sink, clock, "slowing", i, at=2 + (i - 50) / 2)
    sink.close()
    first, second = sink.records["slowing"]
    assert first.frames + second.frames == 150
    # a frame each also once its frames slowed down: at 2 a second a kill loses no 25 frames
    assert fragment_frames(first.path) == [1] * first.frames
    assert fragment_frames(second.path) == [1] * second.frames
    # the first file's encoder, opened for frames at the video's rate, held frames back; the
    # next file's, opened once frames came seldom, holds none back
    assert "B" in picture_types(first.path)
    assert "B" not in picture_types(second.path)
