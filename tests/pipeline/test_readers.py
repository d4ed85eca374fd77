from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline.batching import Batcher
from pipeline.readers import FileReader, FrameQueue, QueuePolicy, SourceError, open_video
from pipeline.types import Frame
from tests.conftest import SHARED_DATA, VideoFactory


def _frame(camera: str, index: int) -> Frame:
    return Frame(camera, index, index / 10, time.time(), np.zeros((2, 2, 3), np.uint8))


def _start_reader(
    path: Path, queue_size: int, camera: str = "cam"
) -> tuple[FileReader, FrameQueue, threading.Event, threading.Condition]:
    cond = threading.Condition()
    stop = threading.Event()
    container, info = open_video(camera, path)
    q = FrameQueue(camera, queue_size, QueuePolicy.BLOCK, cond)
    reader = FileReader(camera, container, info, q, stop)
    reader.start()
    return reader, q, stop, cond


def _drain(q: FrameQueue, cond: threading.Condition) -> list[Frame]:
    batcher = Batcher([q], cond, batch_size=4, max_wait=0.01)
    frames: list[Frame] = []
    while (batch := batcher.next_batch()) is not None:
        frames += batch.frames
    return frames


def test_file_reader_decodes_every_frame_in_order(synthetic_video: VideoFactory) -> None:
    path = synthetic_video(frames=17, size=(96, 64), fps=10)
    _, info = open_video("cam", path)
    assert (info.width, info.height, info.frame_rate) == (96, 64, 10)
    reader, q, _, cond = _start_reader(path, queue_size=4)
    frames = _drain(q, cond)
    reader.join(5)
    assert [f.index for f in frames] == list(range(17))
    assert frames[0].image.shape == (64, 96, 3)
    np.testing.assert_allclose([f.pts for f in frames], np.arange(17) / 10, atol=1e-6)
    assert q.error is None


def test_full_queue_blocks_a_file_reader_and_loses_nothing(synthetic_video: VideoFactory) -> None:
    path = synthetic_video(frames=12)
    reader, q, _, cond = _start_reader(path, queue_size=2)
    time.sleep(0.5)  # the reader had time to decode everything if it did not block
    assert q.frames_in == 2
    assert reader.is_alive()
    assert len(_drain(q, cond)) == 12
    assert q.dropped == 0


def test_stop_ends_a_blocked_reader_and_closes_its_queue(synthetic_video: VideoFactory) -> None:
    reader, q, stop, _ = _start_reader(synthetic_video(frames=12), queue_size=1)
    time.sleep(0.2)
    stop.set()
    reader.join(2)
    assert not reader.is_alive()
    assert len(q) == 1
    assert q.error is None


def test_drop_oldest_queue_keeps_the_newest_frames_and_counts_drops() -> None:
    q = FrameQueue("live", 3, QueuePolicy.DROP_OLDEST, threading.Condition())
    stop = threading.Event()
    for i in range(10):
        assert q.put(_frame("live", i), stop)
    assert q.dropped == 7
    assert [q.pop().index for _ in range(3)] == [7, 8, 9]  # type: ignore[union-attr]


def test_batcher_fills_batches_round_robin_across_cameras() -> None:
    cond = threading.Condition()
    stop = threading.Event()
    a = FrameQueue("a", 10, QueuePolicy.BLOCK, cond)
    b = FrameQueue("b", 10, QueuePolicy.BLOCK, cond)
    for i in range(5):
        a.put(_frame("a", i), stop)
    for i in range(2):
        b.put(_frame("b", i), stop)
    batch = Batcher([a, b], cond, batch_size=4, max_wait=0.01).next_batch()
    assert batch is not None
    assert [(f.camera_id, f.index) for f in batch.frames] == [
        ("a", 0),
        ("b", 0),
        ("a", 1),
        ("b", 1),
    ]


def test_batcher_returns_a_partial_batch_after_max_wait() -> None:
    cond = threading.Condition()
    q = FrameQueue("a", 10, QueuePolicy.BLOCK, cond)
    q.put(_frame("a", 0), threading.Event())
    started = time.monotonic()
    batch = Batcher([q], cond, batch_size=8, max_wait=0.05).next_batch()
    assert batch is not None and len(batch.frames) == 1
    assert time.monotonic() - started < 1.0


def test_batcher_reports_a_camera_finished_only_after_its_last_frame() -> None:
    cond = threading.Condition()
    stop = threading.Event()
    a = FrameQueue("a", 10, QueuePolicy.BLOCK, cond)
    for i in range(3):
        a.put(_frame("a", i), stop)
    a.close(error="boom")
    batcher = Batcher([a], cond, batch_size=2, max_wait=0.01)
    first = batcher.next_batch()
    assert first is not None and len(first.frames) == 2 and first.finished == []
    last = batcher.next_batch()
    assert last is not None and [f.index for f in last.frames] == [2]
    assert [q.camera_id for q in last.finished] == ["a"] and last.finished[0].error == "boom"
    assert batcher.next_batch() is None


@pytest.mark.parametrize(
    ("content", "reason"),
    [(b"", "cannot open"), (b"this is not a video\n" * 50, "cannot open")],
    ids=["zero-byte", "text-renamed-mp4"],
)
def test_unreadable_files_fail_with_the_camera_named(
    tmp_path: Path, content: bytes, reason: str
) -> None:
    path = tmp_path / "clip.mp4"
    path.write_bytes(content)
    with pytest.raises(SourceError, match=f"camera door: {reason} .*clip.mp4"):
        open_video("door", path)


def test_missing_file_fails_with_the_camera_named(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="camera door: cannot open"):
        open_video("door", tmp_path / "nope.mp4")


def test_truncated_file_ends_cleanly_with_the_frames_before_the_cut(
    synthetic_video: VideoFactory, tmp_path: Path
) -> None:
    data = synthetic_video("full.mkv", frames=40).read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) * 2 // 3])
    reader, q, _, cond = _start_reader(cut, queue_size=8)
    frames = _drain(q, cond)
    reader.join(5)
    assert 0 < len(frames) < 40
    assert [f.index for f in frames] == list(range(len(frames)))


@pytest.mark.skipif(not (SHARED_DATA / "Megamind_bugy.avi").exists(), reason="needs ../shared/data")
def test_corrupted_file_is_decoded_to_the_end_with_errors_counted() -> None:
    reader, q, _, cond = _start_reader(SHARED_DATA / "Megamind_bugy.avi", queue_size=16)
    frames = _drain(q, cond)
    reader.join(10)
    assert q.error is None
    assert len(frames) > 200  # the clip has 270 frames; a few are lost to corruption
    assert [f.index for f in frames] == list(range(len(frames)))
