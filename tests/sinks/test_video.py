"""VideoSink writes playable MP4s (one frame per input frame, input rate) and annotate draws."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.types import Detections, Frame, FrameResult, LabelMap, StreamEnd, StreamInfo
from sinks.base import SinkError
from sinks.draw import annotate, box_color, caption
from sinks.video import VideoSink, delete_old_videos, encoder_options, segment_pattern

ROOT = Path(__file__).resolve().parents[2]

LABELS = LabelMap(("background", "person", "car"))
WALL0 = 1.8e9  # wall time of frame 0 in these tests
STAMP0 = datetime.fromtimestamp(WALL0).strftime("%Y%m%d-%H%M%S")


def moving_square(index: int, width: int, height: int) -> np.ndarray:
    """Black frame with a white 20x20 square whose left edge is at x = 5 * index."""
    image = np.zeros((height, width, 3), np.uint8)
    x = 5 * index
    image[40:60, x : x + 20] = 255
    return image


def frame_result(camera: str, index: int, image: np.ndarray) -> FrameResult:
    frame = Frame(camera, index, pts=index * 0.04, wall_time=WALL0 + index * 0.04, image=image)
    return FrameResult(frame=frame, detections=Detections.empty())


def write_stream(
    sink: VideoSink, camera: str, frames: int, width: int, height: int, rate: Fraction
) -> None:
    sink.start(StreamInfo(camera, width, height, rate, source="synthetic"))
    for i in range(frames):
        sink.write(frame_result(camera, i, moving_square(i, width, height)))


def decode(path: Path) -> tuple[list[np.ndarray], Fraction | None]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        images = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return images, stream.average_rate


def square_left_edge(image: np.ndarray) -> int:
    bright_columns = np.flatnonzero(image[45:55].mean(axis=(0, 2)) > 128)
    return int(bright_columns[0])


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_colours_survive_the_encode(tmp_path: Path, threads: int) -> None:
    colours = [(220, 30, 30), (30, 200, 40), (40, 60, 210), (128, 128, 128)]
    image = np.zeros((96, 128, 3), np.uint8)
    for k, colour in enumerate(colours):
        image[(k // 2) * 48 : (k // 2 + 1) * 48, (k % 2) * 64 : (k % 2 + 1) * 64] = colour
    sink = VideoSink(tmp_path, LABELS, crf=12, threads=threads)
    sink.start(StreamInfo("cam", 128, 96, Fraction(10), source="synthetic"))
    for i in range(3):
        sink.write(frame_result("cam", i, image))
    sink.close()
    (path,) = tmp_path.glob("*.mp4")
    images, _ = decode(path)
    assert len(images) == 3
    for k, colour in enumerate(colours):
        # the middle of each quadrant, away from chroma blending at the edges
        top, left = (k // 2) * 48 + 12, (k % 2) * 64 + 16
        got = images[-1][top : top + 24, left : left + 32].reshape(-1, 3).mean(axis=0)
        assert np.abs(got - colour).max() < 6, (colour, got)


def test_negative_encoder_threads_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="threads"):
        VideoSink(tmp_path, LABELS, threads=-1)


@pytest.mark.parametrize(
    ("width", "height", "rate", "expected_size"),
    [
        (160, 120, Fraction(25), (160, 120)),
        (160, 120, Fraction(30000, 1001), (160, 120)),
        (161, 121, Fraction(25), (160, 120)),
    ],
    ids=["25fps", "ntsc-29.97fps", "odd-size-cropped-to-even"],
)
def test_mp4_has_one_frame_per_written_frame_at_input_rate_and_size(
    tmp_path: Path,
    width: int,
    height: int,
    rate: Fraction,
    expected_size: tuple[int, int],
) -> None:
    sink = VideoSink(tmp_path, LABELS)
    write_stream(sink, "cam1", 25, width, height, rate)
    sink.end(StreamEnd("cam1", frames=25))
    sink.close()

    images, average_rate = decode(sink.paths["cam1"])
    assert len(images) == 25
    assert average_rate == rate
    assert {(im.shape[1], im.shape[0]) for im in images} == {expected_size}
    # Frames come out in the order written: the square moves 5 px per frame.
    edges = [square_left_edge(im) for im in images]
    assert all(abs(edge - 5 * i) <= 2 for i, edge in enumerate(edges)), edges


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


def test_unwritable_output_directory_raises_sink_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    sink = VideoSink(blocker / "videos", LABELS)

    with pytest.raises(SinkError, match="not-a-dir"):
        sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))
    sink.close()


def test_file_error_while_writing_raises_sink_error_naming_camera_and_file(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "videos"
    sink = VideoSink(directory, LABELS)
    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))
    shutil.rmtree(directory)  # PyAV creates the file on the first frame, which now fails

    with pytest.raises(SinkError) as excinfo:
        for i in range(50):
            sink.write(frame_result("cam1", i, moving_square(i, 64, 48)))
    message = str(excinfo.value)
    assert "'cam1'" in message and f"cam1_{STAMP0}.mp4" in message
    assert "\n" not in message
    sink.close()  # safe after the failure


def test_unknown_codec_raises_sink_error_naming_camera_and_codec(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path, LABELS, codec="no-such-codec")

    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))
    with pytest.raises(SinkError, match=r"'cam1'.*'no-such-codec'"):
        sink.write(frame_result("cam1", 0, moving_square(0, 64, 48)))
    sink.close()


def test_segments_rotate_after_segment_s_of_video_and_keep_every_frame(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path, LABELS, segment_s=1.0)
    write_stream(sink, "cam1", 25, 160, 64, Fraction(10))  # 2.5 s of video at 10 fps
    sink.end(StreamEnd("cam1", frames=25))
    sink.close()

    files = sink.files["cam1"]
    assert [len(decode(f)[0]) for f in files] == [10, 10, 5]
    assert len(set(files)) == 3 and all(segment_pattern("cam1").match(f.name) for f in files)
    # each file starts where the previous one stopped: the square is at 5 px per frame
    firsts = [square_left_edge(decode(f)[0][0]) for f in files]
    assert all(abs(edge - 5 * start) <= 2 for edge, start in zip(firsts, (0, 10, 20), strict=True))


def _old_file(directory: Path, name: str, age_s: float) -> Path:
    path = directory / name
    path.write_bytes(b"old video")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_retention_keeps_only_the_newest_files_of_the_camera(tmp_path: Path) -> None:
    other_camera = _old_file(tmp_path, "cam10_20200101-000000.mp4", 10)
    unrelated = _old_file(tmp_path, "notes.txt", 10)
    sink = VideoSink(tmp_path, LABELS, segment_s=0.5, max_segments=2)
    write_stream(sink, "cam1", 25, 64, 48, Fraction(10))  # 5 files of 5 frames
    sink.close()

    files = sink.files["cam1"]
    assert len(files) == 5
    assert sink.deleted == files[:3]
    assert sorted(tmp_path.iterdir()) == sorted([*files[3:], other_camera, unrelated])


def test_retention_deletes_files_older_than_max_age_when_a_camera_starts(tmp_path: Path) -> None:
    stale = _old_file(tmp_path, "cam1_20200101-000000.mp4", 3 * 3600)
    stale_2 = _old_file(tmp_path, "cam1_20200101-000000-2.mp4", 2 * 3600)
    recent = _old_file(tmp_path, "cam1_20200102-000000.mp4", 600)
    other_camera = _old_file(tmp_path, "cam2_20200101-000000.mp4", 3 * 3600)
    sink = VideoSink(tmp_path, LABELS, max_age_s=3600)
    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))

    assert sorted(sink.deleted) == sorted([stale, stale_2])
    assert recent.exists() and other_camera.exists()
    sink.close()


def test_delete_old_videos_removes_only_video_files_older_than_the_cutoff(tmp_path: Path) -> None:
    old = _old_file(tmp_path, "gate_20200101-000000.mp4", 7200)
    new = _old_file(tmp_path, "gate_20200101-010000.mp4", 60)
    not_ours = _old_file(tmp_path, "holiday.mp4", 7200)
    cutoff = time.time() - 3600

    assert delete_old_videos(tmp_path, cutoff, dry_run=True) == [old]
    assert old.exists()
    assert delete_old_videos(tmp_path, cutoff) == [old]
    assert sorted(tmp_path.iterdir()) == sorted([new, not_ours])


_KILLED_WRITER = """
import os, signal, sys
from fractions import Fraction
import numpy as np
from pipeline.types import Detections, Frame, FrameResult, LabelMap, StreamInfo
import sinks.video

sink = sinks.video.VideoSink(sys.argv[1], LabelMap(()), fragmented=sys.argv[2] == "1")
sink.start(StreamInfo("cam1", 160, 120, Fraction(25), "synthetic"))
for i in range(int(sys.argv[3])):
    image = np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    sink.write(FrameResult(Frame("cam1", i, i / 25, 1.8e9 + i / 25, image), Detections.empty()))
os.kill(os.getpid(), signal.SIGKILL)  # no close(): the process dies with the file open
"""


@pytest.mark.parametrize("fragmented", [True, False], ids=["fragmented", "classic"])
def test_hard_kill_leaves_a_playable_file_only_when_fragmented(
    tmp_path: Path, fragmented: bool
) -> None:
    written = 100  # 4 s at 25 fps
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path), str(int(fragmented)), str(written)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (path,) = tmp_path.glob("cam1_*.mp4")
    if not fragmented:
        with pytest.raises(av.FFmpegError):
            decode(path)
        return
    images, rate = decode(path)
    # Lost: at most the fragment being filled (1 s) and the encoder's look-ahead.
    assert written - 25 - 20 <= len(images) < written
    assert rate == Fraction(25)


def detections(boxes: list[list[float]], labels: list[int], tracks: list[int]) -> Detections:
    return Detections(
        xyxy=np.array(boxes, np.float32),
        score=np.full(len(boxes), 0.9, np.float32),
        label=np.array(labels, np.int64),
        track_id=np.array(tracks, np.int64),
    )


def test_annotate_returns_new_image_with_box_outline_and_leaves_input_unchanged() -> None:
    image = np.full((120, 160, 3), 40, np.uint8)
    original = image.copy()
    dets = detections([[40, 50, 120, 100]], [1], [3])

    out = annotate(image, dets, LABELS)

    np.testing.assert_array_equal(image, original)
    assert out is not image and out.shape == image.shape and out.dtype == np.uint8
    assert np.any(out[75, 38:43] != original[75, 38:43])  # left edge of the box
    assert np.any(out[75, 118:123] != original[75, 118:123])  # right edge
    assert np.any(out[98:103, 80] != original[98:103, 80])  # bottom edge
    np.testing.assert_array_equal(out[75, 60:100], original[75, 60:100])  # box inside
    np.testing.assert_array_equal(out[110:, :30], original[110:, :30])  # far corner


def test_annotate_colours_boxes_by_track_id_whatever_their_label() -> None:
    image = np.zeros((120, 160, 3), np.uint8)
    out = annotate(
        image,
        detections([[10, 40, 50, 80], [60, 40, 100, 80], [110, 40, 150, 80]], [1, 2, 1], [7, 7, 8]),
        LABELS,
    )
    left_edges = [tuple(out[60, x]) for x in (10, 60, 110)]
    assert left_edges[0] == left_edges[1] == box_color(7, 1)
    assert left_edges[2] == box_color(8, 1) != box_color(7, 1)


def test_untracked_boxes_are_coloured_by_label() -> None:
    assert box_color(-1, 1) == box_color(-1, 1)
    assert box_color(-1, 1) != box_color(-1, 2)


def test_caption_shows_track_id_only_for_tracked_boxes() -> None:
    assert caption("person", 0.8712, 3) == "person 0.87 #3"
    assert caption("car", 0.5, -1) == "car 0.50"


def test_x264_settings_map_onto_nvenc_options() -> None:
    assert encoder_options("libx264", 23, "veryfast") == {"crf": "23", "preset": "veryfast"}
    assert encoder_options("h264_nvenc", 28, "veryfast") == {
        "rc": "vbr", "cq": "28", "preset": "p3"
    }
    assert encoder_options("h264_nvenc", 23, "slower")["preset"] == "p7"


@pytest.mark.skipif(
    "h264_nvenc" not in av.codecs_available or shutil.which("nvidia-smi") is not None,
    reason="needs FFmpeg with NVENC on a machine without an NVIDIA GPU",
)
def test_an_encoder_that_cannot_run_here_fails_when_the_file_opens(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path, LABELS, codec="h264_nvenc")
    sink.start(StreamInfo("cam", 160, 120, Fraction(25), "test"))
    with pytest.raises(SinkError, match=r"cannot open .*cam_.*\.mp4 for camera 'cam' with codec "
                       r"'h264_nvenc': .*\(NVENC needs an NVIDIA GPU with a video encoder, which the H100, "
                       r"H200 and A100 lack, and its driver; codec libx264 encodes on the CPU\)"):  # fmt: skip
        sink.write(frame_result("cam", 0, moving_square(0, 160, 120)))
    assert list(tmp_path.iterdir()) == []  # no empty file left behind
