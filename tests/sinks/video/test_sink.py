"""VideoSink names, rotates and finishes its files, one per camera and stream, and reports
failures as SinkError naming the camera and the file."""

from __future__ import annotations

import errno
import shutil
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pipeline.types import StreamEnd, StreamInfo
from sinks.base import SinkError
from sinks.video.encoding import Encoding, SegmentFile
from sinks.video.files import Rotation, segment_pattern
from sinks.video.sink import VideoSink
from tests.sinks.video.conftest import (
    LABELS,
    STAMP0,
    decode,
    frame_result,
    moving_square,
    square_left_edge,
    write_stream,
)


def test_negative_encoder_threads_are_refused() -> None:
    with pytest.raises(ValueError, match="threads"):
        Encoding(threads=-1)


@pytest.mark.parametrize(
    ("rotation", "named"),
    [({"segment_s": 0.0}, "segment_s"), ({"max_age_s": -1.0}, "max_age_s"),
     ({"max_segments": 0}, "max_segments")],
)  # fmt: skip
def test_a_rotation_that_would_never_keep_a_file_is_refused(
    rotation: dict[str, float], named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        Rotation(**rotation)  # type: ignore[arg-type]


def test_file_is_named_after_camera_and_first_frame_time_in_a_created_directory(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "out" / "videos"
    sink = VideoSink(directory, LABELS)
    write_stream(sink, "lobby", 3, 64, 48, Fraction(25))
    sink.close()

    assert sink.paths == {"lobby": directory / f"lobby_{STAMP0}.mp4"}
    assert sink.paths["lobby"].is_file()


def test_close_without_end_still_produces_playable_files(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path, LABELS)
    sink.start(StreamInfo("a", 96, 64, Fraction(25), source="synthetic"))
    sink.start(StreamInfo("b", 96, 64, Fraction(10), source="synthetic"))
    for i in range(12):
        sink.write(frame_result("a", i, moving_square(i, 96, 64)))
        if i < 7:
            sink.write(frame_result("b", i, moving_square(i, 96, 64)))
    sink.close()

    frames_a, rate_a = decode(sink.paths["a"])
    frames_b, rate_b = decode(sink.paths["b"])
    assert (len(frames_a), rate_a) == (12, Fraction(25))
    assert (len(frames_b), rate_b) == (7, Fraction(10))


def test_camera_that_wrote_no_frames_leaves_no_file(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path, LABELS)
    sink.start(StreamInfo("dead", 64, 48, Fraction(25), source="synthetic"))
    sink.end(StreamEnd("dead", frames=0, error="cannot open"))
    sink.close()

    assert sink.paths == {}
    assert list(tmp_path.iterdir()) == []


def test_camera_started_twice_in_a_run_gets_a_second_file(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path, LABELS)
    write_stream(sink, "cam1", 4, 64, 48, Fraction(25))
    sink.end(StreamEnd("cam1", frames=4))
    first = sink.paths["cam1"]
    write_stream(sink, "cam1", 6, 64, 48, Fraction(25))
    sink.close()

    assert sink.paths["cam1"] != first
    assert len(decode(first)[0]) == 4
    assert len(decode(sink.paths["cam1"])[0]) == 6


@pytest.mark.parametrize("blocked", ["file", "file's folder"])
def test_a_folder_that_cannot_be_made_stops_the_sink_as_it_opens_with_one_line(
    tmp_path: Path, blocked: str
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    folder = blocker if blocked == "file" else blocker / "videos"
    with pytest.raises(SinkError) as raised:
        VideoSink(folder, LABELS)

    assert str(raised.value) == (
        f"video sink: {blocker} is a file, not a folder"
        if blocked == "file"
        else f"video sink: cannot make the folder {folder}: {blocker} is not a folder"
    )


def test_opening_creates_nothing_the_first_file_makes_the_folder(tmp_path: Path) -> None:
    directory = tmp_path / "out" / "videos"
    sink = VideoSink(directory, LABELS)
    assert not (tmp_path / "out").exists()
    write_stream(sink, "lobby", 2, 64, 48, Fraction(25))
    sink.close()
    assert list(directory.iterdir()) == [sink.paths["lobby"]]


def test_file_error_while_writing_raises_sink_error_naming_camera_and_file(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "videos"
    sink = VideoSink(directory, LABELS)
    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))
    shutil.rmtree(directory)
    directory.write_text("")  # a file in its place: PyAV creates the file on the first frame

    with pytest.raises(SinkError) as excinfo:
        for i in range(50):
            sink.write(frame_result("cam1", i, moving_square(i, 64, 48)))
    message = str(excinfo.value)
    assert "'cam1'" in message and f"cam1_{STAMP0}.mp4" in message
    assert "\n" not in message
    sink.close()  # safe after the failure


def test_a_stream_whose_file_failed_to_finish_is_ended_and_refuses_later_frames(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = VideoSink(tmp_path, LABELS)
    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))
    for i in range(3):
        sink.write(frame_result("cam1", i, moving_square(i, 64, 48)))

    def failing(self: SegmentFile) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(SegmentFile, "finish", failing)
    with pytest.raises(SinkError, match="cannot finish"):
        sink.end(StreamEnd("cam1", frames=3))
    with pytest.raises(SinkError, match="before its stream started"):
        sink.write(frame_result("cam1", 3, moving_square(3, 64, 48)))


def test_a_folder_removed_mid_run_is_made_again_and_the_frames_deleted_with_it_are_counted(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "videos"
    sink = VideoSink(directory, LABELS, rotation=Rotation(segment_s=1.0))  # 25 frames a file
    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))
    for i in range(60):
        if i == 10:
            shutil.rmtree(directory)  # the open file took frames on, deleted
        sink.write(frame_result("cam1", i, moving_square(i, 64, 48)))
    with pytest.raises(SinkError) as excinfo:
        sink.close()
    gone = directory / f"cam1_{STAMP0}.mp4"
    assert str(excinfo.value) == (
        f"video sink: 25 frames lost (camera 'cam1' 25): {gone} was deleted while written"
    )
    assert [len(decode(path)[0]) for path in sink.files["cam1"]] == [25, 10]
    assert sorted(directory.iterdir()) == sink.files["cam1"]


def test_unknown_codec_raises_sink_error_naming_camera_and_codec(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path, LABELS, encoding=Encoding(codec="no-such-codec"))

    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))
    with pytest.raises(SinkError, match=r"'cam1'.*'no-such-codec'"):
        sink.write(frame_result("cam1", 0, moving_square(0, 64, 48)))
    sink.close()


def test_segments_rotate_after_segment_s_of_video_and_keep_every_frame(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path, LABELS, rotation=Rotation(segment_s=1.0))
    write_stream(sink, "cam1", 25, 160, 64, Fraction(10))  # 2.5 s of video at 10 fps
    sink.end(StreamEnd("cam1", frames=25))
    sink.close()

    files = sink.files["cam1"]
    assert [len(decode(f)[0]) for f in files] == [10, 10, 5]
    assert len(set(files)) == 3 and all(segment_pattern("cam1").match(f.name) for f in files)
    # each file starts where the previous one stopped: the square is at 5 px per frame
    firsts = [square_left_edge(decode(f)[0][0]) for f in files]
    assert all(abs(edge - 5 * start) <= 2 for edge, start in zip(firsts, (0, 10, 20), strict=True))


def test_a_video_width_scales_the_annotated_frames_down_in_their_aspect(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path, LABELS, encoding=Encoding(width=48))
    write_stream(sink, "wide", 4, 192, 128, Fraction(25))  # 192x128 -> 48x32
    write_stream(sink, "small", 2, 40, 30, Fraction(25))  # narrower than 48: never enlarged
    sink.close()
    images, _ = decode(sink.paths["wide"])
    assert [image.shape for image in images] == [(32, 48, 3)] * 4
    # the same picture, a quarter of the size: the square (rows 40-60, from x = 5 * index,
    # 20 wide) in rows 10-15, from x / 4, 5 wide
    edges = [int(np.flatnonzero(image[11:14].mean(axis=(0, 2)) > 128)[0]) for image in images]
    assert edges == pytest.approx([0, 1.25, 2.5, 3.75], abs=1)
    small, _ = decode(sink.paths["small"])
    assert [image.shape for image in small] == [(30, 40, 3)] * 2


def test_a_video_width_must_be_even() -> None:
    for width in (47, 0):
        with pytest.raises(ValueError, match="even"):
            Encoding(width=width)
    assert Encoding(width=640).size_for(1920, 1081) == (640, 360)
    assert Encoding().size_for(767, 575) == (766, 574)  # an odd row or column cropped
