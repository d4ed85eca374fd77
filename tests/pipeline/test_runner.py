"""`Pipeline.run`: the process-wide settings it makes, and what a stop at any moment keeps."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipeline import runner, source_check
from pipeline.build import SceneConfigError, make_source
from pipeline.config import DetectorConfig, parse_config
from pipeline.readers import CameraReader
from pipeline.runner import Pipeline
from pipeline.sources import OpenedSource, RawFrame, Source
from pipeline.stops import StopEvent
from pipeline.types import (
    AnalyticsEvent,
    CameraStatus,
    Detections,
    Frame,
    FrameResult,
    LineCrossing,
    StreamEnd,
    StreamInfo,
    TrackEvent,
    ZoneEvent,
)
from pipeline.workers import QueueBound
from sinks.base import Sink
from tests.conftest import VideoFactory
from tests.cores import pin_cores
from tests.pipeline.test_pipelining import EagerDetector


@pytest.mark.parametrize(("cores", "expected"), [(1, 1), (2, 1), (8, 3)])
def test_opencv_keeps_to_the_calling_thread_on_machines_of_two_cores(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch, cores: int, expected: int
) -> None:
    # OpenCV's pool spins after every call; on 2 cores that takes the CPU detection needs.
    clip = synthetic_video("clip.mp4", frames=3, size=(64, 48))
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n")
    before = cv2.getNumThreads()
    pin_cores(monkeypatch, cores)
    cv2.setNumThreads(3)
    try:
        summary = Pipeline(config, detector=EagerDetector()).run()
        assert summary.ok and summary.frames == 3
        assert cv2.getNumThreads() == expected
    finally:
        cv2.setNumThreads(before)


def test_elapsed_time_starts_when_reading_does_and_setup_is_counted_apart(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first run exports and quantizes the network before reading: that is not frames/s.
    clip = synthetic_video("clip.mp4", frames=3, size=(64, 48))
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n")

    def slow_build(config: DetectorConfig, announce: Callable[[str], None]) -> EagerDetector:
        time.sleep(1.0)
        return EagerDetector()

    monkeypatch.setattr(runner, "build_run_detector", slow_build)
    started = time.monotonic()
    summary = Pipeline(config).run()
    wall = time.monotonic() - started
    assert summary.ok and summary.frames == 3
    assert summary.setup_s >= 1.0
    assert summary.elapsed_s <= wall - 1.0


class EndRecorder(Sink):
    """Keeps the track events and stream ends a run hands its sinks."""

    name = "ends"

    def __init__(self) -> None:
        self.frames: dict[str, int] = {}
        self.events: list[TrackEvent] = []
        self.ends: list[StreamEnd] = []

    def write(self, result: FrameResult) -> None:
        camera = result.frame.camera_id
        self.frames[camera] = self.frames.get(camera, 0) + 1
        self.events += result.track_events

    def end(self, stream_end: StreamEnd) -> None:
        self.ends.append(stream_end)
        self.events += stream_end.track_events

    def close(self) -> None:
        return None

    def tracks(self, camera: str, kind: str) -> list[int]:
        return sorted(
            e.track.track_id for e in self.events if e.kind == kind and e.track.camera_id == camera
        )


class FakeCamera(Source):
    """A live source delivering frames at `fps` for ever, deaf to the stop event (as FFmpeg
    waiting for the next packet is)."""

    live = True

    def __init__(self, fps: float = 25.0) -> None:
        super().__init__("rtsp://camera.test/stream")
        self.fps = fps

    def open(self, stop: threading.Event | None = None) -> OpenedSource:
        return OpenedSource(160, 120, Fraction(int(self.fps)))

    def frames(self) -> Iterator[RawFrame]:
        index = 0
        while True:
            time.sleep(1 / self.fps)
            yield RawFrame(np.zeros((120, 160, 3), np.uint8), index / self.fps)
            index += 1

    def close(self) -> None:
        return None


STOP_DELAYS_S = (0.0, 0.01, 0.04, 0.09, 0.15, 0.23, 0.37, 0.6)


@pytest.mark.parametrize("kind", ["file", "realtime", "loop", "images", "live"])
def test_a_stop_at_any_moment_ends_every_stream_and_every_open_track(
    kind: str, synthetic_video: VideoFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = synthetic_video("clip.mp4", frames=40, size=(160, 120), fps=25)
    (tmp_path / "images").mkdir()
    for i in range(5):
        cv2.imwrite(str(tmp_path / "images" / f"{i}.png"), np.zeros((120, 160, 3), np.uint8))
    source = {
        "file": f"{clip}",
        "realtime": f"{{type: file, path: '{clip}', realtime: true}}",
        "loop": f"{{type: file, path: '{clip}', realtime: true, loop: true}}",
        "images": f"{{type: images, path: '{tmp_path / 'images'}', loop: true}}",
        "live": "rtsp://camera.test/stream",
    }[kind]
    if kind == "live":
        monkeypatch.setattr(source_check, "make_source", lambda _config, *_: FakeCamera())
    cameras = "".join(f"  - id: {c}\n    source: {source}\n" for c in ("a", "b"))
    config = parse_config(f"cameras:\n{cameras}tracker:\n  t_min: 1\n")
    for delay in STOP_DELAYS_S:
        recorder = EndRecorder()
        pipeline = Pipeline(config, detector=EagerDetector(), extra_sinks=[recorder])
        timer = threading.Timer(delay, pipeline.stop.set)
        timer.start()
        summary = pipeline.run()
        timer.join()
        where = f"{kind}, stopped after {delay} s"
        assert sorted(e.camera_id for e in recorder.ends) == ["a", "b"], where
        for camera in ("a", "b"):
            started = recorder.tracks(camera, "started")
            assert recorder.tracks(camera, "ended") == started, where
            assert summary.cameras[camera].tracks == len(started), where
            assert summary.cameras[camera].frames == recorder.frames.get(camera, 0), where


class StuckCamera(FakeCamera):
    """A live source whose first read never returns (a stalled network read)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def frames(self) -> Iterator[RawFrame]:
        yield from itertools.islice(super().frames(), 5)
        self.release.wait()
        return


def test_a_camera_stuck_in_its_source_does_not_hold_up_the_stop_of_the_others(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = synthetic_video("clip.mp4", frames=400, size=(160, 120), fps=25)
    stuck = StuckCamera()
    monkeypatch.setattr(runner, "STOP_GRACE_S", 0.2)
    monkeypatch.setattr(
        source_check,
        "make_source",
        lambda c, t=0: stuck if c.type == "stream" else make_source(c, t),
    )
    config = parse_config(
        f"cameras:\n  - id: file\n    source: {{type: file, path: '{clip}', realtime: true}}\n"
        "  - id: stuck\n    source: rtsp://camera.test/stream\n"
        "tracker:\n  t_min: 1\n"
    )
    recorder = EndRecorder()
    pipeline = Pipeline(config, detector=EagerDetector(), extra_sinks=[recorder])
    threading.Timer(0.5, pipeline.stop.set).start()
    try:
        summary = pipeline.run()
    finally:
        stuck.release.set()
    assert summary.interrupted and summary.ok
    assert sorted(e.camera_id for e in recorder.ends) == ["file", "stuck"]
    for camera in ("file", "stuck"):
        assert recorder.frames[camera] > 0
        assert recorder.tracks(camera, "ended") == recorder.tracks(camera, "started") != []


class BlockedCamera(FakeCamera):
    """A live source that opens, then blocks in its first read until the test ends."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def frames(self) -> Iterator[RawFrame]:
        self.release.wait()
        yield from ()


def test_a_stop_waits_one_grace_in_all_for_a_camera_blocked_in_its_source(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The batcher cuts the blocked camera off after the grace; the stop must not then wait
    # for its reader a second time.
    grace = 1.0
    clip = synthetic_video("clip.mp4", frames=400, size=(160, 120), fps=25)
    blocked = BlockedCamera()
    monkeypatch.setattr(runner, "STOP_GRACE_S", grace)
    monkeypatch.setattr(
        source_check,
        "make_source",
        lambda c, t=0: blocked if c.type == "stream" else make_source(c, t),
    )
    config = parse_config(
        f"cameras:\n  - id: file\n    source: {{type: file, path: '{clip}', realtime: true}}\n"
        "  - id: blocked\n    source: rtsp://camera.test/stream\n"
        "tracker:\n  t_min: 1\n"
    )
    recorder = EndRecorder()
    pipeline = Pipeline(config, detector=EagerDetector(), extra_sinks=[recorder])
    stopped_at: list[float] = []

    def stop() -> None:
        stopped_at.append(time.monotonic())
        pipeline.stop.set()

    threading.Timer(0.5, stop).start()
    try:
        summary = pipeline.run()
        took = time.monotonic() - stopped_at[0]
    finally:
        blocked.release.set()
    assert took < grace + 0.75, f"the stop took {took:.2f} s with a grace of {grace} s"
    assert sorted(e.camera_id for e in recorder.ends) == ["blocked", "file"]
    assert recorder.frames["file"] > 0 and "blocked" not in recorder.frames
    assert recorder.tracks("file", "ended") == recorder.tracks("file", "started") != []
    assert summary.cameras["file"].ok and not summary.cameras["blocked"].ok


class OrderRecorder(Sink):
    """Every message a sink gets, in order, as (camera, kind); releases `wake` (a stuck
    camera) when that camera's stream ends, as a stalled read may return at any moment."""

    name = "order"

    def __init__(self, wake: Callable[[], None]) -> None:
        self.messages: list[tuple[str, str]] = []
        self.wake = wake

    def start(self, info: StreamInfo) -> None:
        self.messages.append((info.camera_id, "start"))

    def write(self, result: FrameResult) -> None:
        self.messages.append((result.frame.camera_id, "frame"))

    def status(self, status: CameraStatus) -> None:
        self.messages.append((status.camera_id, f"status {status.state}"))

    def end(self, stream_end: StreamEnd) -> None:
        self.messages.append((stream_end.camera_id, "end"))
        if stream_end.camera_id == "stuck":
            self.wake()

    def close(self) -> None:
        return None

    def of(self, camera: str) -> list[str]:
        return [kind for cam, kind in self.messages if cam == camera]


class StuckInOpen(FakeCamera):
    """A live source whose first open does not return until released (a stalled connect)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def open(self, stop: threading.Event | None = None) -> OpenedSource:
        self.release.wait()
        return super().open()


@pytest.mark.parametrize("stuck_in", ["read", "open"])
def test_nothing_of_a_camera_reaches_the_sinks_after_its_stream_ended(
    stuck_in: str, synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A camera cut off at a stop wakes up just after its stream.ended: its reader then
    # reports (opened, streaming, stopped), too late for the sinks.
    clip = synthetic_video("clip.mp4", frames=400, size=(160, 120), fps=25)
    stuck = StuckCamera() if stuck_in == "read" else StuckInOpen()
    monkeypatch.setattr(runner, "STOP_GRACE_S", 0.2)
    monkeypatch.setattr(
        source_check,
        "make_source",
        lambda c, t=0: stuck if c.type == "stream" else make_source(c, t),
    )
    woken: list[CameraReader] = []
    join = runner.join_readers

    def join_after_the_stuck_reader_reported(readers: list[CameraReader], timeout_s: float) -> None:
        # The run goes on only once the woken reader has said all it had to say.
        for reader in readers:
            if reader.camera_id == "stuck":
                reader.join(10)
                woken.append(reader)
        join(readers, timeout_s)

    monkeypatch.setattr(runner, "join_readers", join_after_the_stuck_reader_reported)
    config = parse_config(
        f"cameras:\n  - id: file\n    source: {{type: file, path: '{clip}', realtime: true}}\n"
        "  - id: stuck\n    source: rtsp://camera.test/stream\n"
    )
    recorder = OrderRecorder(stuck.release.set)
    pipeline = Pipeline(config, detector=EagerDetector(), extra_sinks=[recorder])
    threading.Timer(0.5, pipeline.stop.set).start()
    try:
        pipeline.run()
    finally:
        stuck.release.set()
    (reader,) = woken
    assert not reader.is_alive() and reader.state == "stopped"  # it did report, late
    for camera in ("file", "stuck"):
        said = recorder.of(camera)
        assert said.count("end") == 1 and said[-1] == "end", (camera, said)
    assert "status stopped" in recorder.of("file")  # a reader that let go says so in time


def test_run_says_what_runs_the_detector_at_start_and_in_the_summary(
    synthetic_video: VideoFactory,
) -> None:
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {clip}\n"
        "detector:\n  model: person_ssdlite\n  weights: none\n  device: cpu\n  runtime: torch\n"
    )
    started: list[str] = []
    summary = Pipeline(config).run(on_start=started.append)
    assert summary.ok and summary.frames == 2
    assert started == [summary.detector]
    assert summary.detector.startswith("detector: person_ssdlite on cpu, torch, fp32, 1 worker(s)")
    assert "; precision: fp32: " in summary.detector  # an auto choice comes with its reason


class DescribedDetector(EagerDetector):
    def describe(self) -> str:
        return "detector: eager, for tests"


def test_each_start_line_is_said_once_the_detector_s_preparation_first(
    synthetic_video: VideoFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {clip}\nsinks:\n  - type: live\n    port: 0\n"
    )
    preparing = "preparing the detector: exporting to ONNX (first run)…"

    def build(config: DetectorConfig, announce: Callable[[str], None]) -> EagerDetector:
        announce(preparing)  # a first run says so before the pause it causes
        return DescribedDetector()

    monkeypatch.setattr(runner, "build_run_detector", build)
    started: list[str] = []
    with caplog.at_level(logging.INFO):
        assert Pipeline(config).run(on_start=started.append).ok
    assert started[:2] == [preparing, "detector: eager, for tests"]
    assert len(started) == 3 and started[2].startswith("live view: http://127.0.0.1:")
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert [line for line in started if any(line in m for m in logged)] == []  # not twice

    caplog.clear()
    with caplog.at_level(logging.INFO):  # nobody to say them to: the log says them, at INFO
        assert Pipeline(config).run().ok
    for line in (preparing, "detector: eager, for tests", "live view: http://127.0.0.1:"):
        (record,) = [r for r in caplog.records if line in r.getMessage()]
        assert record.levelno == logging.INFO


class ClosingDetector(EagerDetector):
    """Counts its `close` calls, and whether frames came after one."""

    def __init__(self, fail_at: int | None = None) -> None:
        super().__init__(fail_at)
        self.closed = 0
        self.detected_after_close = False

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        self.detected_after_close = self.detected_after_close or self.closed > 0
        return super().detect(frames)

    def close(self) -> None:
        self.closed += 1


@pytest.mark.parametrize("fail_at", [None, 1])
def test_a_run_closes_the_detector_it_built_once_done_and_never_one_it_was_given(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch, fail_at: int | None
) -> None:
    clip = synthetic_video("clip.mp4", frames=4, size=(64, 48))
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n")
    built = ClosingDetector(fail_at)
    monkeypatch.setattr(runner, "build_run_detector", lambda config, announce: built)
    summary = Pipeline(config).run()
    assert summary.ok == (fail_at is None)  # a detector that failed is closed all the same
    assert built.closed == 1 and not built.detected_after_close
    given = ClosingDetector()
    assert Pipeline(config, detector=given).run().ok
    assert given.closed == 0  # whoever made it may use it again


def test_a_run_whose_set_up_fails_closes_the_detector_it_built_and_never_one_it_was_given(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    zone = "    zones:\n      - {id: z, polygon: [[0, 0], [1, 0], [1, 1]], labels: [truck]}\n"
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n{zone}")
    built = ClosingDetector()
    monkeypatch.setattr(runner, "build_run_detector", lambda config, announce: built)
    with pytest.raises(SceneConfigError, match="'truck' is not a class the detector reports"):
        Pipeline(config).run()
    assert built.closed == 1  # its threads do not outlive the refused run
    given = ClosingDetector()
    with pytest.raises(SceneConfigError):
        Pipeline(config, detector=given).run()
    assert given.closed == 0


def test_a_camera_whose_source_opened_is_marked_opened(synthetic_video: VideoFactory) -> None:
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n")
    summary = Pipeline(config, detector=EagerDetector()).run()
    assert summary.cameras["cam"].opened


class AnalyticsRecorder(Sink):
    """Keeps what zones and lines saw, per camera: on frames, and at the stream's end."""

    name = "analytics"

    def __init__(self) -> None:
        self.on_frames: dict[str, list[AnalyticsEvent]] = {}
        self.at_end: dict[str, tuple[AnalyticsEvent, ...]] = {}

    def write(self, result: FrameResult) -> None:
        self.on_frames.setdefault(result.frame.camera_id, []).extend(result.analytics)

    def end(self, stream_end: StreamEnd) -> None:
        self.at_end[stream_end.camera_id] = stream_end.analytics

    def close(self) -> None:
        return None


def test_cameras_with_zones_or_lines_get_their_events_and_the_others_none(
    synthetic_video: VideoFactory,
) -> None:
    # EagerDetector's box moves right a pixel a frame: its bottom centre goes from x 30 to 69
    clip = synthetic_video("clip.mp4", frames=40, size=(160, 120), fps=25)
    scene = (
        "    zones:\n"
        "      - {id: start, units: pixel, polygon: [[0, 0], [45, 0], [45, 120], [0, 120]]}\n"
        "      - {id: end, units: pixel, polygon: [[60, 0], [160, 0], [160, 120], [60, 120]]}\n"
        "    lines:\n"
        "      - {id: gate, units: pixel, points: [[50, 0], [50, 120]]}\n"
    )
    config = parse_config(
        f"cameras:\n  - id: zoned\n    source: {clip}\n{scene}"
        f"  - id: plain\n    source: {clip}\ntracker:\n  t_min: 1\n"
    )
    recorder = AnalyticsRecorder()
    summary = Pipeline(config, detector=EagerDetector(), extra_sinks=[recorder]).run()
    assert summary.ok
    assert recorder.on_frames["plain"] == [] and recorder.at_end["plain"] == ()
    seen = [
        (e.kind, e.zone_id) if isinstance(e, ZoneEvent) else ("crossed", e.line_id)
        for e in recorder.on_frames["zoned"]
        if isinstance(e, (ZoneEvent, LineCrossing))
    ]
    assert seen == [
        ("entered", "start"),
        ("left", "start"),
        ("crossed", "gate"),
        ("entered", "end"),
    ]
    closed = [e for e in recorder.at_end["zoned"] if isinstance(e, ZoneEvent)]
    assert [(e.kind, e.zone_id, e.at_stream_end) for e in closed] == [("left", "end", True)]


def test_a_stop_closes_the_visits_of_tracks_still_inside_a_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(source_check, "make_source", lambda _config, *_: FakeCamera())
    config = parse_config(
        "cameras:\n  - id: live\n    source: rtsp://camera.test/stream\n"
        "    zones:\n      - {id: all, polygon: [[0, 0], [1, 0], [1, 1], [0, 1]]}\n"
        "tracker:\n  t_min: 1\n"
    )
    stop = StopEvent()

    class StopAfterFiveFrames(AnalyticsRecorder):
        def write(self, result: FrameResult) -> None:
            super().write(result)
            if result.frame.index == 4:
                stop.set()

    recorder = StopAfterFiveFrames()
    pipeline = Pipeline(config, detector=EagerDetector(), extra_sinks=[recorder])
    pipeline.stop = stop
    summary = pipeline.run()
    assert summary.interrupted
    entered = [e for e in recorder.on_frames["live"] if isinstance(e, ZoneEvent)]
    assert [e.kind for e in entered] == ["entered"]  # the one box never leaves the frame
    closed = [e for e in recorder.at_end["live"] if isinstance(e, ZoneEvent)]
    assert [(e.kind, e.track_id, e.at_stream_end) for e in closed] == [
        ("left", entered[0].track_id, True)
    ]


def test_sinks_handed_with_a_queue_bound_are_buffered_by_it_the_others_by_the_default(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n")
    sized, plain = AnalyticsRecorder(), AnalyticsRecorder()
    queues: dict[int, QueueBound] = {}
    real_worker = runner.SinkWorker

    def recording_worker(sink: Sink, maxsize: int, on_written: Any, max_bytes: int) -> Any:
        queues[id(sink)] = QueueBound(maxsize, max_bytes)
        return real_worker(sink, maxsize, on_written, max_bytes=max_bytes)

    monkeypatch.setattr(runner, "SinkWorker", recording_worker)
    summary = Pipeline(
        config,
        detector=EagerDetector(),
        extra_sinks=[plain],
        sized_sinks=[(sized, QueueBound(7, 5_000_000))],
    ).run()
    assert summary.ok
    assert queues == {id(plain): runner.EXTRA_SINK_QUEUE, id(sized): QueueBound(7, 5_000_000)}
    assert list(sized.on_frames) == ["cam"]  # it was fed, as the others


def test_a_camera_stopped_alone_ends_as_at_the_end_of_its_file_and_the_others_go_on(
    synthetic_video: VideoFactory,
) -> None:
    clip = synthetic_video("clip.mp4", frames=50, size=(160, 120), fps=25)
    source = f"{{type: file, path: '{clip}', realtime: true}}"
    config = parse_config(
        f"cameras:\n  - id: a\n    source: {source}\n  - id: b\n    source: {source}\n"
        "tracker:\n  t_min: 1\n"
    )
    stop_a: list[Callable[[], None]] = []

    class StopAAtItsSixthFrame(EndRecorder):
        def write(self, result: FrameResult) -> None:
            super().write(result)
            if result.frame.camera_id == "a" and result.frame.index == 5:
                stop_a[0]()

    recorder = StopAAtItsSixthFrame()
    pipeline = Pipeline(config, detector=EagerDetector(), extra_sinks=[recorder])
    stop_a.append(lambda: pipeline.stop_camera("a"))
    summary = pipeline.run()

    assert summary.ok and not summary.interrupted, summary
    assert {e.camera_id: e.error for e in recorder.ends} == {"a": None, "b": None}
    assert 6 <= recorder.frames["a"] < 50  # it stopped where it was, not at its end
    assert recorder.frames["b"] == 50
    assert recorder.tracks("a", "ended") == recorder.tracks("a", "started") != []
    assert summary.cameras["a"].frames == recorder.frames["a"]


def test_a_camera_stopped_before_the_run_reads_nothing_and_the_others_everything(
    synthetic_video: VideoFactory,
) -> None:
    clip = synthetic_video("clip.mp4", frames=5, size=(64, 48))
    config = parse_config(
        f"cameras:\n  - id: a\n    source: {clip}\n  - id: b\n    source: {clip}\n"
    )
    recorder = EndRecorder()
    pipeline = Pipeline(config, detector=EagerDetector(), extra_sinks=[recorder])
    pipeline.stop_camera("a")
    summary = pipeline.run()

    assert sorted(e.camera_id for e in recorder.ends) == ["a", "b"]
    assert "a" not in recorder.frames and recorder.frames["b"] == 5
    assert summary.cameras["a"].frames == 0 and not summary.interrupted
    assert summary.ok and summary.cameras["a"].status == "not started: stopped before it opened"


def test_a_stop_while_the_run_is_set_up_fails_no_camera(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ctrl-C while the detector is built: the files were never asked to open, so the
    # summary must not say they never opened (FAILED, exit 1) but that the stop came first.
    clip = synthetic_video("clip.mp4", frames=3, size=(64, 48))
    config = parse_config(
        f"cameras:\n  - id: a\n    source: {clip}\n  - id: b\n    source: {clip}\n"
    )
    pipeline = Pipeline(config)

    def build_while_stopped(
        config: DetectorConfig, announce: Callable[[str], None]
    ) -> EagerDetector:
        pipeline.stop.set()
        return EagerDetector()

    monkeypatch.setattr(runner, "build_run_detector", build_while_stopped)
    summary = pipeline.run()
    assert summary.interrupted and summary.ok
    assert [c.status for c in summary.cameras.values()] == [
        "not started: stopped before it opened"
    ] * 2


def test_a_file_camera_that_cannot_open_still_fails_after_a_stop(tmp_path: Path) -> None:
    # Asked to open and failing is a failure whatever stops the run afterwards.
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    config = parse_config(f"cameras:\n  - id: a\n    source: {broken}\n")
    summary = Pipeline(config, detector=EagerDetector()).run()
    assert not summary.ok
    assert summary.cameras["a"].status.startswith("FAILED: camera a:")


@pytest.mark.parametrize(("cores", "threads"), [(2, 1), (3, 0)])
def test_each_camera_decodes_with_the_threads_the_rule_gives_for_the_run_s_cameras(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch, cores: int, threads: int
) -> None:
    clip = synthetic_video("clip.mp4", frames=3, size=(64, 48))
    config = parse_config(
        f"cameras:\n  - id: a\n    source: {clip}\n  - id: b\n    source: {clip}\n"
    )
    given: list[int] = []

    def recording_make_source(source: Any, decoder_threads: int = 0) -> Source:
        given.append(decoder_threads)
        return make_source(source, decoder_threads)

    pin_cores(monkeypatch, cores)
    monkeypatch.setattr(source_check, "make_source", recording_make_source)
    summary = Pipeline(config, detector=EagerDetector()).run()
    assert summary.ok and summary.frames == 6
    assert given == [threads, threads]
