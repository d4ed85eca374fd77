"""The detection loop hands a track's "ended" event held for its snapshot to the sinks as
soon as the snapshot settles, between frames, also while other cameras keep it busy; in a
run, a sink of one's own that records track events from its frames alone has every one."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.batching import Batcher
from pipeline.config import parse_config
from pipeline.detection_loop import DetectionLoop, FrameDetector
from pipeline.frame_queue import FrameQueue, QueuedFrame, QueuePolicy
from pipeline.runner import Pipeline
from pipeline.snapshots import SnapshotKeeper
from pipeline.summary import CameraStats
from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    HeldTrackEvents,
    LabelMap,
    StreamEnd,
    TrackEvent,
)
from pipeline.workers import SinkFanout, SinkWorker
from sinks.base import Sink
from sinks.snapshots.writer import SnapshotWriter
from sinks.snapshots.writer_thread import SnapshotWriterThread
from tests.conftest import VideoFactory
from tests.pipeline.stalling import Hopping, people
from trackers import IoUTracker

BUSY_FRAMES = 40
WAIT_AT = 20  # the busy camera's frame whose detection waits for the snapshot's write


class Order(Sink):
    """What reached the sink, in order: ("frame", camera, index), ("held", camera, track
    ids), ("end", camera)."""

    name = "order"

    def __init__(self) -> None:
        self.got: list[tuple[str, str, object]] = []

    def write(self, result: FrameResult) -> None:
        self.got.append(("frame", result.frame.camera_id, result.frame.index))

    def held_events(self, held: HeldTrackEvents) -> None:
        self.got.append(("held", held.camera_id, [e.track.track_id for e in held.track_events]))

    def end(self, stream_end: StreamEnd) -> None:
        self.got.append(("end", stream_end.camera_id, None))

    def close(self) -> None:
        return None


class Scripted(FrameDetector):
    """A person on "cam"'s frames 0-4 (its track ends on frame 5); nobody on "busy"'s, whose
    frame `WAIT_AT` waits for `settled` and whose last one closes "cam"'s queue."""

    labels = LabelMap(("background", "person"))

    def __init__(self, settled: threading.Event, cam: FrameQueue) -> None:
        self.settled, self.cam = settled, cam

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        out = []
        for f in frames:
            if f.camera_id == "busy" and f.index == WAIT_AT:
                assert self.settled.wait(10), "the snapshot was never written"
            if f.camera_id == "busy" and f.index == BUSY_FRAMES - 1:
                self.cam.close()
            out.append(people(int(f.camera_id == "cam" and f.index < 5)))
        return out


def queued(camera: str, index: int) -> QueuedFrame:
    return QueuedFrame(Frame(camera, index, index / 25, 1000.0 + index / 25, IMAGE))


IMAGE = np.zeros((120, 160, 3), np.uint8)


def test_a_held_event_goes_out_once_written_while_another_cameras_frames_keep_coming(
    tmp_path: Path,
) -> None:
    # "busy" always has a frame ready, so the loop never waits for one: the event must go
    # out between batches, not only when the loop would wait.
    cond, stop = threading.Condition(), threading.Event()
    cam = FrameQueue("cam", 100, QueuePolicy.BLOCK, cond)
    busy = FrameQueue("busy", 100, QueuePolicy.BLOCK, cond)
    for i in range(6):  # then "cam" sends nothing more, its stream still open
        cam.put(queued("cam", i), stop)
    for i in range(BUSY_FRAMES):
        busy.put(queued("busy", i), stop)
    busy.close()
    batcher = Batcher([cam, busy], cond, batch_size=1, max_wait=0.01)
    settled = threading.Event()

    def on_settled() -> None:
        settled.set()
        batcher.wake()

    writer = SnapshotWriterThread(SnapshotWriter(tmp_path), timeout_s=10, on_settled=on_settled)
    order = Order()
    worker = SinkWorker(order, 1000)
    loop = DetectionLoop(
        Scripted(settled, cam),
        {"cam": IoUTracker("cam", t_min=1, max_age=0), "busy": IoUTracker("busy")},
        SinkFanout([worker]),
        {c: CameraStats(c, "test") for c in ("cam", "busy")},
        None,
        snapshots={"cam": SnapshotKeeper("cam", tmp_path, recent_frames=1, writer=writer)},
    )
    try:
        loop.run(batcher, stop)
    finally:
        writer.close()
        worker.close()
    held = order.got.index(("held", "cam", [1]))
    assert order.got[held - 1] == ("frame", "busy", WAIT_AT)  # right after that batch
    assert order.got.count(("held", "cam", [1])) == 1
    cams = [g for g in order.got if g[1] == "cam"]
    assert cams == [
        *(("frame", "cam", i) for i in range(6)),
        ("held", "cam", [1]),
        ("end", "cam", None),
    ]


class FromFrames(Sink):
    """A sink of one's own that records track events from `write` and `end` and knows
    nothing of `held_events`: each track's event kinds, and its "ended" events."""

    name = "mine"

    def __init__(self) -> None:
        self.kinds: dict[tuple[str, int], list[str]] = {}
        self.ended: list[TrackEvent] = []

    def write(self, result: FrameResult) -> None:
        self._got(result.frame.camera_id, result.track_events)

    def end(self, stream_end: StreamEnd) -> None:
        self._got(stream_end.camera_id, stream_end.track_events)

    def _got(self, camera: str, events: tuple[TrackEvent, ...]) -> None:
        for event in events:
            self.kinds.setdefault((camera, event.track.track_id), []).append(event.kind)
            self.ended += [event] if event.kind == "ended" else []

    def close(self) -> None:
        return None


class Counts(Sink):
    """A sink of one's own that ignores track events: (camera, frame, people) per frame."""

    name = "counts"

    def __init__(self) -> None:
        self.rows: list[tuple[str, int, int]] = []

    def write(self, result: FrameResult) -> None:
        self.rows.append((result.frame.camera_id, result.frame.index, len(result.detections)))

    def close(self) -> None:
        return None


def test_a_sink_that_records_track_events_from_its_frames_alone_has_every_ended_one(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    """Snapshots on: a track's "ended" event is held until its file is written, and a sink
    without `held_events` finds it in its camera's next frame (or its end); a sink that
    ignores track events sees nothing more than its frames."""
    clip = synthetic_video("clip.mp4", frames=40, fps=10)
    config = parse_config(
        f"cameras:\n  - id: a\n    source: {clip}\n  - id: b\n    source: {clip}\n"
        "tracker:\n  t_min: 1\n  max_age: 0\n"
        f"sinks:\n  - type: snapshots\n    dir: {tmp_path / 'snaps'}\n"
        "    write_timeout_s: 10\n"
    )
    mine, counts = FromFrames(), Counts()
    summary = Pipeline(config, detector=Hopping(), extra_sinks=[mine, counts]).run()
    assert summary.sink_errors == []
    assert len(mine.kinds) == 2 * 8  # 8 tracks a camera, each started and ended once
    assert all(kinds == ["started", "ended"] for kinds in mine.kinds.values())
    for event in mine.ended:
        assert event.snapshot is not None and event.snapshot.lost is None
        assert Path(event.snapshot.path).is_file()
    assert sorted(counts.rows) == [(c, i, 1) for c in "ab" for i in range(40)]
