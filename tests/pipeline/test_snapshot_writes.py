"""In a run, snapshot files are written off the pipeline's thread: a write that hangs stops
no frame of any camera and its track's event goes out lost after the bound; a track's event
reaches the sinks once its files exist; a stop while writes are under way keeps what was
written and does not wait for a write that hangs."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import numpy as np
import pytest

import sinks.snapshots.writer as writer_module
from pipeline import source_check
from pipeline.config import parse_config
from pipeline.detection_loop import FrameDetector
from pipeline.runner import Pipeline
from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    HeldTrackEvents,
    LabelMap,
    StreamEnd,
    TrackEvent,
)
from sinks.base import Sink
from tests.conftest import VideoFactory
from tests.pipeline.stalling import Running, Stalling, people
from tests.sinks.snapshots.hanging import LET_GO_S

FRAMES = 60


class Disk:
    """Stands in for `open` in the snapshot writer: `hang_from` on (the nth write, from 1),
    a write waits for `let_go` (`LET_GO_S` at most) while `hanging` is set; every write
    first takes `delay_s`."""

    def __init__(self, hang_from: int | None = None, delay_s: float = 0.0) -> None:
        self.hang_from = hang_from
        self.delay_s = delay_s
        self.opened = 0
        self.hanging = threading.Event()
        self.let_go = threading.Event()

    def open(self, path: Path, mode: str) -> IO[Any]:
        self.opened += 1
        time.sleep(self.delay_s)
        if self.hang_from is not None and self.opened >= self.hang_from:
            self.hanging.set()
            self.let_go.wait(LET_GO_S)
            self.let_go.set()  # one long hang at most, should the code wait for it
            self.hanging.clear()
        return open(path, mode)


@pytest.fixture
def disk(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Disk]]:
    made: list[Disk] = []

    def make(**kwargs: Any) -> Disk:
        made.append(Disk(**kwargs))
        monkeypatch.setattr(writer_module, "open", made[-1].open, raising=False)
        return made[-1]

    yield make
    for d in made:
        d.let_go.set()


class Hopping(FrameDetector):
    """`objects` boxes per frame, side by side, that jump every `hop` frames (new tracks
    each time); counts the frames it detects while `disk` hangs a write, and calls
    `at_frame` with each frame's index."""

    labels = LabelMap(("background", "person"))

    def __init__(
        self,
        disk: Disk,
        objects: int = 1,
        hop: int = 5,
        at_frame: Callable[[int], object] | None = None,
    ) -> None:
        self.disk = disk
        self.objects = objects
        self.hop = hop
        self.at_frame = at_frame
        self.while_hanging = 0

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        out = []
        for f in frames:
            self.while_hanging += self.disk.hanging.is_set()
            if self.at_frame is not None:
                self.at_frame(f.index)
            x = 10 + 20 * ((f.index // self.hop) % 2)
            xs = [x + 50 * k for k in range(self.objects)]
            out.append(
                Detections(
                    xyxy=np.array([[x, 10, x + 20, 60] for x in xs], np.float32),
                    score=np.full(self.objects, 0.9, np.float32),
                    label=np.ones(self.objects, np.int64),
                )
            )
        return out


class Ended(Sink):
    """Each "ended" event as it reaches a sink, and whether its files existed then."""

    name = "ended"

    def __init__(self) -> None:
        self.kinds: dict[tuple[str, int], list[str]] = {}
        self.ended: list[tuple[TrackEvent, bool]] = []

    def write(self, result: FrameResult) -> None:
        self._got(result.frame.camera_id, result.track_events)

    def held_events(self, held: HeldTrackEvents) -> None:
        self._got(held.camera_id, held.track_events)

    def end(self, stream_end: StreamEnd) -> None:
        self._got(stream_end.camera_id, stream_end.track_events)

    def _got(self, camera: str, events: tuple[TrackEvent, ...]) -> None:
        for event in events:
            self.kinds.setdefault((camera, event.track.track_id), []).append(event.kind)
            if event.kind == "ended":
                paths = () if event.snapshot is None else event.snapshot.stored_paths
                exist = all(Path(p).is_file() for p in paths if p is not None)
                self.ended.append((event, exist))

    def close(self) -> None:
        pass


def run(
    tmp_path: Path,
    clip: Path,
    detector: Hopping,
    *,
    cameras: int = 1,
    timeout_s: float = 0.3,
    before: Callable[[Pipeline], None] | None = None,
) -> tuple[Pipeline, Ended, Any]:
    cams = "".join(f"  - id: cam{i}\n    source: {clip}\n" for i in range(cameras))
    config = parse_config(
        f"cameras:\n{cams}detector:\n  batch_size: 2\ntracker:\n  max_age: 0\n"
        f"sinks:\n  - type: snapshots\n    dir: {tmp_path / 'snaps'}\n"
        f"    write_timeout_s: {timeout_s}\n"
    )
    ended = Ended()
    pipeline = Pipeline(config, detector=detector, extra_sinks=[ended])
    if before is not None:
        before(pipeline)
    return pipeline, ended, pipeline.run()


def test_a_hanging_snapshot_write_stops_no_frame_and_its_track_goes_out_lost_after_the_bound(
    tmp_path: Path, synthetic_video: VideoFactory, disk: Callable[..., Disk]
) -> None:
    clip = synthetic_video("clip.mp4", frames=FRAMES, fps=10)
    hung = disk(hang_from=1)
    # The first track ends at frame 5; at frame 12, the frames wait until its write
    # hangs, so that how soon the writer's thread runs on a loaded machine does not matter.
    detector = Hopping(hung, at_frame=lambda i: hung.hanging.wait(10) if i == 12 else None)
    _, ended, summary = run(tmp_path, clip, detector, cameras=2)
    assert hung.hanging.is_set()  # the first write still hangs: nothing waited for it
    assert [c.frames for c in summary.cameras.values()] == [FRAMES, FRAMES]
    assert detector.while_hanging > FRAMES  # both cameras went on meanwhile
    assert len(ended.ended) == 2 * 12  # every track, each once
    for event, _ in ended.ended:
        snap = event.snapshot
        assert snap is not None and snap.lost is not None and snap.stored_paths == (None, None)
    (error,) = summary.sink_errors
    assert error == (
        f"snapshots sink: 24 snapshots lost: not written within 0.3 s: "
        f"{tmp_path / 'snaps'} does not answer"
    )
    assert not list((tmp_path / "snaps").rglob("*.jpg"))


def test_a_tracks_event_reaches_the_sinks_after_its_file_is_written(
    tmp_path: Path, synthetic_video: VideoFactory, disk: Callable[..., Disk]
) -> None:
    clip = synthetic_video("clip.mp4", frames=FRAMES, fps=10)
    slow = disk(delay_s=0.02)  # a few frames' time: the events wait, the frames do not
    _, ended, summary = run(tmp_path, clip, Hopping(slow), cameras=2, timeout_s=10)
    assert summary.sink_errors == []
    assert len(ended.ended) == 2 * 12
    for event, existed in ended.ended:
        assert event.snapshot is not None and event.snapshot.lost is None
        assert existed, f"track {event.track.track_id}'s event came before its file"
    # each track's own order holds: started, then ended, once each
    assert all(kinds == ["started", "ended"] for kinds in ended.kinds.values())
    stored = {e.snapshot.path for e, _ in ended.ended if e.snapshot is not None}
    assert stored == {str(p) for p in (tmp_path / "snaps").rglob("*.jpg")}


def test_a_stop_while_snapshots_are_written_keeps_what_was_written_and_waits_for_no_hang(
    tmp_path: Path, synthetic_video: VideoFactory, disk: Callable[..., Disk]
) -> None:
    """Three people in view when the run is stopped: their tracks end together; the first
    two are written, the third write hangs."""
    clip = synthetic_video("clip.mp4", frames=FRAMES, fps=10)
    hung = disk(hang_from=3, delay_s=0.02)
    holder: list[Pipeline] = []
    detector = Hopping(
        hung, objects=3, hop=1000, at_frame=lambda i: holder[0].stop.set() if i == 10 else None
    )
    _, ended, summary = run(tmp_path, clip, detector, timeout_s=1.0, before=holder.append)
    assert summary.interrupted
    assert hung.hanging.is_set()  # the run ended while the third write hangs
    assert sorted(e.track.track_id for e, _ in ended.ended) == [1, 2, 3]
    snaps = [(e.snapshot, existed) for e, existed in ended.ended if e.snapshot is not None]
    written = [s for s, existed in snaps if s.lost is None and existed]
    lost = [s.lost.reason for s, _ in snaps if s.lost is not None]
    assert len(written) == 2  # the two written: kept, and named
    assert len(lost) == 1 and lost[0].startswith("not written within 1 s")  # the one hung
    assert {s.path for s in written} == {str(p) for p in (tmp_path / "snaps").rglob("*.jpg")}


class Gone(FrameDetector):
    """One person on camera "cam"'s frames before `until`, nobody after nor elsewhere."""

    labels = LabelMap(("background", "person"))

    def __init__(self, until: int) -> None:
        self.until = until

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        return [people(int(f.camera_id == "cam" and f.index < self.until)) for f in frames]


class Messages(Ended):
    """`Ended`, and what of camera "cam" reached the sink in order: ("frame", index),
    ("held", kinds), ("end", kinds); `heard` is set when an "ended" event arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.order: list[tuple[str, object]] = []
        self.heard = threading.Event()

    def write(self, result: FrameResult) -> None:
        if result.frame.camera_id == "cam":
            self.order.append(("frame", result.frame.index))
        super().write(result)

    def held_events(self, held: HeldTrackEvents) -> None:
        self.order.append(("held", [e.kind for e in held.track_events]))
        super().held_events(held)

    def end(self, stream_end: StreamEnd) -> None:
        if stream_end.camera_id == "cam":
            self.order.append(("end", [e.kind for e in stream_end.track_events]))
        super().end(stream_end)

    def _got(self, camera: str, events: tuple[TrackEvent, ...]) -> None:
        super()._got(camera, events)
        if any(e.kind == "ended" for e in events):
            self.heard.set()


@pytest.mark.parametrize("pause", ["source-blocks", "reconnecting"])
@pytest.mark.parametrize("hangs", [False, True], ids=["written", "lost"])
def test_a_camera_whose_frames_stop_still_tells_and_stores_that_its_track_ended(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    disk: Callable[..., Disk],
    pause: str,
    hangs: bool,
) -> None:
    """The track ends on the camera's last frame (5); then it delivers nothing (blocked in its
    source, or reconnecting): its "ended" event and SQL row still come, once the file is
    written or, the disk hanging, lost at the bound, while the camera has no frame."""
    disk(hang_from=1 if hangs else None)
    source = Stalling(blocks=pause != "reconnecting", frames=6)
    monkeypatch.setattr(source_check, "make_source", lambda c, *_: source)
    db = tmp_path / "rows.db"
    config = parse_config(
        "cameras:\n  - id: cam\n    source: rtsp://camera.test/stream\n"
        "    reconnect: {initial_delay_s: 0.01}\n"
        "tracker:\n  t_min: 1\n  max_age: 0\n"
        f"sinks:\n  - type: snapshots\n    dir: {tmp_path / 'snaps'}\n"
        "    write_timeout_s: 0.3\n"
        f"  - type: sql\n    url: sqlite:///{db}\n    flush_interval_s: 600\n"
    )
    messages = Messages()
    with Running(Pipeline(config, detector=Gone(until=5), extra_sinks=[messages]), source) as run:
        assert messages.heard.wait(10), "no track.ended while the camera had no frame"
        stored = _track_rows(db)
        assert source.stalled.wait(10)
    assert run.summary is not None
    ((event, existed),) = messages.ended
    assert event.snapshot is not None
    errors = [e for e in run.summary.sink_errors if "lost" in e]  # the snapshots sink's count
    if hangs:
        assert event.snapshot.lost is not None and event.snapshot.stored_paths == (None, None)
        assert stored == [(1, None)]
        assert len(errors) == 1 and errors[0].startswith("snapshots sink: 1 snapshots lost")
    else:
        assert event.snapshot.lost is None and existed
        assert stored == [(1, event.snapshot.path)]
        assert errors == []
    # after every frame of the camera, before its end; once
    frames = [("frame", i) for i in range(6)]
    assert messages.order == [*frames, ("held", ["ended"]), ("end", [])]
    assert messages.kinds == {("cam", 1): ["started", "ended"]}


def _track_rows(db: Path) -> list[tuple[int, str | None]]:
    """The tracks table's (track_id, snapshot_path) once it has a row (10 s at most)."""
    for _ in range(1000):
        with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
            try:
                rows = list(conn.execute("SELECT track_id, snapshot_path FROM tracks"))
            except sqlite3.OperationalError:  # the table is not there yet
                rows = []
        if rows:
            return rows
        time.sleep(0.01)
    return []
