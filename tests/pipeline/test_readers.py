from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.batching import Batcher
from pipeline.frame_queue import FrameQueue, QueuedFrame, QueuePolicy
from pipeline.motion import MotionGate
from pipeline.readers import Backoff, CameraReader, FrameSampler
from pipeline.sources import AVSource, OpenedSource, RawFrame, Source, SourceError
from pipeline.types import CameraStatus, Frame, Region, StreamInfo
from tests.conftest import SHARED_DATA, VideoFactory


def _item(camera: str, index: int, detect: bool = True) -> QueuedFrame:
    frame = Frame(camera, index, index / 10, time.time(), np.zeros((2, 2, 3), np.uint8))
    return QueuedFrame(frame, detect)


class Recorder:
    """Collects what a reader reports."""

    def __init__(self) -> None:
        self.infos: list[StreamInfo] = []
        self.statuses: list[CameraStatus] = []

    @property
    def states(self) -> list[str]:
        return [s.state for s in self.statuses]


def _reader(
    source: Source, queue_size: int = 8, policy: QueuePolicy = QueuePolicy.BLOCK, **kwargs: object
) -> tuple[CameraReader, Recorder, threading.Event, threading.Condition]:
    cond, stop, rec = threading.Condition(), threading.Event(), Recorder()
    queue = FrameQueue("cam", queue_size, policy, cond)
    reader = CameraReader(
        "cam",
        source,
        queue,
        stop,
        on_open=rec.infos.append,
        on_status=rec.statuses.append,
        **kwargs,  # type: ignore[arg-type]
    )
    return reader, rec, stop, cond


def _drain(reader: CameraReader, cond: threading.Condition) -> list[QueuedFrame]:
    batcher = Batcher([reader.queue], cond, batch_size=4, max_wait=0.01)
    items: list[QueuedFrame] = []
    while (batch := batcher.next_batch()) is not None:
        items += batch.items
    return items


def test_file_reader_decodes_every_frame_in_order(synthetic_video: VideoFactory) -> None:
    reader, rec, _, cond = _reader(
        AVSource(str(synthetic_video(frames=17, size=(96, 64))), live=False)
    )
    reader.start()
    frames = [i.frame for i in _drain(reader, cond)]
    reader.join(5)
    assert [f.index for f in frames] == list(range(17))
    assert frames[0].image.shape == (64, 96, 3)
    np.testing.assert_allclose([f.pts for f in frames], np.arange(17) / 10, atol=1e-6)
    assert [(i.width, i.height, i.frame_rate) for i in rec.infos] == [(96, 64, 10)]
    assert rec.states == ["connecting", "streaming", "stopped"]
    assert reader.queue.error is None


def test_full_queue_blocks_a_file_reader_and_loses_nothing(synthetic_video: VideoFactory) -> None:
    reader, _, _, cond = _reader(
        AVSource(str(synthetic_video(frames=12)), live=False), queue_size=2
    )
    reader.start()
    time.sleep(0.5)  # the reader had time to decode everything if it did not block
    assert reader.queue.frames_in == 2
    assert reader.is_alive()
    assert len(_drain(reader, cond)) == 12
    assert reader.queue.dropped == 0


def test_stop_ends_a_blocked_reader_and_closes_its_queue(synthetic_video: VideoFactory) -> None:
    reader, rec, stop, _ = _reader(
        AVSource(str(synthetic_video(frames=12)), live=False), queue_size=1
    )
    reader.start()
    time.sleep(0.2)
    stop.set()
    reader.join(2)
    assert not reader.is_alive()
    assert len(reader.queue) == 1 and reader.queue.error is None
    assert rec.states[-1] == "stopped"


def test_batcher_fills_batches_round_robin_across_cameras() -> None:
    cond, stop = threading.Condition(), threading.Event()
    a = FrameQueue("a", 10, QueuePolicy.BLOCK, cond)
    b = FrameQueue("b", 10, QueuePolicy.BLOCK, cond)
    for i in range(5):
        a.put(_item("a", i), stop)
    for i in range(2):
        b.put(_item("b", i), stop)
    batch = Batcher([a, b], cond, batch_size=4, max_wait=0.01).next_batch()
    assert batch is not None
    assert [(f.camera_id, f.index) for f in batch.to_detect] == [
        ("a", 0),
        ("b", 0),
        ("a", 1),
        ("b", 1),
    ]


def test_skipped_frames_ride_along_without_counting_towards_the_batch() -> None:
    cond, stop = threading.Condition(), threading.Event()
    q = FrameQueue("a", 10, QueuePolicy.BLOCK, cond)
    for i in range(6):
        q.put(_item("a", i, detect=i % 3 == 0), stop)
    batch = Batcher([q], cond, batch_size=2, max_wait=0.01).next_batch()
    assert batch is not None
    assert [i.frame.index for i in batch.items] == [0, 1, 2, 3]
    assert [f.index for f in batch.to_detect] == [0, 3]


def test_a_frames_motion_regions_are_detected_as_images_counting_towards_the_batch() -> None:
    cond, stop = threading.Condition(), threading.Event()
    q = FrameQueue("a", 10, QueuePolicy.BLOCK, cond)
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    regions = (Region(0, 0, 4, 4), Region(4, 2, 4, 6))
    for i in range(3):
        q.put(QueuedFrame(Frame("a", i, i / 10, 0.0, image), True, regions if i else ()), stop)
    batch = Batcher([q], cond, batch_size=3, max_wait=0.01).next_batch()
    assert batch is not None
    assert [i.frame.index for i in batch.items] == [0, 1]  # 1 image, then 2
    assert [f.image.shape[:2] for f in batch.to_detect] == [(8, 8), (4, 4), (6, 4)]
    np.testing.assert_array_equal(batch.to_detect[2].image, image[2:8, 4:8])


def test_batcher_returns_a_partial_batch_after_max_wait() -> None:
    cond = threading.Condition()
    q = FrameQueue("a", 10, QueuePolicy.BLOCK, cond)
    q.put(_item("a", 0), threading.Event())
    started = time.monotonic()
    batch = Batcher([q], cond, batch_size=8, max_wait=0.05).next_batch()
    assert batch is not None and len(batch.to_detect) == 1
    assert time.monotonic() - started < 1.0


def test_batcher_reports_a_camera_finished_only_after_its_last_frame() -> None:
    cond, stop = threading.Condition(), threading.Event()
    a = FrameQueue("a", 10, QueuePolicy.BLOCK, cond)
    for i in range(3):
        a.put(_item("a", i), stop)
    a.close(error="boom")
    batcher = Batcher([a], cond, batch_size=2, max_wait=0.01)
    first = batcher.next_batch()
    assert first is not None and len(first.items) == 2 and first.finished == []
    last = batcher.next_batch()
    assert last is not None and [i.frame.index for i in last.items] == [2]
    assert [q.camera_id for q in last.finished] == ["a"] and last.finished[0].error == "boom"
    assert batcher.next_batch() is None


def test_ready_batch_hands_out_a_complete_batch_without_waiting() -> None:
    cond, stop = threading.Condition(), threading.Event()
    q = FrameQueue("a", 10, QueuePolicy.BLOCK, cond)
    for i in range(5):
        q.put(_item("a", i), stop)
    batcher = Batcher([q], cond, batch_size=4, max_wait=60)
    started = time.monotonic()
    batch = batcher.ready_batch()
    assert batch is not None and [f.index for f in batch.to_detect] == [0, 1, 2, 3]
    assert time.monotonic() - started < 1.0


def test_ready_batch_keeps_an_incomplete_batch_and_its_deadline_for_the_next_call() -> None:
    cond, stop = threading.Condition(), threading.Event()
    q = FrameQueue("a", 10, QueuePolicy.BLOCK, cond)
    q.put(_item("a", 0), stop)
    batcher = Batcher([q], cond, batch_size=4, max_wait=0.2)
    started = time.monotonic()
    assert batcher.ready_batch() is None  # frame 0 is taken, its batch is not due yet
    q.put(_item("a", 1), stop)
    assert batcher.ready_batch() is None
    batch = batcher.next_batch()  # waits out the deadline set when frame 0 was taken
    assert batch is not None and [f.index for f in batch.to_detect] == [0, 1]
    assert 0.2 <= time.monotonic() - started < 1.0
    q.put(_item("a", 2), stop)
    assert batcher.ready_batch() is None  # a new batch, a new deadline
    time.sleep(0.25)
    late = batcher.ready_batch()
    assert late is not None and [f.index for f in late.to_detect] == [2]
    q.close()
    end = batcher.ready_batch()
    assert end is not None and end.items == [] and [e.camera_id for e in end.finished] == ["a"]
    assert batcher.ready_batch() is None and batcher.next_batch() is None


@pytest.mark.parametrize(
    "content", [b"", b"this is not a video\n" * 50], ids=["zero-byte", "text-renamed-mp4"]
)
def test_unreadable_file_fails_the_camera_with_a_clear_message(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    reader, rec, _, cond = _reader(AVSource(str(path), live=False))
    reader.start()
    assert _drain(reader, cond) == []
    reader.join(5)
    assert rec.states == ["connecting", "failed"]
    assert reader.queue.error is not None
    assert reader.queue.error.startswith(f"camera cam: cannot open {path}:")


def test_truncated_file_ends_cleanly_with_the_frames_before_the_cut(
    synthetic_video: VideoFactory, tmp_path: Path
) -> None:
    data = synthetic_video("full.mkv", frames=40).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    reader, _, _, cond = _reader(AVSource(str(cut), live=False))
    reader.start()
    frames = [i.frame for i in _drain(reader, cond)]
    reader.join(5)
    assert 0 < len(frames) < 40
    assert [f.index for f in frames] == list(range(len(frames)))


@pytest.mark.parametrize("kept", [1.0, 0.8], ids=["whole", "cut-short"])
def test_a_file_that_ends_before_the_frames_it_declares_says_how_many_never_came(
    synthetic_video: VideoFactory, tmp_path: Path, kept: float
) -> None:
    # A recording cut short (a copy that did not finish) used to end as "ok", silently.
    data = synthetic_video("full.avi", frames=40).read_bytes()  # AVI declares its frames
    cut = tmp_path / "cut.avi"
    cut.write_bytes(data[: int(len(data) * kept)])
    reader, rec, _, cond = _reader(AVSource(str(cut), live=False))
    reader.start()
    frames = len(_drain(reader, cond))
    reader.join(5)
    assert rec.states[-1] == "stopped" and reader.queue.error is None
    if kept == 1.0:
        assert frames == 40 and reader.short is None
    else:
        assert 0 < frames < 40
        assert reader.short == f"{40 - frames} of the 40 frames {cut} declares never came"


@pytest.mark.skipif(not (SHARED_DATA / "Megamind_bugy.avi").exists(), reason="needs ../shared/data")
def test_corrupted_file_is_decoded_to_the_end() -> None:
    reader, rec, _, cond = _reader(AVSource(str(SHARED_DATA / "Megamind_bugy.avi"), live=False), 16)
    reader.start()
    frames = [i.frame for i in _drain(reader, cond)]
    reader.join(10)
    assert rec.states[-1] == "stopped" and reader.queue.error is None
    assert [f.index for f in frames] == list(range(270))  # FFmpeg conceals the damage
    # AVI with packed B-frames stamps frames out of order: pts are made increasing
    assert np.all(np.diff([f.pts for f in frames]) > 0)


def test_looping_file_keeps_index_and_pts_increasing(synthetic_video: VideoFactory) -> None:
    reader, rec, stop, cond = _reader(
        AVSource(str(synthetic_video(frames=5)), live=False), queue_size=64, loop=True
    )
    reader.start()
    batcher = Batcher([reader.queue], cond, batch_size=4, max_wait=0.01)
    frames: list[Frame] = []
    while len(frames) < 12 and (batch := batcher.next_batch()) is not None:
        frames += batch.to_detect
    stop.set()
    _drain(reader, cond)
    reader.join(5)
    assert [f.index for f in frames[:12]] == list(range(12))
    assert np.all(np.diff([f.pts for f in frames]) > 0)
    assert rec.states.count("streaming") == 1  # a loop is not a reconnection


def test_realtime_file_is_paced_at_its_frame_rate(synthetic_video: VideoFactory) -> None:
    reader, _, _, cond = _reader(
        AVSource(str(synthetic_video(frames=6, fps=20)), live=False), realtime=True
    )
    started = time.monotonic()
    reader.start()
    assert len(_drain(reader, cond)) == 6
    assert (
        time.monotonic() - started >= 5 / 20 * 0.9
    )  # the last frame is due 0.25 s after the first


def test_detect_every_n_skips_frames_or_passes_them_flagged(synthetic_video: VideoFactory) -> None:
    path = str(synthetic_video(frames=10))
    reader, _, _, cond = _reader(AVSource(path, live=False), sampler=FrameSampler(every=3))
    reader.start()
    assert [i.frame.index for i in _drain(reader, cond)] == [0, 3, 6, 9]
    assert reader.skipped == 6
    reader, _, _, cond = _reader(
        AVSource(path, live=False), sampler=FrameSampler(every=3), pass_skipped=True
    )
    reader.start()
    items = _drain(reader, cond)
    assert [i.frame.index for i in items] == list(range(10))
    assert [i.frame.index for i in items if i.detect] == [0, 3, 6, 9]


def test_a_stream_tells_how_far_apart_the_frames_its_sinks_get_come(
    synthetic_video: VideoFactory,
) -> None:
    path = str(synthetic_video(frames=4))
    gaps = []
    settings: list[dict[str, Any]] = [
        {},
        {"sampler": FrameSampler(every=3)},
        {"sampler": FrameSampler(every=3), "pass_skipped": True},
        {"sampler": FrameSampler(max_fps=0.5)},
        {"motion": MotionGate(25, 0.001, max_skip_s=4.0)},
        {"sampler": FrameSampler(every=3), "motion": MotionGate(25, 0.001, max_skip_s=4.0)},
    ]
    for kwargs in settings:
        reader, rec, _, cond = _reader(AVSource(path, live=False), **kwargs)
        reader.start()
        _drain(reader, cond)
        [info] = rec.infos
        gaps.append((info.frame_gap_s, info.still_gap_s))
    # every frame; every 3rd of 10 fps; skipped ones passed; max_fps; every frame while
    # things move and a still scene's one every 4 s; every 3rd, and a still scene's every 4 s
    assert gaps == [
        (None, None),
        (pytest.approx(0.3), None),
        (None, None),
        (2.0, None),
        (None, 4.0),
        (pytest.approx(0.3), 4.0),
    ]


def test_max_fps_keeps_frames_at_most_that_often() -> None:
    sampler = FrameSampler(max_fps=10)
    taken = [pts for pts in np.arange(60) / 30 if sampler.take(float(pts))]
    assert len(taken) == 20  # 2 s of 30 fps at 10 fps
    assert np.all(np.diff(taken) >= 0.09)


def test_backoff_doubles_up_to_its_cap_with_bounded_jitter() -> None:
    backoff = Backoff(initial_s=0.5, max_s=4.0, jitter=0.2)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (9, 4.0)]:
        delays = [backoff.delay(attempt) for _ in range(50)]
        assert all(base * 0.8 <= d <= base * 1.2 for d in delays)
        assert len(set(delays)) > 1  # jittered, so cameras do not retry in lockstep


class FlakyLive(Source):
    """A live source whose opens fail `failures` times, then streams `frames` frames, then ends."""

    live = True

    def __init__(self, failures: int, frames: int, sessions: int = 2) -> None:
        super().__init__("rtsp://user:***@cam/1")
        self.plan = ["fail"] * failures + ["ok"] * sessions
        self.frames_per_session = frames
        self.opens = 0

    def open(self, stop: threading.Event | None = None) -> OpenedSource:
        step = (
            self.plan[min(self.opens, len(self.plan) - 1)]
            if self.opens < len(self.plan)
            else "fail"
        )
        self.opens += 1
        if step == "fail":
            raise SourceError("cannot open rtsp://user:***@cam/1: Connection refused")
        return OpenedSource(8, 8, Fraction(10))

    def frames(self) -> Iterator[RawFrame]:
        for i in range(self.frames_per_session):
            yield RawFrame(np.zeros((8, 8, 3), np.uint8), i / 10)  # pts restart at 0 each time

    def close(self) -> None:
        return None


def test_live_source_reconnects_with_states_and_continuous_frames() -> None:
    source = FlakyLive(failures=2, frames=3, sessions=2)
    backoff = Backoff(initial_s=0.01, max_s=0.05, jitter=0.0)
    reader, rec, stop, cond = _reader(source, queue_size=64, backoff=backoff)
    reader.start()
    batcher = Batcher([reader.queue], cond, batch_size=4, max_wait=0.01)
    frames: list[Frame] = []
    while len(frames) < 6 and (batch := batcher.next_batch()) is not None:
        frames += batch.to_detect
    stop.set()
    _drain(reader, cond)
    reader.join(5)
    assert rec.states[:5] == [
        "connecting",
        "reconnecting",
        "reconnecting",
        "streaming",
        "reconnecting",
    ]
    assert rec.states[5] == "streaming" and rec.states[-1] == "stopped"
    assert [f.index for f in frames] == list(range(6))
    assert np.all(np.diff([f.pts for f in frames]) > 0)  # pts keep increasing across sessions
    retry = rec.statuses[1]
    assert retry.message is not None and "Connection refused" in retry.message
    assert retry.retry_in_s == pytest.approx(0.01)
    assert len(rec.infos) == 1  # sinks hear of the stream once


def test_live_source_fails_after_max_attempts() -> None:
    source = FlakyLive(failures=100, frames=0)
    backoff = Backoff(initial_s=0.01, max_s=0.01, jitter=0.0, max_attempts=3)
    reader, rec, _, cond = _reader(source, backoff=backoff)
    reader.start()
    assert _drain(reader, cond) == []
    reader.join(5)
    assert rec.states == ["connecting", "reconnecting", "reconnecting", "failed"]
    assert reader.queue.error is not None and "gave up after 3 attempts" in reader.queue.error


def test_a_live_reader_knows_why_its_source_is_down_until_frames_flow_again() -> None:
    # refused, then 3 frames and the end of the stream, then refused for ever
    source = FlakyLive(failures=1, frames=3, sessions=1)
    cond, stop = threading.Condition(), threading.Event()
    lost: list[tuple[str, str | None]] = []  # (state, reader.lost) as each state is reported
    reader = CameraReader(
        "cam", source, FrameQueue("cam", 64, QueuePolicy.BLOCK, cond), stop,
        on_open=lambda _info: None,
        on_status=lambda status: lost.append((status.state, reader.lost)),
        backoff=Backoff(initial_s=0.01, max_s=0.01, jitter=0.0),
    )  # fmt: skip
    reader.start()
    deadline = time.monotonic() + 10
    while [state for state, _ in lost].count("reconnecting") < 3:
        assert time.monotonic() < deadline, lost
        time.sleep(0.01)
    stop.set()
    _drain(reader, cond)
    reader.join(5)
    refused = "cannot open rtsp://user:***@cam/1: Connection refused"
    assert lost[:4] == [
        ("connecting", None),
        ("reconnecting", refused),
        ("streaming", None),
        ("reconnecting", "rtsp://user:***@cam/1: end of stream"),
    ]
    assert lost[-1] == ("stopped", refused) and reader.lost == refused


class GapSource(Source):
    """A file whose second frame comes an hour after its first (a pacer would sleep)."""

    def __init__(self) -> None:
        super().__init__("gap.mp4")

    def open(self, stop: threading.Event | None = None) -> OpenedSource:
        return OpenedSource(8, 8, Fraction(10))

    def frames(self) -> Iterator[RawFrame]:
        for pts in (0.0, 3600.0):
            yield RawFrame(np.zeros((8, 8, 3), np.uint8), pts)

    def close(self) -> None:
        return None


@pytest.mark.parametrize("asleep_in", ["pacing", "backoff"])
def test_a_reader_asleep_in_pacing_or_backoff_ends_its_stream_at_once_at_a_stop(
    asleep_in: str,
) -> None:
    if asleep_in == "pacing":
        reader, rec, stop, _ = _reader(GapSource(), realtime=True)
    else:
        backoff = Backoff(initial_s=3600, max_s=3600, jitter=0.0)
        reader, rec, stop, _ = _reader(FlakyLive(failures=1, frames=0), backoff=backoff)
    reader.start()
    deadline = time.monotonic() + 10
    while reader.queue.frames_in == 0 and "reconnecting" not in rec.states:
        assert time.monotonic() < deadline, rec.states
        time.sleep(0.01)
    stop.set()
    reader.join(5)
    assert not reader.is_alive()
    assert reader.queue.closed and reader.queue.error is None
    assert rec.states[-1] == "stopped"


class _RegionsOnOddFrames(MotionGate):
    """A motion gate that has every odd frame detected in one region, the others whole."""

    def __init__(self) -> None:
        super().__init__(25, 0.001, max_skip_s=4.0)
        self._count = 0

    def choose(self, image: np.ndarray, pts: float) -> tuple[Region, ...] | None:
        self._count += 1
        return (Region(0, 0, 8, 8),) if self._count % 2 == 0 else ()


def _halved(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[::2, ::2])


def test_frames_detected_whole_carry_the_detectors_model_image_made_by_their_reader(
    synthetic_video: VideoFactory,
) -> None:
    """The reader's thread resizes for the detector; frames detected in motion regions or
    not detected (passed along for the video) have nothing to resize ahead."""
    path = str(synthetic_video(frames=8))
    reader, _, _, cond = _reader(
        AVSource(path, live=False),
        sampler=FrameSampler(every=2),
        pass_skipped=True,
        motion=_RegionsOnOddFrames(),
        model_image=_halved,
    )
    reader.start()
    items = _drain(reader, cond)
    assert [i.frame.index for i in items] == list(range(8))
    whole = [i for i in items if i.detect and not i.regions]
    in_regions = [i for i in items if i.detect and i.regions]
    assert [i.frame.index for i in whole] == [0, 4] and [i.frame.index for i in in_regions] == [
        2,
        6,
    ]
    for item in whole:
        assert item.frame.model_image is not None
        np.testing.assert_array_equal(item.frame.model_image, _halved(item.frame.image))
    assert all(i.frame.model_image is None for i in items if i not in whole)
    reader, _, _, cond = _reader(AVSource(path, live=False))  # no detector to resize for
    reader.start()
    assert all(i.frame.model_image is None for i in _drain(reader, cond))
