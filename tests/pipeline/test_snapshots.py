"""The snapshot stage keeps the crop of each track's best-scoring detection (also one made
before the track was confirmed), copies only crops, and attaches them to "ended" events,
each held back until its files are written (or lost, or past the writer's bound) while
frames go on; in a run, a full snapshot disk loses snapshots (counted, in one line) and
nothing else."""

from __future__ import annotations

import gc
import sqlite3
import weakref
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from pipeline.config import parse_config
from pipeline.detection_loop import FrameDetector
from pipeline.runner import Pipeline
from pipeline.snapshots import SnapshotKeeper, crop_box
from pipeline.types import Detections, Frame, LabelMap, TrackEvent
from sinks.snapshot_files import is_snapshot_name
from sinks.snapshots.writer_thread import SnapshotWriterThread
from tests.clock import Clock
from tests.conftest import VideoFactory
from tests.pipeline.stalling import people
from tests.sinks.small_disk import SmallDisk, small_disk
from tests.sinks.snapshots.hanging import HangingWriter
from tests.sinks.sql.builders import wait_for
from trackers import IoUTracker

H, W = 120, 160


def frame(index: int) -> Frame:
    """A frame whose pixels say which frame they are from (value = index)."""
    return Frame(
        "cam", index, index / 10, 1_800_000_000 + index / 10, np.full((H, W, 3), index, np.uint8)
    )


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
    assert snap is not None and isinstance(snap.frame, np.ndarray)
    assert np.shares_memory(snap.frame, f.image)
    assert not snap.frame.flags.writeable and f.image.flags.writeable
    assert snap.frame_name is not None and snap.frame_name.endswith("-frame.jpg")


def test_full_frames_held_for_open_tracks_are_bounded_and_the_rest_kept_as_jpeg(
    tmp_path: Path,
) -> None:
    """20 open tracks, each with its best detection on a frame of its own: at most
    `frames_held` of those frames stay alive as pixels, and every track's whole frame is
    still the right one at its end."""
    tracks, held = 20, 3
    keeper = SnapshotKeeper("cam", tmp_path, full_frame=True, frames_held=held, recent_frames=1)
    tracker = IoUTracker("cam", t_min=1)
    xs = np.arange(tracks, dtype=np.float32) * 30  # side by side, never overlapping
    boxes = np.stack([xs, np.full(tracks, 20), xs + 20, np.full(tracks, 80)], axis=1)
    alive: list[weakref.ref[np.ndarray]] = []
    for index in range(1, tracks + 1):
        f = Frame(
            "cam",
            index,
            index / 10,
            1_800_000_000 + index / 10,
            np.full((120, 30 * tracks, 3), 10 * index, np.uint8),
        )
        scores = np.full(tracks, 0.5, np.float32)
        scores[index - 1] = 0.9  # track `index` has its best on frame `index`
        dets = Detections(boxes.astype(np.float32), scores, np.zeros(tracks, np.int64))
        keeper.update(f, tracker.update(dets, f), tuple(tracker.pop_events()))
        alive.append(weakref.ref(f.image))
        del f
    gc.collect()
    frame_bytes = 120 * 30 * tracks * 3
    # the last frame is also the one remembered for tracks not confirmed yet
    assert sum(ref() is not None for ref in alive) <= held + 1
    assert keeper.frames_as_pixels == held
    assert keeper.kept_bytes() < (held + 1) * frame_bytes
    ended = keeper.finish(tuple(tracker.finish()))
    assert len(ended) == tracks
    for event in ended:
        snap = event.snapshot
        assert snap is not None and snap.frame is not None
        whole: np.ndarray | None = (
            cv2.imdecode(np.frombuffer(snap.frame, np.uint8), cv2.IMREAD_COLOR)
            if isinstance(snap.frame, bytes)
            else snap.frame
        )
        assert whole is not None
        # the frame of its best detection: every pixel says which frame it is
        assert abs(float(whole.mean()) - 10 * event.track.best_frame) < 2
    assert sum(isinstance(e.snapshot.frame, bytes) for e in ended if e.snapshot) == tracks - held


def test_started_events_pass_unchanged_and_state_is_dropped_at_the_end(tmp_path: Path) -> None:
    keeper = SnapshotKeeper("cam", tmp_path)
    events = run([0.9, 0.9, 0.9], keeper, IoUTracker("cam", t_min=2))
    assert [e.kind for e in events] == ["started", "ended"]
    assert events[0].snapshot is None
    assert keeper.open_tracks == 0


def boxes_at(*xs: float) -> Detections:
    return Detections(
        xyxy=np.array([[x, 20, x + 30, 80] for x in xs], np.float32).reshape(-1, 4),
        score=np.full(len(xs), 0.9, np.float32),
        label=np.zeros(len(xs), np.int64),
    )


def step(
    keeper: SnapshotKeeper, tracker: IoUTracker, index: int, dets: Detections
) -> list[TrackEvent]:
    f = frame(index)
    return list(keeper.update(f, tracker.update(dets, f), tuple(tracker.pop_events())))


def test_a_hanging_write_holds_back_its_tracks_event_alone_until_the_bound(
    tmp_path: Path,
) -> None:
    """Track 1's write hangs: frames go on, track 2 starts meanwhile, and track 1's "ended"
    comes with the first frame after the bound, lost; track 2's, ending while the write
    still hangs, is lost at once."""
    clock = Clock()
    hanging = HangingWriter(tmp_path, hang_on=("_1.jpg",))
    writer = SnapshotWriterThread(hanging, timeout_s=2.0, clock=clock)
    keeper = SnapshotKeeper("cam", tmp_path, writer=writer)
    tracker = IoUTracker("cam", t_min=1, max_age=0)
    try:
        assert [e.kind for e in step(keeper, tracker, 1, boxes_at(10))] == ["started"]
        assert step(keeper, tracker, 2, boxes_at(12)) == []
        assert step(keeper, tracker, 3, boxes_at()) == []  # track 1 ends: its event waits
        assert hanging.hanging.wait(10) and keeper.waiting == 1
        events = step(keeper, tracker, 4, boxes_at(100))
        assert [(e.kind, e.track.track_id) for e in events] == [("started", 2)]
        assert step(keeper, tracker, 5, boxes_at(102)) == [] and keeper.waiting == 1
        clock.advance(2.5)
        (late,) = step(keeper, tracker, 6, boxes_at(104))
        assert (late.kind, late.track.track_id) == ("ended", 1)
        assert late.snapshot is not None and late.snapshot.lost is not None
        assert late.snapshot.lost.reason == f"not written within 2 s: {tmp_path} does not answer"
        assert late.snapshot.stored_paths == (None, None) and keeper.waiting == 0
        (at_once,) = step(keeper, tracker, 7, boxes_at())
        assert (at_once.kind, at_once.track.track_id) == ("ended", 2)
        assert at_once.snapshot is not None and at_once.snapshot.lost is not None
    finally:
        hanging.let_go.set()
        writer.close()


def test_an_ended_tracks_files_exist_when_its_event_is_let_out(tmp_path: Path) -> None:
    writer = SnapshotWriterThread(HangingWriter(tmp_path))
    keeper = SnapshotKeeper("cam", tmp_path, full_frame=True, writer=writer)
    tracker = IoUTracker("cam", t_min=1, max_age=0)
    ended: list[TrackEvent] = []
    try:
        for index in range(1, 41):  # a new track every 4 frames, 3 of them detected
            xs = () if index % 4 == 0 else (10 + 40 * (index // 4) % 120,)
            for event in step(keeper, tracker, index, boxes_at(*xs)):
                if event.kind == "ended":
                    assert event.snapshot is not None and event.snapshot.frame_path is not None
                    assert Path(event.snapshot.path).is_file()
                    assert Path(event.snapshot.frame_path).is_file()
                    ended.append(event)
        for event in keeper.finish(tuple(tracker.finish())):
            assert event.snapshot is not None and Path(event.snapshot.path).is_file()
            ended.append(event)
    finally:
        writer.close()
    assert sorted(e.track.track_id for e in ended) == list(range(1, 11))
    assert all(e.snapshot is not None and e.snapshot.lost is None for e in ended)
    assert keeper.waiting == 0


def test_the_stream_end_waits_for_writes_under_way_but_not_past_the_bound(
    tmp_path: Path,
) -> None:
    hanging = HangingWriter(tmp_path, hang_on=("_2.jpg",))
    writer = SnapshotWriterThread(hanging, timeout_s=1.0)
    keeper = SnapshotKeeper("cam", tmp_path, writer=writer)
    tracker = IoUTracker("cam", t_min=1, max_age=0)
    try:
        step(keeper, tracker, 1, boxes_at(10, 60, 110))
        ended = keeper.finish(tuple(tracker.finish()))
    finally:
        hanging.let_go.set()
        writer.close()
    by_track = {e.track.track_id: e.snapshot for e in ended}
    assert sorted(by_track) == [1, 2, 3]  # none left behind
    assert by_track[2] is not None and by_track[2].lost is not None  # it hung
    for track in (1, 3):  # written before it, or lost for waiting behind it: never unsaid
        snap = by_track[track]
        assert snap is not None
        assert (snap.lost is None) == Path(snap.path).is_file()
    assert by_track[1] is not None and by_track[1].lost is None
    assert keeper.waiting == 0


def test_the_margin_widens_the_crop_within_the_frame() -> None:
    image = np.zeros((100, 100, 3), np.uint8)
    assert crop_box(image, (10, 10, 30, 50), 0.5).shape == (70, 40, 3)  # x 0..40, y 0..70
    assert crop_box(image, (90, 90, 130, 130), 0.0).shape == (10, 10, 3)
    assert crop_box(image, (200, 200, 230, 230), 0.1).size == 0


class HoppingDetector(FrameDetector):
    """One box that jumps to a new place every 5 frames (a new track each time); fills
    `disk` at frame `fill_at`, once a snapshot is on it."""

    labels = LabelMap(("background", "person"))

    def __init__(self, disk: SmallDisk, fill_at: int) -> None:
        self.disk = disk
        self.fill_at = fill_at
        self.filled = False

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        if not self.filled and any(f.index >= self.fill_at for f in frames):
            wait_for(lambda: any(self.disk.path.rglob("*.jpg")), "a snapshot on the disk")
            self.disk.fill()
            self.filled = True
        xs = [10 + 30 * ((f.index // 5) % 4) for f in frames]
        return [people(box=(x, 10, x + 20, 60)) for x in xs]


def test_a_full_disk_loses_snapshots_counted_and_sql_stores_only_paths_of_files_written(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    clip = synthetic_video("clip.mp4", frames=60, fps=10)
    db = tmp_path / "det.db"
    with small_disk(tmp_path / "disk", "1m") as disk:
        folder = disk.path / "snaps"
        config = parse_config(
            f"cameras:\n  - id: cam\n    source: {clip}\n"
            "detector:\n  batch_size: 2\ntracker:\n  max_age: 0\n"
            f"sinks:\n  - type: snapshots\n    dir: {folder}\n"
            f"  - type: sql\n    url: sqlite:///{db}\n"
        )
        summary = Pipeline(config, detector=HoppingDetector(disk, fill_at=30)).run()
        written = len(list(folder.rglob("*.jpg")))
        disk.free()
        files = {str(p) for p in folder.rglob("*.jpg")}
    with sqlite3.connect(db) as conn:
        paths = [p for (p,) in conn.execute("SELECT snapshot_path FROM tracks")]
    assert len(paths) == 12  # every track stored
    # with the path of its picture when it was written, and only then
    stored = [p for p in paths if p is not None]
    assert set(stored) == files and len(stored) == written
    (error,) = summary.sink_errors
    lost = 12 - written
    assert 0 < written < 12
    assert error.startswith(
        f"snapshots sink: {lost} snapshots lost: disk full: the file system at {disk.path}"
    )
    assert "\n" not in error
