"""`SceneAnalyzer` on synthetic tracks: known paths through known zones and lines.

Frames are 200x100 pixels at 10 frames a second; a track is a 10x10 box whose bottom
centre (the default anchor) is the point a test places.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pytest

from analytics import Line, SceneAnalyzer, SceneRules, Zone
from pipeline.types import (
    AnalyticsEvent,
    Detections,
    Frame,
    FrameResult,
    LineCrossing,
    TrackEvent,
    TrackSummary,
    ZoneEvent,
    ZoneOccupancy,
)

W, H, FPS = 200, 100, 10.0
IMAGE = np.zeros((H, W, 3), np.uint8)
T0 = 1_800_000_000.0
# 0.05 of the diagonal of 200x100: 11.18 px
RULES = SceneRules(
    anchor=(0.5, 1.0), line_hysteresis=0.05, min_frames=3, occupancy_period_s=None, leave_frames=3
)
SQUARE = Zone("square", ((0.25, 0.2), (0.5, 0.2), (0.5, 0.8), (0.25, 0.8)))  # x 50-100, y 20-80
ACROSS = Line("across", (0.5, 0.0), (0.5, 1.0))  # x = 100, drawn downwards


def frame(index: int) -> Frame:
    return Frame("cam", index, pts=index / FPS, wall_time=T0 + index, image=IMAGE)


def result(
    index: int,
    tracks: Mapping[int, tuple[float, float]],
    labels: dict[int, int] | None = None,
    ended: Sequence[int] = (),
) -> FrameResult:
    """Frame `index` with a box per track, its bottom centre at the given (x, y)."""
    ids = sorted(tracks)
    xyxy = [[x - 5, y - 10, x + 5, y] for x, y in (tracks[t] for t in ids)]
    dets = Detections(
        xyxy=np.array(xyxy, np.float32).reshape(-1, 4),
        score=np.full(len(ids), 0.9, np.float32),
        label=np.array([(labels or {}).get(t, 1) for t in ids], np.int64),
        track_id=np.array(ids, np.int64),
    )
    events = tuple(TrackEvent("ended", summary(t, index)) for t in ended)
    return FrameResult(frame(index), dets, events)


def summary(track_id: int, index: int) -> TrackSummary:
    box = (0.0, 0.0, 1.0, 1.0)
    return TrackSummary("cam", track_id, 1, 0, index, T0, T0 + index, index + 1, 0.9, box, box)


def run(
    analyzer: SceneAnalyzer, path: Sequence[Mapping[int, tuple[float, float]]], start: int = 0
) -> list[AnalyticsEvent]:
    events: list[AnalyticsEvent] = []
    for i, tracks in enumerate(path, start):
        events += analyzer.update(result(i, tracks))
    return events


def walk(track: int, xs: Sequence[float], y: float = 50.0) -> list[dict[int, tuple[float, float]]]:
    return [{track: (x, y)} for x in xs]


def of(kind: type, events: Sequence[AnalyticsEvent]) -> list:
    return [e for e in events if isinstance(e, kind)]


def test_a_track_walking_through_a_zone_enters_after_min_frames_and_leaves_with_its_dwell() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    # frames 0-1 outside, 2-9 inside (x 60..95), 10-14 outside
    xs = [30, 40, 60, 65, 70, 75, 80, 85, 90, 95, 110, 120, 130, 140, 150]
    events = of(ZoneEvent, run(analyzer, walk(7, xs)))
    assert [(e.kind, e.frame) for e in events] == [("entered", 4), ("left", 12)]
    entered, left = events
    assert (entered.entered_frame, entered.entered_time) == (2, T0 + 2)
    assert entered.dwell_s == pytest.approx(0.2)
    # inside from frame 2 to frame 9: 0.7 s of stream time
    assert (left.entered_frame, left.dwell_s, left.at_stream_end) == (2, pytest.approx(0.7), False)
    assert (left.zone_id, left.track_id, left.label, left.camera_id) == ("square", 7, 1, "cam")


def test_a_track_inside_for_fewer_than_min_frames_never_enters() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    events = run(analyzer, walk(3, [30, 60, 70, 110, 120, 130, 140]))
    assert events == []


def test_entering_counts_min_frames_seen_inside_across_misses_shorter_than_leave_frames() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)  # min_frames 3, leave_frames 3
    inside: dict[int, tuple[float, float]] = {7: (60.0, 50.0)}
    missed: dict[int, tuple[float, float]] = {}
    # inside on frames 0, 3 and 5, not detected on 1-2 and 4 (2 < 3 frames in a row)
    path = [inside, missed, missed, inside, missed, inside, inside]
    events = of(ZoneEvent, run(analyzer, path))
    # entered on its 3rd frame inside, the visit dated from its first
    assert [(e.kind, e.frame, e.entered_frame) for e in events] == [("entered", 5, 0)]
    assert events[0].dwell_s == pytest.approx(0.5)


def test_entering_starts_counting_again_after_a_frame_seen_outside() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    # a box flickering across the zone's right edge (x = 100): never 3 frames inside
    # without one outside between them, however many frames inside in all
    flicker = walk(7, [99, 99, 101, 99, 99, 101, 99, 101, 99, 99, 101])
    assert of(ZoneEvent, run(analyzer, flicker)) == []
    # then inside on 3 frames: entered, dated from the first of them
    events = of(ZoneEvent, run(analyzer, walk(7, [99, 99, 99]), start=11))
    assert [(e.kind, e.frame, e.entered_frame) for e in events] == [("entered", 13, 11)]


def test_entering_starts_counting_again_after_leave_frames_missed() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    inside: dict[int, tuple[float, float]] = {7: (60.0, 50.0)}
    missed: dict[int, tuple[float, float]] = {}
    # inside on 0-1, missed on 2-4 (3 frames, leave_frames), inside again from 5
    path = [inside, inside, missed, missed, missed, inside, inside, inside]
    events = of(ZoneEvent, run(analyzer, path))
    assert [(e.kind, e.frame, e.entered_frame) for e in events] == [("entered", 7, 5)]


def test_jitter_at_a_zone_edge_does_not_make_a_visit_leave_and_enter_again() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    # in for 4 frames, then alternating out/in across x = 100 (never 3 frames out in a row)
    xs = [90, 90, 90, 90, 101, 99, 101, 101, 99, 101, 99, 99, 101, 101, 101]
    events = of(ZoneEvent, run(analyzer, walk(1, xs)))
    assert [(e.kind, e.frame) for e in events] == [("entered", 2), ("left", 14)]
    assert events[1].dwell_s == pytest.approx(1.1)  # frames 0 to 11, the last inside


def test_crossing_a_line_names_its_direction_and_sides() -> None:
    line = Line("door", (0.0, 0.5), (1.0, 0.5), left_to_right="in", right_to_left="out")
    analyzer = SceneAnalyzer("cam", [], [line], RULES)
    # drawn left to right at y = 50: left is above. Down through it, then back up.
    down = [{4: (100, y)} for y in (20, 30, 40, 55, 70, 80)]
    up = [{4: (100, y)} for y in (70, 45, 30, 20)]
    crossings = of(LineCrossing, run(analyzer, down + up))
    assert [(c.direction, c.from_side, c.to_side, c.frame) for c in crossings] == [
        ("in", "left", "right", 4),  # y 70: the first point more than 11.18 px below
        ("out", "right", "left", 8),  # y 30: the first point more than 11.18 px above
    ]
    assert (crossings[0].line_id, crossings[0].track_id, crossings[0].time) == ("door", 4, T0 + 4)


def test_default_direction_names_follow_the_sides_of_the_line_drawn_downwards() -> None:
    analyzer = SceneAnalyzer("cam", [], [ACROSS], RULES)
    # walking down the screen along x = 100, one's left is the right of the picture
    crossings = of(LineCrossing, run(analyzer, walk(1, [150, 130, 70, 50])))
    assert [(c.direction, c.from_side, c.to_side) for c in crossings] == [
        ("left_to_right", "left", "right")
    ]


def test_jitter_around_a_line_counts_one_crossing() -> None:
    analyzer = SceneAnalyzer("cam", [], [ACROSS], RULES)
    # crosses once, then wanders within 11 px of the line for ten frames
    xs = [60, 70, 80, 95, 105, 115, 109, 92, 110, 90, 108, 93, 111, 120, 130]
    crossings = of(LineCrossing, run(analyzer, walk(2, xs)))
    assert [(c.from_side, c.frame) for c in crossings] == [("right", 5)]


def test_touching_the_line_and_turning_back_is_no_crossing() -> None:
    analyzer = SceneAnalyzer("cam", [], [ACROSS], RULES)
    xs = [40, 60, 80, 95, 100, 104, 110, 96, 80, 60]  # never more than 11.18 px past x=100
    assert run(analyzer, walk(2, xs)) == []


def test_a_track_that_walks_round_the_end_of_a_line_does_not_cross_it() -> None:
    short = Line("short", (0.5, 0.0), (0.5, 0.4))  # x = 100 for y 0 to 40
    analyzer = SceneAnalyzer("cam", [], [short], RULES)
    below = walk(1, [50, 80, 120, 150], y=80)  # passes x = 100 at y = 80, past the end
    through = walk(2, [150, 120, 80, 50], y=20)
    crossings = of(LineCrossing, run(analyzer, below + through))
    assert [c.track_id for c in crossings] == [2]


def test_a_track_first_seen_in_the_band_around_a_line_has_no_side_until_clear_of_it() -> None:
    analyzer = SceneAnalyzer("cam", [], [ACROSS], RULES)
    # first seen 5 px left of the line (the right of the picture is the line's left): no
    # side yet, so stepping out to x 120 is no crossing; going over to x 60 is one
    crossings = of(LineCrossing, run(analyzer, walk(1, [95, 120, 140, 60])))
    assert [(c.from_side, c.to_side, c.frame) for c in crossings] == [("left", "right", 3)]


def test_tracks_inside_when_the_stream_ends_leave_flagged_at_stream_end() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    path = [{1: (60, 50), 2: (70, 50)}] * 5 + [{1: (60, 50)}] * 2  # 2 stops being detected
    run(analyzer, path)
    closed = analyzer.finish()
    left = of(ZoneEvent, closed)
    assert [(e.kind, e.track_id, e.at_stream_end, e.frame) for e in left] == [
        ("left", 1, True, 6),
        ("left", 2, True, 6),
    ]
    assert left[0].dwell_s == pytest.approx(0.6)
    assert left[1].dwell_s == pytest.approx(0.4)  # to its last frame inside, frame 4
    occupancy = of(ZoneOccupancy, closed)
    assert [(o.zone_id, o.counts, o.total) for o in occupancy] == [("square", (), 0)]
    assert analyzer.finish() == ()  # nothing is closed twice


def test_a_track_the_tracker_ends_inside_a_zone_leaves_it_then() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    run(analyzer, [{5: (60, 50)}] * 4)
    events = analyzer.update(result(9, {}, ended=[5]))
    left = of(ZoneEvent, events)
    assert [(e.kind, e.frame, e.at_stream_end) for e in left] == [("left", 9, False)]
    assert left[0].dwell_s == pytest.approx(0.3)
    assert analyzer.finish() == ()


def test_a_dwell_alert_is_sent_once_per_visit() -> None:
    zone = Zone("bay", SQUARE.polygon, dwell_alert_s=1.0)
    analyzer = SceneAnalyzer("cam", [zone], [], RULES)
    events = of(ZoneEvent, run(analyzer, [{1: (60, 50)}] * 30))
    dwell = [e for e in events if e.kind == "dwell"]
    assert [(e.frame, e.dwell_s) for e in dwell] == [(11, pytest.approx(1.1))]


def test_zones_and_lines_count_only_their_labels() -> None:
    zone = Zone("cars", SQUARE.polygon, labels=frozenset({3}))
    line = Line("cars", ACROSS.a, ACROSS.b, labels=frozenset({3}))
    analyzer = SceneAnalyzer("cam", [zone], [line], RULES)
    events: list[AnalyticsEvent] = []
    for i, x in enumerate([60, 65, 70, 75, 130, 140]):
        events += analyzer.update(result(i, {1: (x, 50), 2: (x, 60)}, labels={1: 1, 2: 3}))
    assert {e.track_id for e in of(ZoneEvent, events)} == {2}
    assert [c.track_id for c in of(LineCrossing, events)] == [2]


def test_occupancy_is_sent_on_change_with_counts_per_label() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    labels = {1: 1, 2: 1, 3: 2}
    path = [
        {1: (60, 50), 2: (70, 50), 3: (80, 50)},  # frames 0-2: all enter at frame 2
        {1: (60, 50), 2: (70, 50), 3: (80, 50)},
        {1: (60, 50), 2: (70, 50), 3: (80, 50)},
        {1: (60, 50), 2: (70, 50), 3: (80, 50)},  # frame 3: no change
        {1: (60, 50), 2: (150, 50), 3: (80, 50)},  # 2 outside from frame 4, leaves at 6
        {1: (60, 50), 2: (150, 50), 3: (80, 50)},
        {1: (60, 50), 2: (150, 50), 3: (80, 50)},
    ]
    events: list[AnalyticsEvent] = []
    for i, tracks in enumerate(path):
        events += analyzer.update(result(i, tracks, labels=labels))
    occupancy = of(ZoneOccupancy, events)
    assert [(o.frame, o.counts, o.total) for o in occupancy] == [
        (2, ((1, 2), (2, 1)), 3),
        (6, ((1, 1), (2, 1)), 2),
    ]


def test_a_track_lost_inside_leaves_after_leave_frames_and_starts_a_new_visit_when_found() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    inside = {1: (60.0, 50.0)}
    # frames 0-3 inside (enters at 2); 4-9 undetected (the tracker keeps it alive);
    # 10-12 found again, inside, under its own id
    path: list[dict[int, tuple[float, float]]] = [inside] * 4 + [{}] * 6 + [inside] * 3
    events = run(analyzer, path)
    zone_events = of(ZoneEvent, events)
    # last seen inside on frame 3: not seen on the next 3 (leave_frames) detected frames
    assert [(e.kind, e.frame, e.entered_frame) for e in zone_events] == [
        ("entered", 2, 0),
        ("left", 6, 0),
        ("entered", 12, 10),
    ]
    left = zone_events[1]
    assert (left.last_frame, left.last_time, left.at_stream_end) == (3, T0 + 3, False)
    assert left.dwell_s == pytest.approx(0.3)  # frames 0 to 3
    occupancy = [(o.frame, o.total) for o in of(ZoneOccupancy, events)]
    assert occupancy == [(2, 1), (6, 0), (12, 1)]  # at the zone.entered and zone.left


def test_a_track_undetected_for_fewer_than_leave_frames_stays_in_its_visit() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    inside = {1: (60.0, 50.0)}
    path: list[dict[int, tuple[float, float]]] = [inside] * 4 + [{}] * 2 + [inside] * 3
    events = run(analyzer, path)
    assert [(e.kind, e.frame) for e in of(ZoneEvent, events)] == [("entered", 2)]
    assert [(o.frame, o.total) for o in of(ZoneOccupancy, events)] == [(2, 1)]
    (left,) = of(ZoneEvent, analyzer.finish())
    assert (left.entered_frame, left.last_frame, left.at_stream_end) == (0, 8, True)


def test_leave_frames_bridges_a_longer_gap_in_detection() -> None:
    rules = SceneRules((0.5, 1.0), 0.05, min_frames=3, occupancy_period_s=None, leave_frames=5)
    analyzer = SceneAnalyzer("cam", [SQUARE], [], rules)
    inside = {1: (60.0, 50.0)}
    # missed on frames 4-7 (4 < 5): one visit; then outside from frame 10, left at 14
    path: list[dict[int, tuple[float, float]]] = (
        [inside] * 4 + [{}] * 4 + [inside] * 2 + [{1: (150.0, 50.0)}] * 6
    )
    events = of(ZoneEvent, run(analyzer, path))
    assert [(e.kind, e.frame, e.last_seen[0]) for e in events] == [
        ("entered", 2, 2),
        ("left", 14, 9),
    ]


def test_a_track_that_walks_out_leaves_with_the_last_frame_it_was_inside() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    events = of(ZoneEvent, run(analyzer, walk(7, [60, 65, 70, 75, 120, 130, 140])))
    assert [(e.kind, e.frame, e.last_seen) for e in events] == [
        ("entered", 2, (2, T0 + 2)),
        ("left", 6, (3, T0 + 3)),
    ]


def test_occupancy_is_also_sent_every_period_of_stream_time() -> None:
    rules = SceneRules((0.5, 1.0), 0.05, 3, occupancy_period_s=1.0, leave_frames=3)
    analyzer = SceneAnalyzer("cam", [SQUARE], [], rules)
    occupancy = of(ZoneOccupancy, run(analyzer, [{1: (60, 50)}] * 25))
    assert [(o.frame, o.total) for o in occupancy] == [(2, 1), (10, 1), (20, 1)]


def test_pixel_and_fraction_coordinates_mean_the_same_zone() -> None:
    pixels = Zone("px", ((50, 20), (100, 20), (100, 80), (50, 80)), in_pixels=True)
    path = walk(1, [30, 60, 70, 80, 90, 120, 130, 140, 150])
    in_pixels = run(SceneAnalyzer("cam", [pixels], [], RULES), path)
    in_fractions = run(SceneAnalyzer("cam", [SQUARE], [], RULES), path)
    assert (
        [(e.kind, e.frame) for e in of(ZoneEvent, in_pixels)]
        == [(e.kind, e.frame) for e in of(ZoneEvent, in_fractions)]
        == [("entered", 3), ("left", 7)]
    )


def test_the_anchor_decides_where_an_object_is() -> None:
    path = [{1: (75, 88)}] * 4  # box y 78-88: its top centre is inside, its bottom is not
    bottom = run(SceneAnalyzer("cam", [SQUARE], [], RULES), path)
    top_rules = SceneRules((0.5, 0.0), 0.05, 3, None, 3)
    top = run(SceneAnalyzer("cam", [SQUARE], [], top_rules), path)
    assert of(ZoneEvent, bottom) == []
    assert [e.kind for e in of(ZoneEvent, top)] == ["entered"]


def test_zones_follow_a_change_of_frame_size() -> None:
    analyzer = SceneAnalyzer("cam", [SQUARE], [], RULES)
    run(analyzer, [{1: (60, 50)}] * 3)  # entered, 200x100
    big = np.zeros((200, 400, 3), np.uint8)  # the same point is now outside x 100-200
    events: list[AnalyticsEvent] = []
    for i in range(3, 6):
        dets = result(i, {1: (60, 50)}).detections
        events += analyzer.update(FrameResult(Frame("cam", i, i / FPS, T0 + i, big), dets))
    assert [(e.kind, e.frame) for e in of(ZoneEvent, events)] == [("left", 5)]
