"""The snapshot stage keeps the crop of each track's best-scoring detection (also one made
before the track was confirmed), copies only crops, and attaches them to "ended" events."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.snapshots import SnapshotKeeper, crop_box
from pipeline.types import Detections, Frame, TrackEvent
from sinks.snapshot_files import is_snapshot_name
from trackers import IoUTracker

H, W = 120, 160


def frame(index: int) -> Frame:
    """A frame whose pixels say which frame they are from (value = index)."""
    return Frame("cam", index, index / 10, 1_800_000_000 + index / 10,
                 np.full((H, W, 3), index, np.uint8))


def one_box(x: float, score: float) -> Detections:
    return Detections(
        xyxy=np.array([[x, 20, x + 30, 80]], np.float32),
        score=np.array([score], np.float32),
        label=np.zeros(1, np.int64),
    )


def run(scores: list[float], keeper: SnapshotKeeper, tracker: IoUTracker) -> list[TrackEvent]:
    """One object moving right, detected with `scores`, then the stream ends."""
    events: list[TrackEvent] = []
    for i, score in enumerate(scores):
        f = frame(i + 1)
        tracked = tracker.update(one_box(10 + 2 * i, score), f)
        events += keeper.update(f, tracked, tuple(tracker.pop_events()))
    events += keeper.finish(tuple(tracker.finish()))
    return events


def ended(events: list[TrackEvent]) -> TrackEvent:
    (end,) = [e for e in events if e.kind == "ended"]
    return end


def test_the_crop_is_of_the_best_scoring_detection(tmp_path: Path) -> None:
    keeper = SnapshotKeeper("cam", tmp_path, margin=0.0)
    end = ended(run([0.6, 0.7, 0.95, 0.8, 0.9], keeper, IoUTracker("cam", t_min=2)))
    snap = end.snapshot
    assert snap is not None
    assert snap.frame_index == end.track.best_frame == 3
    assert snap.box == end.track.best_box
    assert snap.crop.shape == (60, 30, 3)
    assert (snap.crop == 3).all()  # the pixels of frame 3
    assert snap.frame is None and snap.frame_path is None
    assert is_snapshot_name(snap.name) and snap.name.startswith("cam/")
    assert snap.path == f"{tmp_path}/{snap.name}"


def test_a_best_detection_before_confirmation_is_kept(tmp_path: Path) -> None:
    # t_min 3: the track is confirmed at its third detection; its best was the first
    keeper = SnapshotKeeper("cam", tmp_path, margin=0.0, recent_frames=3)
    end = ended(run([0.99, 0.6, 0.7, 0.8], keeper, IoUTracker("cam", t_min=3)))
    assert end.snapshot is not None
    assert end.snapshot.frame_index == end.track.best_frame == 1
    assert (end.snapshot.crop == 1).all()


def test_only_crops_are_copied_never_whole_frames(tmp_path: Path) -> None:
    keeper = SnapshotKeeper("cam", tmp_path, margin=0.1)
    tracker = IoUTracker("cam", t_min=1)
    frames = [frame(i + 1) for i in range(5)]
    for i, f in enumerate(frames):
        tracked = tracker.update(one_box(10 + 2 * i, 0.5 + i / 10), f)
        keeper.update(f, tracked, tuple(tracker.pop_events()))
    assert keeper.open_tracks == 1
    assert 0 < keeper.kept_bytes() < frames[0].image.nbytes / 4
    (end,) = keeper.finish(tuple(tracker.finish()))
    snap = end.snapshot
    assert snap is not None and snap.crop.base is None  # its own buffer, not a frame's view
    assert not snap.crop.flags.writeable


def test_full_frame_is_a_shared_reference_not_a_copy(tmp_path: Path) -> None:
    keeper = SnapshotKeeper("cam", tmp_path, full_frame=True)
    tracker = IoUTracker("cam", t_min=1)
    f = frame(1)
    tracked = tracker.update(one_box(10, 0.9), f)
    keeper.update(f, tracked, tuple(tracker.pop_events()))
    (end,) = keeper.finish(tuple(tracker.finish()))
    snap = end.snapshot
    assert snap is not None and snap.frame is not None
    assert np.shares_memory(snap.frame, f.image)
    assert not snap.frame.flags.writeable and f.image.flags.writeable
    assert snap.frame_name is not None and snap.frame_name.endswith("-frame.jpg")


def test_started_events_pass_unchanged_and_state_is_dropped_at_the_end(tmp_path: Path) -> None:
    keeper = SnapshotKeeper("cam", tmp_path)
    events = run([0.9, 0.9, 0.9], keeper, IoUTracker("cam", t_min=2))
    assert [e.kind for e in events] == ["started", "ended"]
    assert events[0].snapshot is None
    assert keeper.open_tracks == 0


def test_the_margin_widens_the_crop_within_the_frame() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    assert crop_box(image, (10, 10, 30, 50), 0.5).shape == (70, 40, 3)  # x 0..40, y 0..70
    assert crop_box(image, (90, 90, 130, 130), 0.0).shape == (10, 10, 3)
    assert crop_box(image, (200, 200, 230, 230), 0.1).size == 0
