"""A camera whose frames stop has its file finished on the sink's tick, every frame in it (the
encoder's delayed ones too), once they have stopped for `STALL_S` and for a few of its gaps
between frames (the wait for its first frame one of them; its first frame alone waits
`MAX_WAIT_S`); its next frame starts a new file, and other cameras' files go on."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

from pipeline.types import StreamInfo
from sinks.video.encoding import Encoding
from sinks.video.sink import VideoSink
from sinks.video.slowdown import SLOW_S
from sinks.video.stalls import MAX_WAIT_S, STALL_S
from tests.clock import Clock
from tests.sinks.video.conftest import LABELS, decode, frame_result, moving_square, square_left_edge


def _write(sink: VideoSink, camera: str, index: int) -> None:
    sink.write(frame_result(camera, index, moving_square(index % 15, 96, 64)))


def test_a_camera_whose_frames_stop_has_its_file_finished_with_every_frame_and_goes_on_in_a_new_one(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    # veryfast holds frames back in the encoder (B-frames, look-ahead): those are written too
    sink = VideoSink(tmp_path, LABELS, encoding=Encoding(preset="veryfast"), clock=clock)
    sink.start(StreamInfo("gate", 96, 64, Fraction(25), source="synthetic", live=True))
    for i in range(30):
        clock.now = i * 0.04
        _write(sink, "gate", i)
    last = clock.now
    clock.now = last + 0.9 * STALL_S
    sink.tick()
    assert sink.records == {}  # not stopped yet: the file is still open

    clock.now = last + 1.1 * STALL_S
    sink.tick()
    [finished] = sink.records["gate"]
    images, _ = decode(finished.path)
    assert finished.frames == len(images) == 30
    assert [square_left_edge(im) for im in images] == [5 * (i % 15) for i in range(30)]

    clock.now += 60.0
    _write(sink, "gate", 30)
    sink.close()
    first, second = sink.records["gate"]
    assert first == finished and second.path != first.path
    assert second.frames == len(decode(second.path)[0]) == 1


def test_frames_that_come_seldom_stay_in_one_file(tmp_path: Path) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, clock=clock)
    lapse = StreamInfo("lapse", 96, 64, Fraction(25), "synthetic", live=True, frame_gap_s=2.5)
    sink.start(lapse)
    for i in range(6):  # one frame every 2.5 s (max_fps 0.4), ticks between
        for tick in range(10):
            clock.now = 2.5 * i + tick * 0.25
            if tick == 0:
                _write(sink, "lapse", i)
            sink.tick()
    sink.close()
    # the first frame, with no gap to go by, waits for the second rather than STALL_S
    assert [f.frames for f in sink.records["lapse"]] == [6]


def test_a_live_cameras_first_frame_alone_has_its_file_finished_after_the_longest_wait(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, clock=clock)
    sink.start(StreamInfo("once", 96, 64, Fraction(25), source="synthetic", live=True))
    clock.now = 0.1
    _write(sink, "once", 0)
    clock.now = 0.1 + 0.9 * MAX_WAIT_S
    sink.tick()
    assert sink.records == {}  # no gap to go by yet: still open
    clock.now = 0.1 + 1.1 * MAX_WAIT_S
    sink.tick()
    assert [f.frames for f in sink.records["once"]] == [1]
    sink.close()


def test_a_stalled_camera_is_finished_while_another_camera_goes_on_in_its_file(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, clock=clock)
    for camera in ("stalls", "goes_on"):
        sink.start(StreamInfo(camera, 96, 64, Fraction(25), source="synthetic", live=True))
    for i in range(100):
        clock.now = i * 0.04
        _write(sink, "goes_on", i)
        if i < 10:
            _write(sink, "stalls", i)
        sink.tick()
    assert [f.frames for f in sink.records["stalls"]] == [10]
    assert "goes_on" not in sink.records  # still open
    sink.close()
    assert [f.frames for f in sink.records["goes_on"]] == [100]
    assert [f.frames for f in sink.records["stalls"]] == [10]


def test_a_live_camera_whose_frames_come_in_batches_far_apart_keeps_one_file(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, clock=clock)
    sink.start(StreamInfo("slow", 96, 64, Fraction(25), source="synthetic", live=True))
    index = 0
    for batch in range(1, 7):  # a slow detector: 8 frames at once every 2.5 s, ticks between
        for tick in range(10):
            clock.now = 2.5 * batch + tick * 0.25
            if tick == 0:
                for _ in range(8):
                    _write(sink, "slow", index)
                    index += 1
            sink.tick()
    sink.close()
    # the first batch's frames came with no gap between them, but 2.5 s after the start, and
    # no wait between batches ended a file; the first one, opened before any gap was known
    # with an encoder that holds frames back, ended once the frames had clearly come slower
    # than the video's frame rate, after SLOW_S (test_slowdown.py)
    first_file = 8 * math.ceil(SLOW_S / 2.5)  # the batches before SLOW_S had passed
    assert [f.frames for f in sink.records["slow"]] == [first_file, 48 - first_file]


def test_a_file_cameras_frames_that_stop_keep_its_file_open_until_its_end(
    tmp_path: Path,
) -> None:
    clock = Clock(0.0)
    sink = VideoSink(tmp_path, LABELS, clock=clock)
    sink.start(StreamInfo("clip", 96, 64, Fraction(25), source="synthetic"))
    for i in range(10):
        clock.now = i * 0.04
        _write(sink, "clip", i)
    clock.now = 10 * STALL_S  # the detector slow, or the run paused
    sink.tick()
    assert "clip" not in sink.records  # still open
    _write(sink, "clip", 10)
    sink.close()
    assert [f.frames for f in sink.records["clip"]] == [11]
