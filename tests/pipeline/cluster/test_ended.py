"""A shard's tally of its cameras' streams: what a database stores of each (its last frame
with boxes, its tracks, zone visits and line crossings) and its end, whatever sinks run."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from pipeline.cluster.ended import Ended, StreamTally
from pipeline.cluster.resume import stored_rows
from pipeline.types import FrameResult, StreamEnd, TrackEvent, ZoneEvent
from sinks.sql.sink import SqlSink
from tests.pipeline.cluster.test_resume import crossing, visit
from tests.sinks.sql.builders import LABELS, T0, boxes, frame_result, summary
from tests.sinks.sql.conftest import pg_schema, skip_without_pg

FRAMES = 10
ENDS = {4: (1,), 7: (2,)}
"""The tracks that end at each frame (each with a zone visit and a line crossing)."""


def result(camera: str, i: int) -> FrameResult:
    """Frame `i` of `camera`: boxes up to frame 5, none after; tracks 1 and 2 end at frames
    4 and 7, each leaving the zone and crossing the line; track 3 enters the zone at 8."""
    events = tuple(TrackEvent("ended", summary(camera, t, 0, i)) for t in ENDS.get(i, ()))
    scene = [a for t in ENDS.get(i, ()) for a in (visit(camera, t, 0, i), crossing(camera, t, i))]
    if i == 8:
        scene.append(ZoneEvent("entered", camera, "door", 3, 1, 8, T0 + 8, 8, T0 + 8))
    r = frame_result(camera, i, T0 + i, boxes(i) if i <= 5 else [], events)
    return dataclasses.replace(r, analytics=tuple(scene))


def end_of(camera: str, error: str | None = None) -> StreamEnd:
    """The stream's end: it closes track 3 and its visit."""
    track = (TrackEvent("ended", summary(camera, 3, 8, FRAMES - 1)),)
    return StreamEnd(camera, FRAMES, track, error, (visit(camera, 3, 8, FRAMES, at_end=True),))


def test_the_tally_counts_a_stream_as_a_database_stores_it_and_tells_its_end() -> None:
    told: dict[str, Ended] = {}
    tally = StreamTally(told.__setitem__)
    for i in range(FRAMES):
        tally.write(result("a", i))
        tally.write(result("b", i))
    assert told == {}  # no stream ended yet
    tally.end(end_of("a", error="cannot decode frame 10"))

    assert told == {"a": Ended(FRAMES, "cannot decode frame 10", last_boxed=5, tracks=3, scene=5)}


@pytest.fixture
def pg_url() -> Iterator[str]:
    skip_without_pg()
    with pg_schema() as url:
        yield url


def test_a_tallied_stream_is_stored_only_once_the_database_has_every_row_of_it(
    pg_url: str,
) -> None:
    sql = SqlSink(pg_url, LABELS, run_config="c.yaml (cluster abc run 1 on shard-1)")
    told: dict[str, Ended] = {}
    tally = StreamTally(told.__setitem__)
    for camera in ("whole", "short"):
        for i in range(FRAMES):
            r = result(camera, i)
            tally.write(r)
            # "short" lost the batch of track 2 (its row, visit and crossing) with its shard
            sql.write(r if (camera, i) != ("short", 7) else FrameResult(r.frame, r.detections))
        tally.end(end_of(camera))
        sql.end(end_of(camera))
    sql.close()

    stored = stored_rows(pg_url, "% (cluster abc run %", ["whole", "short"])
    assert told["whole"].stored_in(stored["whole"])
    assert not told["short"].stored_in(stored["short"])
