"""Live sources against a real RTSP server on loopback: reconnects and bounded latency."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from pipeline.config import parse_config
from pipeline.detection_loop import FrameDetector
from pipeline.runner import Pipeline
from pipeline.summary import RunSummary
from pipeline.types import (
    CameraStatus,
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    StreamEnd,
    StreamInfo,
)
from sinks.base import Sink
from tests.conftest import VideoFactory, free_port

SERVER = Path(__file__).with_name("rtsp_server.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def _gst_rtsp_available() -> bool:
    if not Path(SYSTEM_PYTHON).exists():
        return False
    probe = subprocess.run(
        [
            SYSTEM_PYTHON,
            "-c",
            "import gi; gi.require_version('GstRtspServer', '1.0'); "
            "from gi.repository import GstRtspServer",
        ],
        capture_output=True,
    )
    return probe.returncode == 0 and shutil.which("gst-inspect-1.0") is not None


needs_rtsp = pytest.mark.skipif(
    not _gst_rtsp_available(),
    reason="needs Debian's python3-gi and gir1.2-gst-rtsp-server-1.0 (.ci/run installs them)",
)


class RtspServer:
    """gst-rtsp-server in a child process; can be killed and started again on the same port."""

    def __init__(self, fps: int = 30) -> None:
        self.port = free_port()
        self.fps = fps
        self.url = f"rtsp://127.0.0.1:{self.port}/test"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SERVER), str(self.port), "--fps", str(self.fps)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready", self.proc.stderr

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    server = RtspServer()
    server.start()
    try:
        yield server
    finally:
        server.kill()


class Recorder(Sink):
    """A sink that keeps what it is given, with the time it arrived."""

    name = "recorder"

    def __init__(self) -> None:
        self.results: list[tuple[float, FrameResult]] = []
        self.statuses: list[CameraStatus] = []
        self.infos: list[StreamInfo] = []
        self.ends: list[StreamEnd] = []

    def start(self, info: StreamInfo) -> None:
        self.infos.append(info)

    def write(self, result: FrameResult) -> None:
        self.results.append((time.time(), result))

    def status(self, status: CameraStatus) -> None:
        self.statuses.append(status)

    def end(self, stream_end: StreamEnd) -> None:
        self.ends.append(stream_end)

    def close(self) -> None:
        return None

    def states(self, camera: str) -> list[str]:
        return [s.state for s in self.statuses if s.camera_id == camera]

    def frames(self, camera: str) -> list[tuple[float, Frame]]:
        return [(t, r.frame) for t, r in self.results if r.frame.camera_id == camera]


class SlowDetector(FrameDetector):
    """Finds nothing, taking `seconds` per batch: a stand-in for a detector that cannot keep up."""

    labels = LabelMap(("background", "person"))

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        time.sleep(self.seconds)
        return [Detections.empty() for _ in frames]


def _run_in_thread(pipeline: Pipeline) -> tuple[threading.Thread, list[RunSummary]]:
    out: list[RunSummary] = []
    thread = threading.Thread(target=lambda: out.append(pipeline.run()), daemon=True)
    thread.start()
    return thread, out


def _wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@needs_rtsp
def test_camera_reconnects_after_the_server_restarts_and_others_keep_running(
    rtsp_server: RtspServer, synthetic_video: VideoFactory
) -> None:
    clip = synthetic_video(frames=20, fps=10)
    config = parse_config(
        "cameras:\n"
        f"  - id: live\n    source: {{type: stream, url: '{rtsp_server.url}', "
        "options: {rtsp_transport: tcp}, timeout_s: 2}\n"
        "    reconnect: {initial_delay_s: 0.2, max_delay_s: 0.5}\n"
        f"  - id: file\n    source: {{type: file, path: '{clip}', realtime: true, loop: true}}\n"
        "detector: {batch_size: 4, max_wait_ms: 10}\n"
    )
    recorder = Recorder()
    pipeline = Pipeline(config, detector=SlowDetector(0.005), extra_sinks=[recorder])
    thread, summary = _run_in_thread(pipeline)
    try:
        _wait_for(lambda: len(recorder.frames("live")) >= 20, 30, "live frames")
        rtsp_server.kill()
        outage_start = time.time()
        _wait_for(lambda: "reconnecting" in recorder.states("live"), 20, "reconnecting")
        time.sleep(1.0)  # an outage long enough to fail a few reconnection attempts
        rtsp_server.start()
        outage_end = time.time()
        _wait_for(lambda: recorder.states("live").count("streaming") >= 2, 30, "streaming again")
        restarted = time.time()
        _wait_for(
            lambda: any(t > restarted for t, _ in recorder.frames("live")[-5:]), 30, "new frames"
        )
    finally:
        pipeline.stop.set()
        thread.join(30)
    assert not thread.is_alive() and summary, "the pipeline ended"

    states = recorder.states("live")
    assert states[:2] == ["connecting", "streaming"]
    first_retry = states.index("reconnecting")
    assert "streaming" in states[first_retry:]
    assert states[-1] == "stopped"
    live = [f for _, f in recorder.frames("live")]
    assert [f.index for f in live] == sorted(f.index for f in live)  # in order across the outage
    file_times = [t for t, _ in recorder.frames("file")]
    assert any(outage_start < t < outage_end for t in file_times), "the file camera kept going"
    assert recorder.states("file") == ["connecting", "streaming", "stopped"]
    assert summary[0].cameras["live"].reconnects >= 1
    assert summary[0].cameras["live"].error is None and summary[0].cameras["file"].error is None
    assert len(recorder.infos) == 2  # each camera announced once, reconnection or not


def _ages(recorder: Recorder, camera: str) -> np.ndarray:
    return np.array([t - f.wall_time for t, f in recorder.frames(camera)])


@needs_rtsp
def test_live_source_latency_stays_bounded_when_the_detector_is_slower(
    rtsp_server: RtspServer, capsys: pytest.CaptureFixture[str]
) -> None:
    config = parse_config(
        "cameras:\n"
        f"  - id: live\n    source: {{type: stream, url: '{rtsp_server.url}', "
        "options: {rtsp_transport: tcp}}\n"
        "detector: {batch_size: 1, max_wait_ms: 0}\n"
    )
    recorder = Recorder()
    # 30 fps in, ~10 fps out
    pipeline = Pipeline(config, detector=SlowDetector(0.1), extra_sinks=[recorder])
    thread, summary = _run_in_thread(pipeline)
    try:
        _wait_for(lambda: len(recorder.frames("live")) >= 40, 60, "40 processed frames")
    finally:
        pipeline.stop.set()
        thread.join(30)
    ages = _ages(recorder, "live")[10:]  # after start-up
    p50, p99 = np.percentile(ages, [50, 99])
    stats = summary[0].cameras["live"]
    with capsys.disabled():
        print(
            f"\nlive 30 fps -> 10 fps detector: frame age p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, {stats.dropped} dropped of {stats.frames + stats.dropped}"
        )
    # queue of 4 frames at 10 frames/s: ~0.4 s at most, plus one detection
    assert p99 < 1.0
    assert stats.dropped > stats.frames  # two of every three frames are dropped


def test_file_source_loses_no_frame_when_the_detector_is_slower(
    synthetic_video: VideoFactory,
) -> None:
    clip = synthetic_video(frames=30, fps=30)
    config = parse_config(
        f"cameras:\n  - id: file\n    source: {clip}\n    queue_size: 4\n"
        "detector: {batch_size: 1, max_wait_ms: 0}\n"
    )
    recorder = Recorder()
    summary = Pipeline(config, detector=SlowDetector(0.02), extra_sinks=[recorder]).run()
    assert [f.index for _, f in recorder.frames("file")] == list(range(30))
    assert summary.cameras["file"].dropped == 0
    ages = _ages(recorder, "file")
    assert ages[-1] > ages[0]  # the file waited for the detector: its frames aged instead


class EveryFrameRecorder(Recorder):
    """Like the video sink: also given the frames skipped by detection."""

    wants_every_frame = True


def test_skipped_frames_reach_only_every_frame_sinks_with_the_last_tracks(
    synthetic_video: VideoFactory,
) -> None:
    clip = synthetic_video(frames=9)
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {clip}\n    detect_every: 3\n"
        "    full_rate_video: true\ndetector: {batch_size: 2}\n"
    )
    events, video = Recorder(), EveryFrameRecorder()
    summary = Pipeline(config, detector=MovingBoxDetector(), extra_sinks=[events, video]).run()
    assert [f.index for _, f in events.frames("cam")] == [0, 3, 6]
    assert [f.index for _, f in video.frames("cam")] == list(range(9))
    assert [r.detected for _, r in video.results] == [i % 3 == 0 for i in range(9)]
    for _, result in video.results:  # a skipped frame shows the boxes of the last detected one
        last_detected = result.frame.index - result.frame.index % 3
        np.testing.assert_array_equal(result.detections.xyxy[:, 0], [last_detected])
    assert summary.cameras["cam"].skipped == 6


class MovingBoxDetector(FrameDetector):
    """One box per frame whose x1 is the frame's index."""

    labels = LabelMap(("background", "person"))

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        return [
            Detections(
                xyxy=np.array([[f.index, 10, f.index + 20, 40]], np.float32),
                score=np.array([0.9], np.float32),
                label=np.array([1], np.int64),
            )
            for f in frames
        ]
