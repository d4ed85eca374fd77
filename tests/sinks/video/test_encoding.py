"""Each file has one frame per written frame at the input's rate and size, keeps its colours,
survives a kill when fragmented (a live camera's losing only the frames its encoder holds
back), and opens its encoder with the file; x264 settings map to NVENC."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from pipeline.types import StreamEnd, StreamInfo
from sinks.base import SinkError
from sinks.video.encoding import Encoding, Geometry, SegmentFile, encoder_options, frames_in
from sinks.video.sink import VideoSink
from tests.cores import pin_cores
from tests.sinks.video.conftest import (
    LABELS,
    decode,
    fragment_frames,
    frame_result,
    moving_square,
    square_left_edge,
    write_stream,
)

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("threads", [0, 1, 2])
def test_colours_survive_the_encode(tmp_path: Path, threads: int) -> None:
    colours = [(220, 30, 30), (30, 200, 40), (40, 60, 210), (128, 128, 128)]
    image = np.zeros((96, 128, 3), np.uint8)
    for k, colour in enumerate(colours):
        image[(k // 2) * 48 : (k // 2 + 1) * 48, (k % 2) * 64 : (k % 2 + 1) * 64] = colour
    sink = VideoSink(tmp_path, LABELS, encoding=Encoding(crf=12, threads=threads))
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


def test_a_classic_mp4_gets_its_index_at_the_end(tmp_path: Path) -> None:
    # the muxer goes back to the file's start to finish it: the file it writes must seek
    sink = VideoSink(tmp_path, LABELS, encoding=Encoding(fragmented=False))
    write_stream(sink, "cam1", 12, 64, 48, Fraction(25))
    sink.close()

    with av.open(str(sink.paths["cam1"])) as container:
        stream = container.streams.video[0]
        assert (stream.frames, stream.duration) == (12, 12 * 512)  # from the index


_KILLED_WRITER = """
import os, signal, sys
from fractions import Fraction
import numpy as np
from pipeline.types import Detections, Frame, FrameResult, LabelMap, StreamInfo
from sinks.video.encoding import Encoding
from sinks.video.sink import VideoSink

fragmented, written, live, preset = sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5]
encoding = Encoding(preset=preset, fragmented=fragmented, threads=1)
sink = VideoSink(sys.argv[1], LabelMap(()), encoding=encoding)
sink.start(StreamInfo("cam1", 160, 120, Fraction(25), "synthetic", live=live))
for i in range(written):
    image = np.random.default_rng(i).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    sink.write(FrameResult(Frame("cam1", i, i / 25, 1.8e9 + i / 25, image), Detections.empty()))
os.kill(os.getpid(), signal.SIGKILL)  # no close(): the process dies with the file open
"""


def _killed_writer(
    folder: Path,
    written: int,
    fragmented: bool = True,
    live: bool = False,
    preset: str = "ultrafast",
) -> Path:
    """The file a writer killed with SIGKILL after `written` random frames at 25 fps left."""
    argv = [str(folder), str(int(fragmented)), str(written), str(int(live)), preset]
    proc = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITER, *argv],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    (path,) = folder.glob("cam1_*.mp4")
    return path


def _held_back(preset: str, frames: int) -> int:
    """How many of `frames` random frames libx264 at `preset` (one thread, as the killed
    writer's) holds back: not yet out as packets when the last one went in."""
    context = av.CodecContext.create("libx264", "w")
    assert isinstance(context, av.VideoCodecContext)
    context.width, context.height, context.pix_fmt = 160, 120, "yuv420p"
    context.time_base = Fraction(1, 25)
    context.options = Encoding(preset=preset).options()
    context.thread_count = 1
    context.open()
    out = 0
    for i in range(frames):
        yuv = np.random.default_rng(i).integers(0, 255, (180, 160), dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = i
        out += len(context.encode(frame))
    return frames - out


@pytest.mark.parametrize("fragmented", [True, False], ids=["fragmented", "classic"])
def test_hard_kill_leaves_a_playable_file_only_when_fragmented(
    tmp_path: Path, fragmented: bool
) -> None:
    written = 100  # 4 s at 25 fps
    path = _killed_writer(tmp_path, written, fragmented)
    if not fragmented:
        with pytest.raises(av.FFmpegError):
            decode(path)
        return
    images, rate = decode(path)
    # Lost: at most the fragment being filled (1 s) and the encoder's look-ahead.
    assert written - 25 - 20 <= len(images) < written
    assert rate == Fraction(25)


@pytest.mark.parametrize("preset", ["ultrafast", "veryfast"])  # veryfast: B-frames, look-ahead
def test_a_killed_live_camera_loses_only_the_frames_its_encoder_held_back(
    tmp_path: Path, preset: str
) -> None:
    written = 100  # 4 s at 25 fps: frames at the video's rate, the encoder's delay kept
    path = _killed_writer(tmp_path, written, live=True, preset=preset)
    # and the last frame out of the encoder: its fragment is written when the next one comes
    lost = _held_back(preset, written) + 1
    assert lost < 25  # a one-second fragment would lose more
    assert frames_in(path) == written - lost
    assert fragment_frames(path) == [1] * (written - lost)


def test_x264_settings_map_onto_nvenc_options() -> None:
    assert encoder_options("libx264", 23, "veryfast") == {"crf": "23", "preset": "veryfast"}
    assert encoder_options("h264_nvenc", 28, "veryfast") == {
        "rc": "vbr",
        "cq": "28",
        "preset": "p3",
    }
    assert encoder_options("h264_nvenc", 23, "slower")["preset"] == "p7"


def test_an_encoder_for_frames_that_come_seldom_holds_none_back() -> None:
    assert encoder_options("libx264", 23, "veryfast", no_delay=True)["tune"] == "zerolatency"
    nvenc = encoder_options("h264_nvenc", 23, "veryfast", no_delay=True)
    assert (nvenc["zerolatency"], nvenc["delay"]) == ("1", "0")


@pytest.mark.skipif(
    "h264_nvenc" not in av.codecs_available or shutil.which("nvidia-smi") is not None,
    reason="needs FFmpeg with NVENC on a machine without an NVIDIA GPU",
)
def test_an_encoder_that_cannot_run_here_fails_when_the_file_opens(tmp_path: Path) -> None:
    sink = VideoSink(tmp_path, LABELS, encoding=Encoding(codec="h264_nvenc"))
    sink.start(StreamInfo("cam", 160, 120, Fraction(25), "test"))
    with pytest.raises(SinkError, match=r"cannot open .*cam_.*\.mp4 for camera 'cam' with codec "
                       r"'h264_nvenc': .*\(NVENC needs an NVIDIA GPU with a video encoder, which the H100, "
                       r"H200 and A100 lack, and its driver; codec libx264 encodes on the CPU\)"):  # fmt: skip
        sink.write(frame_result("cam", 0, moving_square(0, 160, 120)))
    assert list(tmp_path.iterdir()) == []  # no empty file left behind


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 1), (8, 0)])
def test_x264_gets_one_thread_where_this_process_may_use_at_most_two_cores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cores: int, threads: int
) -> None:
    pin_cores(monkeypatch, cores)  # of a 64-core machine: taskset or a container's cpuset
    assert Encoding().encoder_threads == threads
    geometry = Geometry(64, 48, Fraction(25))
    file = SegmentFile(tmp_path / "a.mp4", geometry, Encoding())
    try:
        assert file.stream.codec_context.thread_count == threads  # 0: x264's own choice
    finally:
        file.abandon()
