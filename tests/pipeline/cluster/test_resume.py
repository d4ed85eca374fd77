"""A camera taken over from a dead shard: its sinks get only the frames, the tracks, the
zone visits and the line crossings they lack, and the dead shard's run is recorded as lost."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import create_engine, inspect, text

from pipeline.cluster.lost_runs import mark_lost
from pipeline.cluster.merge import merge_summaries
from pipeline.cluster.resume import ResumeSink, prepare_database, stored_rows
from pipeline.cluster.shard import ShardInfo
from pipeline.summary import CameraStats, RunSummary
from pipeline.types import (
    AnalyticsEvent,
    Detections,
    Frame,
    FrameResult,
    HeldTrackEvents,
    LineCrossing,
    StreamEnd,
    TrackEvent,
    ZoneEvent,
)
from sinks.base import Sink, SinkError
from sinks.sql.query import list_runs
from sinks.sql.sink import SqlSink
from tests.conftest import free_port
from tests.sinks.sql.builders import LABELS, T0, boxes, summary
from tests.sinks.sql.builders import frame_result as sql_frame
from tests.sinks.sql.conftest import pg_schema, skip_without_pg


class Recorder(Sink):
    name = "recorder"

    def __init__(self) -> None:
        self.frames: list[tuple[str, int]] = []
        self.boxes: list[tuple[str, int, int]] = []
        self.tracks: list[tuple[str, int]] = []
        self.ended: list[str] = []
        self.scene: list[tuple[str, int]] = []
        """Each zone visit's or line crossing's kind and track."""
        self.ticks = 0

    def write(self, result: FrameResult) -> None:
        self.frames.append((result.frame.camera_id, result.frame.index))
        self.boxes.append((result.frame.camera_id, result.frame.index, len(result.detections)))
        self.tracks += [(result.frame.camera_id, e.track.track_id) for e in result.track_events]
        self.scene += [(type(e).__name__, e.track_id) for e in result.analytics]  # type: ignore[union-attr]

    def held_events(self, held: HeldTrackEvents) -> None:
        self.tracks += [(held.camera_id, e.track.track_id) for e in held.track_events]

    def end(self, stream_end: StreamEnd) -> None:
        self.ended.append(stream_end.camera_id)
        self.tracks += [(stream_end.camera_id, e.track.track_id) for e in stream_end.track_events]
        self.scene += [(type(e).__name__, e.track_id) for e in stream_end.analytics]  # type: ignore[union-attr]

    def tick(self) -> None:
        self.ticks += 1

    def close(self) -> None:
        pass


def frame_result(camera: str, index: int, *ended: int) -> FrameResult:
    """A frame of `camera` with no boxes, at which the tracks `ended` ended."""
    frame = Frame(camera, index, index / 10, 0.0, np.zeros((2, 2, 3), np.uint8))
    events = tuple(TrackEvent("ended", summary(camera, t, 0, index)) for t in ended)
    return FrameResult(frame, Detections.empty(), events)


def test_frames_a_sink_has_are_not_given_again_and_others_pass() -> None:
    inner = Recorder()
    sink = ResumeSink(inner, {"a": 2})
    for i in range(4):
        sink.write(frame_result("a", i))
        sink.write(frame_result("b", i))
    sink.end(StreamEnd("a", 4))
    assert inner.frames == [("b", 0), ("b", 1), ("b", 2), ("a", 3), ("b", 3)]
    assert inner.ended == ["a"]


def test_ticks_reach_the_sink_of_a_resumed_camera() -> None:
    # the video sink writes out a camera whose frames stopped on its tick
    inner = Recorder()
    sink = ResumeSink(inner, {"a": 2})
    sink.tick()
    assert inner.ticks == 1


def test_tracks_the_database_lacks_are_given_whenever_they_ended_and_those_it_has_never() -> None:
    # The dead shard's rows of frames 0-3 are stored, but not the row of track 1, which
    # ended at frame 2 (its batch was not committed yet); track 2's row is stored, though
    # it ended at frame 5, after the last frame with rows (frames 4-5 had no boxes).
    inner = Recorder()
    sink = ResumeSink(inner, {"a": 3}, {"a": frozenset({2})})
    for i, ended in ((0, ()), (1, ()), (2, (1,)), (3, ()), (4, ()), (5, (2,)), (6, (3,))):
        sink.write(frame_result("a", i, *ended))
    sink.end(StreamEnd("a", 7, (TrackEvent("ended", summary("a", 4, 6, 6)),)))

    assert inner.tracks == [("a", 1), ("a", 3), ("a", 4)]
    assert inner.frames == [("a", 2), ("a", 4), ("a", 5), ("a", 6)]  # frame 2 for its track


def held(camera: str, *ended: int) -> HeldTrackEvents:
    return HeldTrackEvents(
        camera, tuple(TrackEvent("ended", summary(camera, t, 0, 1)) for t in ended)
    )


def test_held_events_pass_as_the_next_frames_would_and_stored_tracks_never_again() -> None:
    # The bus resumes after frame 2: a track held after frame 1 went out before frame 2
    # did; one held after frame 2 may not have. The database has track 5's row.
    bus = Recorder()
    sink = ResumeSink(bus, {"a": 2})
    sql = Recorder()
    rows = ResumeSink(sql, {"a": 2}, {"a": frozenset({5})})
    for resumed in (sink, rows):
        for i, tracks in ((0, ()), (1, (1,)), (2, (2, 5)), (3, (3,))):
            resumed.write(frame_result("a", i))
            resumed.held_events(held("a", *tracks))
    assert bus.tracks == [("a", 2), ("a", 5), ("a", 3)]
    assert sql.tracks == [("a", 1), ("a", 2), ("a", 3)]


def test_a_frame_the_database_has_is_given_without_its_boxes_when_it_ended_a_track() -> None:
    inner = Recorder()
    sink = ResumeSink(inner, {"a": 3}, {})
    ended = (TrackEvent("ended", summary("a", 1, 0, 2)),)
    sink.write(sql_frame("a", 1, T0, boxes(1)))
    sink.write(sql_frame("a", 2, T0, boxes(2), ended))
    sink.write(sql_frame("a", 4, T0, boxes(4)))
    assert inner.boxes == [("a", 2, 0), ("a", 4, 3)] and inner.tracks == [("a", 1)]


def visit(camera: str, track: int, entered: int, left: int, *, at_end: bool = False) -> ZoneEvent:
    return ZoneEvent(
        "left",
        camera,
        "door",
        track,
        1,
        left,
        T0 + left,
        entered,
        T0 + entered,
        at_stream_end=at_end,
    )


def crossing(camera: str, track: int, frame: int) -> LineCrossing:
    return LineCrossing(camera, "gate", track, 1, "in", "left", "right", frame, T0 + frame)


def test_visits_and_crossings_the_database_lacks_are_given_whenever_they_happened() -> None:
    # Rows of frames 0-3 are stored, but not the visit of track 1 that ended at frame 2 nor
    # the crossing of track 3 at frame 1 (their batch was not committed); the visit of
    # track 2, ended at frame 5 (after the last frame with rows), and the crossing of track
    # 4 at frame 3 are stored, as is track 5's visit cut by the stream's end.
    inner = Recorder()
    stored = {("zone", "door", 2, 1), ("line", "gate", 4, 3), ("zone", "door", 5, 4)}
    sink = ResumeSink(inner, {"a": 3}, {}, {"a": frozenset(stored)})
    scene: dict[int, tuple[AnalyticsEvent, ...]] = {
        1: (crossing("a", 3, 1),),
        2: (visit("a", 1, 0, 2), ZoneEvent("entered", "a", "door", 2, 1, 2, T0, 2, T0)),
        3: (crossing("a", 4, 3),),
        5: (visit("a", 2, 1, 5), crossing("a", 6, 5)),
        6: (visit("a", 7, 6, 6),),
    }
    for i in range(7):
        sink.write(dataclasses.replace(frame_result("a", i), analytics=scene.get(i, ())))
    at_end = (visit("a", 5, 4, 7, at_end=True), visit("a", 8, 6, 7, at_end=True))
    sink.end(StreamEnd("a", 7, analytics=at_end))

    assert inner.scene == [
        ("LineCrossing", 3),
        ("ZoneEvent", 1),
        ("LineCrossing", 6),
        ("ZoneEvent", 7),
        ("ZoneEvent", 8),
    ]
    assert inner.frames == [("a", 1), ("a", 2), ("a", 4), ("a", 5), ("a", 6)]


@pytest.fixture
def pg_url() -> Iterator[str]:
    skip_without_pg()
    with pg_schema() as url:
        yield url


def shard_sink(url: str, run: int, shard: int) -> SqlSink:
    return SqlSink(url, LABELS, run_config=f"c.yaml (cluster abc run {run} on shard-{shard})")


def test_each_track_visit_and_crossing_of_a_camera_moved_around_a_death_is_stored_once(
    pg_url: str, tmp_path: Path
) -> None:
    """The dead shard stored frames 0-5 of `cam`, and track 2 with its visit and crossing
    (at frame 7, after the last frame with boxes), but not track 1 with its visit and
    crossing (at frame 4, their batch not committed); the survivor processes the file again
    from its start."""
    ends = {4: (1,), 7: (2,), 9: (3,)}

    def result(i: int) -> FrameResult:
        events = tuple(TrackEvent("ended", summary("cam", t, 0, i)) for t in ends.get(i, ()))
        scene = [a for t in ends.get(i, ()) for a in (visit("cam", t, 0, i), crossing("cam", t, i))]
        r = sql_frame("cam", i, T0 + i, boxes(i) if i <= 5 or i >= 8 else [], events)
        return dataclasses.replace(r, analytics=tuple(scene))

    dead = shard_sink(pg_url, 1, 1)
    for i in range(8):
        r = result(i)
        dead.write(r if i != 4 else FrameResult(r.frame, r.detections))  # track 1: not stored
    dead.close()
    engine = create_engine(pg_url)
    with engine.begin() as conn:  # as a shard killed with its node leaves its run
        conn.execute(text("UPDATE runs SET status = 'running', ended_at = NULL"))
    mark_lost(
        pg_url, tmp_path, "c.yaml (cluster abc run 1 on shard-1)", "shard-1 on 10.0.0.8 died: gone"
    )

    (stored,) = stored_rows(pg_url, "% (cluster abc run %", ["cam"]).values()
    assert (stored.through, stored.tracks) == (5, frozenset({2}))
    assert stored.scene == {("zone", "door", 2, 0), ("line", "gate", 2, 7)}
    survivor = shard_sink(pg_url, 2, 0)
    moved = ResumeSink(
        survivor, {"cam": stored.through}, {"cam": stored.tracks}, {"cam": stored.scene}
    )
    for i in range(10):
        moved.write(result(i))
    moved.end(StreamEnd("cam", 10))
    moved.close()

    try:
        with engine.connect() as conn:
            tracks = Counter(t for (t,) in conn.execute(text("SELECT track_id FROM tracks")))
            frames = Counter(f for (f,) in conn.execute(text("SELECT frame FROM detections")))
            visits = Counter(t for (t,) in conn.execute(text("SELECT track_id FROM zone_visits")))
            crossings = Counter(
                t for (t,) in conn.execute(text("SELECT track_id FROM line_crossings"))
            )
    finally:
        engine.dispose()
    assert tracks == visits == crossings == {1: 1, 2: 1, 3: 1}
    assert frames == {i: 3 for i in (0, 1, 2, 3, 4, 5, 8, 9)}
    runs = {r.id: r for r in list_runs(pg_url).rows}
    assert (runs[dead.run_id].status, runs[dead.run_id].reason) == (
        "lost",
        "shard-1 on 10.0.0.8 died: gone",
    )
    assert runs[dead.run_id].ended_at is not None
    assert (runs[survivor.run_id].status, runs[survivor.run_id].reason) == ("finished", None)


def test_a_database_nothing_answers_at_stops_the_resume_in_one_line_and_the_marking_is_told(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    with pytest.raises(SinkError, match=r"cannot read what .* holds of cameras cam to resume"):
        stored_rows(url, "% (cluster abc run %", ["cam"])
    mark_lost(url, tmp_path, "c.yaml (cluster abc run 1 on shard-1)", "shard-1 died")
    assert "cannot mark the runs of c.yaml (cluster abc run 1 on shard-1) lost" in caplog.text


def test_the_merged_summary_has_every_camera_and_names_each_shards_outputs() -> None:
    def shard(name: str, camera: str) -> tuple[ShardInfo, RunSummary]:
        stats = CameraStats(camera, f"{camera}.mp4", frames=5)
        summary = RunSummary({camera: stats}, 1.0, outputs=["video out/"], detector="cpu")
        return ShardInfo(name, "10.0.0.1", "ab" * 20, 1, ()), summary

    lost = {"c": CameraStats("c", "c.mp4", error="camera c: shard-2 died")}
    merged = merge_summaries(
        ["a", "b", "c"],
        [shard("shard-0", "a"), shard("shard-1", "b")],
        elapsed_s=2.0,
        setup_s=0.5,
        unreported=lost,
    )
    assert list(merged.cameras) == ["a", "b", "c"]
    assert merged.outputs == ["shard-0 on 10.0.0.1: video out/", "shard-1 on 10.0.0.1: video out/"]
    assert merged.detector == "cpu"
    assert not merged.ok and merged.frames == 10


def test_a_cluster_run_pointed_at_another_programs_database_refuses_it_and_changes_nothing(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'theirs.db'}"
    theirs = create_engine(url)
    with theirs.begin() as conn:
        conn.execute(text("CREATE TABLE detections (body TEXT)"))
    try:
        with pytest.raises(SinkError, match="its detections table is not this pipeline's"):
            prepare_database(url)  # it made the pipeline's tables beside theirs
        assert inspect(theirs).get_table_names() == ["detections"]
    finally:
        theirs.dispose()


def test_a_cluster_run_makes_its_sqlite_database_s_folder_as_the_sql_sink_does(
    tmp_path: Path,
) -> None:
    database = tmp_path / "new" / "runs" / "det.db"
    prepare_database(f"sqlite:///{database}")
    engine = create_engine(f"sqlite:///{database}")
    try:
        assert "detections" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_a_cluster_run_whose_sqlite_folder_cannot_be_made_says_so_in_one_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "taken").write_text("a file where the database's folder would go")
    url = f"sqlite:///{tmp_path / 'taken' / 'runs' / 'det.db'}"
    with pytest.raises(SinkError) as info:
        prepare_database(url)
    assert str(info.value).startswith("sql sink: cannot open database ")
    assert "\n" not in str(info.value)
