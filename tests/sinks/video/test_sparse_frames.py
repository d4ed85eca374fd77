"""Frames that come seldom do not wait in memory: a file's fragments hold as many frames as
come in about a second of wall time (one at least), its encoder holding none back, so what is
on disk plays up to the last frame but one; frames at the video's own rate keep fragments of
a second of video."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from pipeline.types import StreamInfo
from sinks.video.encoding import FRAGMENT_US, Encoding, fragment_us
from sinks.video.sink import VideoSink
from tests.clock import Clock
from tests.sinks.video.conftest import LABELS, decode, frame_result, moving_square, square_left_edge

RATE = Fraction(25)


def _write(sink: VideoSink, clock: Clock, camera: str, index: int, at: float) -> None:
    clock.now = at
    sink.write(frame_result(camera, index, moving_square(index % 15, 96, 64)))


def _edges_on_disk(path: Path) -> list[int]:
    """Where the square is in each frame the file, as written so far, plays."""
    return [square_left_edge(image) for image in decode(path)[0]]


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])  # veryfast: B-frames, look-ahead
def test_a_max_fps_camera_has_every_frame_but_the_last_on_disk_as_it_comes(
    tmp_path: Path, preset: str
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, encoding=Encoding(preset=preset), clock=clock)
    # max_fps: 1 without full_rate_video: a frame a second of a 25 fps stream
    sink.start(StreamInfo("lapse", 96, 64, RATE, "synthetic", live=True, frame_gap_s=1.0))
    for i in range(8):
        _write(sink, clock, "lapse", i, at=float(i))
        [path] = tmp_path.glob("lapse_*.mp4")
        assert _edges_on_disk(path) == [5 * (k % 15) for k in range(i)]
    sink.close()


def test_frames_that_came_seldom_give_the_next_file_short_fragments(tmp_path: Path) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, clock=clock)
    # every frame of the stream reaches the sink, but only one a second (a slow detector)
    sink.start(StreamInfo("slow", 96, 64, RATE, "synthetic", live=True))
    for i in range(4):
        _write(sink, clock, "slow", i, at=float(i))
    clock.now = 10.0
    sink.tick()  # its frames stopped: the file is finished, the gaps seen are kept
    [first] = sink.records["slow"]
    for i in range(4, 10):
        _write(sink, clock, "slow", i, at=6.0 + i)
        [path] = [p for p in tmp_path.glob("slow_*.mp4") if p != first.path]
        assert _edges_on_disk(path) == [5 * (k % 15) for k in range(4, i)]
    sink.close()


def test_frames_at_the_videos_rate_keep_fragments_of_a_second(tmp_path: Path) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, clock=clock)
    sink.start(StreamInfo("lobby", 96, 64, RATE, "synthetic", live=True))
    for i in range(40):
        _write(sink, clock, "lobby", i, at=i / 25)
    [path] = tmp_path.glob("lobby_*.mp4")
    assert len(_edges_on_disk(path)) == 25  # one whole fragment: the second second is open
    sink.close()


def test_a_camera_at_the_videos_rate_keeps_fragments_of_a_second_after_its_frames_stopped(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, clock=clock)
    sink.start(StreamInfo("lobby", 96, 64, RATE, "synthetic", live=True))
    for i in range(30):
        _write(sink, clock, "lobby", i, at=i / 25)
    clock.now = 6.0
    sink.tick()  # its frames stopped: the wait until the next one is no gap between frames
    [first] = sink.records["lobby"]
    for i in range(30, 70):
        _write(sink, clock, "lobby", i, at=6.0 + i / 25)
    [path] = [p for p in tmp_path.glob("lobby_*.mp4") if p != first.path]
    assert len(_edges_on_disk(path)) == 25
    sink.close()


def test_fragments_hold_a_second_of_video_or_the_frames_of_a_second_of_wall_time() -> None:
    assert fragment_us(RATE, None) == fragment_us(RATE, 0.04) == FRAGMENT_US
    assert fragment_us(RATE, 0.2) == 200_000  # 5 frames, 5 x 40 ms
    assert fragment_us(RATE, 1.0) == fragment_us(RATE, 30.0) == 40_000  # one frame
    assert fragment_us(Fraction(30000, 1001), 0.5) == 66_733  # 2 frames, rounded down
