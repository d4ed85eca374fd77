"""A full disk does not stop the video sink: the file it cut short is kept up to its last
whole fragment and counted (removed when it holds no frame), the camera's frames are dropped
and counted while the disk is full, and a new file starts once there is room again. Every
frame given to the sink is in a file or counted as lost, and the run ends with one line
saying how many were lost, naming the file system.

The disk is filled for real: a small tmpfs (skipped where mounting is not allowed).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.types import StreamEnd, StreamInfo
from sinks.base import SinkError
from sinks.video.sink import VideoSink
from tests.sinks.small_disk import SmallDisk, small_disk
from tests.sinks.video.conftest import LABELS, STAMP0, decode, frame_result

RATE = Fraction(10)  # a fragment (flushed to disk as a whole) every 10 frames


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", "4m") as mounted:
        yield mounted


def noise(index: int) -> np.ndarray:
    """A frame that does not compress: the disk fills in a few fragments."""
    return np.random.default_rng(index).integers(0, 256, (120, 160, 3), np.uint8)


def frames_that_play(path: Path) -> int:
    """Frames decoded from `path` up to the first that cannot be (the one the disk cut)."""
    count = 0
    with av.open(str(path)) as container, contextlib.suppress(av.InvalidDataError):
        for _ in container.decode(video=0):
            count += 1
    return count


def start(sink: VideoSink) -> None:
    sink.start(StreamInfo("cam", 160, 120, RATE, source="synthetic"))


def send(sink: VideoSink, frames: range, cameras: tuple[str, ...] = ("cam",)) -> None:
    for i in frames:
        for camera in cameras:
            sink.write(frame_result(camera, i, noise(i)))  # never raises on a full disk


def test_a_file_cut_short_by_a_full_disk_is_kept_counted_and_the_loss_names_the_disk(
    disk: SmallDisk, caplog: pytest.LogCaptureFixture
) -> None:
    sink = VideoSink(disk.path / "video", LABELS)
    start(sink)
    send(sink, range(15))  # the first fragment (frames 0-9) is on disk
    disk.fill()
    with caplog.at_level(logging.WARNING, logger="sinks.video"):
        send(sink, range(15, 45))
    with pytest.raises(SinkError) as info:
        sink.close()

    path = disk.path / "video" / f"cam_{STAMP0}.mp4"
    (record,) = sink.records["cam"]
    assert record.path == path and record.cut_short
    assert record.frames == frames_that_play(path) >= 10
    assert record.frames + sink.lost["cam"] == 45
    (said,) = [r.getMessage() for r in caplog.records]
    assert said == (
        f"video sink: cannot write camera 'cam' to {path}: disk full: the file system at "
        f"{disk.path} (0.0 MB free of 4.2 MB); the file is kept, playable up to where it "
        f"stopped ({record.frames} frames); its frames are dropped (counted) until "
        f"{disk.path / 'video'} has 16 MB free"
    )
    assert str(info.value).startswith(
        f"video sink: {sink.lost['cam']} frames lost (camera 'cam' {sink.lost['cam']}): "
        f"disk full: the file system at {disk.path} ("
    )
    assert sink.describe() == (
        f"video {disk.path / 'video'}: 1 file(s), 1 cut short by an error, "
        f"{sink.lost['cam']} frames lost (camera 'cam' {sink.lost['cam']})\n"
        f"{path.name}: {record.frames} frames, cut short"
    )


def test_finishing_a_file_on_a_full_disk_still_counts_it(disk: SmallDisk) -> None:
    sink = VideoSink(disk.path / "video", LABELS)
    start(sink)
    send(sink, range(15))
    disk.fill()
    sink.end(StreamEnd("cam", 15))  # the last fragment and the index do not fit
    with pytest.raises(SinkError, match=r"^video sink: \d+ frames lost .*: disk full: the file "):
        sink.close()

    (record,) = sink.records["cam"]
    assert record.path == disk.path / "video" / f"cam_{STAMP0}.mp4" and record.cut_short
    assert record.frames == frames_that_play(record.path) >= 10
    assert record.frames + sink.lost["cam"] == 15


def test_a_file_the_full_disk_left_without_a_frame_is_removed_and_not_counted(
    disk: SmallDisk,
) -> None:
    sink = VideoSink(disk.path / "video", LABELS)
    start(sink)
    disk.fill()
    send(sink, range(30))
    with pytest.raises(SinkError) as info:
        sink.close()

    assert str(info.value).startswith("video sink: 30 frames lost (camera 'cam' 30): disk full: ")
    assert sink.files == {}
    assert list((disk.path / "video").iterdir()) == []
    assert sink.describe() == (
        f"video {disk.path / 'video'}: 0 file(s), 30 frames lost (camera 'cam' 30)"
    )


def test_once_the_full_disk_has_room_again_each_camera_starts_a_new_file_and_no_frame_goes_uncounted(
    tmp_path: Path,
) -> None:
    cameras = ("a", "b")
    # room for the files, and for ROOM_TO_RESUME_BYTES once the filler is gone
    with small_disk(tmp_path / "disk", "24m") as disk:
        sink = VideoSink(disk.path / "video", LABELS, room_check_s=0.0)
        for camera in cameras:
            sink.start(StreamInfo(camera, 160, 120, RATE, source="synthetic"))

        send(sink, range(0, 15), cameras)  # the first fragment of each file is on disk
        disk.fill()
        send(sink, range(15, 40), cameras)  # the disk is full: frames dropped, counted
        disk.free()
        send(sink, range(40, 60), cameras)
        with pytest.raises(SinkError) as info:
            sink.close()

        records = sink.records
        for camera in cameras:
            first, second = records[camera]
            assert first.cut_short and not second.cut_short
            assert first.path.name.startswith(f"{camera}_") and second.path != first.path
            assert first.frames == frames_that_play(first.path) >= 10
            assert second.frames == len(decode(second.path)[0]) > 0
            assert first.frames + second.frames + sink.lost[camera] == 60
        lost = sum(sink.lost.values())
        assert str(info.value).startswith(
            f"video sink: {lost} frames lost (camera 'a' {sink.lost['a']}, camera 'b' "
            f"{sink.lost['b']}): disk full: the file system at {disk.path} "
        )
        described = sink.describe().splitlines()
        assert described[0] == (
            f"video {disk.path / 'video'}: 4 file(s), 2 cut short by an error, "
            f"{lost} frames lost (camera 'a' {sink.lost['a']}, "
            f"camera 'b' {sink.lost['b']})"
        )
        assert described[1:] == [
            f"{r.path.name}: {r.frames} frames" + (", cut short" if r.cut_short else "")
            for camera in records
            for r in records[camera]
        ]
