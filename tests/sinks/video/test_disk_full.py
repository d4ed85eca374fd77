"""A full disk stops the video sink with one line naming the file system, and the file it
cut short is kept and counted when it plays (removed when it holds no frame).

The disk is filled for real: a small tmpfs (skipped where mounting is not allowed).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.types import StreamInfo
from sinks.base import SinkError
from sinks.video.sink import VideoSink
from tests.sinks.small_disk import SmallDisk, small_disk
from tests.sinks.video.conftest import LABELS, STAMP0, frame_result

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


def write_until_it_fails(sink: VideoSink, first: int) -> SinkError:
    for i in range(first, first + 200):
        try:
            sink.write(frame_result("cam", i, noise(i)))
        except SinkError as exc:
            return exc
    raise AssertionError("the full disk went unnoticed")


def test_a_file_cut_short_by_a_full_disk_is_kept_and_counted_and_the_error_names_the_disk(
    disk: SmallDisk,
) -> None:
    sink = VideoSink(disk.path / "video", LABELS)
    start(sink)
    for i in range(15):  # the first fragment (frames 0-9) is on disk
        sink.write(frame_result("cam", i, noise(i)))
    disk.fill()
    error = write_until_it_fails(sink, 15)
    sink.close()

    path = disk.path / "video" / f"cam_{STAMP0}.mp4"
    assert str(error).startswith(
        f"video sink: cannot write camera 'cam' to {path}: disk full: "
        f"the file system at {disk.path} (0.0 MB free of 4.2 MB); "
    )
    assert str(error).endswith("the file is kept, playable up to where it stopped")
    assert sink.files == {"cam": [path]}
    assert sink.describe() == f"video {disk.path / 'video'}: 1 file(s), 1 cut short by an error"
    assert frames_that_play(path) >= 10


def test_finishing_a_file_on_a_full_disk_still_counts_it(disk: SmallDisk) -> None:
    sink = VideoSink(disk.path / "video", LABELS)
    start(sink)
    for i in range(15):
        sink.write(frame_result("cam", i, noise(i)))
    disk.fill()
    with pytest.raises(SinkError, match=r"cannot finish .*: disk full: the file system at "):
        sink.close()  # the last fragment and the index do not fit

    assert sink.files == {"cam": [disk.path / "video" / f"cam_{STAMP0}.mp4"]}
    assert sink.describe() == f"video {disk.path / 'video'}: 1 file(s), 1 cut short by an error"


def test_a_file_the_full_disk_left_without_a_frame_is_removed_and_not_counted(
    disk: SmallDisk,
) -> None:
    sink = VideoSink(disk.path / "video", LABELS)
    start(sink)
    disk.fill()
    error = write_until_it_fails(sink, 0)
    sink.close()

    assert f"disk full: the file system at {disk.path}" in str(error)
    assert sink.files == {}
    assert list((disk.path / "video").iterdir()) == []
    assert sink.describe() == f"video {disk.path / 'video'}: 0 file(s)"
