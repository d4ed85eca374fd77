"""A drawing sink's counts and trails: taken from the frames' analytics and boxes, trails
bounded in length and in the tracks kept."""

from __future__ import annotations

import numpy as np

from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    LineCrossing,
    LineShape,
    SceneLayout,
    TrackEvent,
    TrackSummary,
    ZoneOccupancy,
    ZoneShape,
)
from sinks.scene_overlay import SceneOverlay

LAYOUT = SceneLayout(
    (ZoneShape("door", ((0.0, 0.0), (50.0, 0.0), (50.0, 50.0))),),
    (LineShape("gate", (60.0, 0.0), (60.0, 100.0), "west", "east"),),
    anchor=(0.5, 1.0),
)
IMAGE = np.zeros((100, 100, 3), np.uint8)


def result(
    index: int,
    boxes: dict[int, tuple[float, float, float, float]],
    analytics: tuple[LineCrossing | ZoneOccupancy, ...] = (),
    ended: tuple[int, ...] = (),
    detected: bool = True,
) -> FrameResult:
    ids = list(boxes)
    dets = Detections(
        xyxy=np.array([boxes[i] for i in ids], np.float32).reshape(-1, 4),
        score=np.full(len(ids), 0.9, np.float32),
        label=np.ones(len(ids), np.int64),
        track_id=np.array(ids, np.int64),
    )
    events = tuple(
        TrackEvent("ended", TrackSummary("c", t, 1, 0, index, 0, 0, 1, 0.9, (0,) * 4, (0,) * 4))
        for t in ended
    )
    return FrameResult(Frame("c", index, index / 10, 0.0, IMAGE), dets, events, detected, analytics)


def crossing(direction: str, track: int) -> LineCrossing:
    side = ("left", "right") if direction == "west" else ("right", "left")
    return LineCrossing("c", "gate", track, 1, direction, *side, frame=0, time=0.0)  # type: ignore[arg-type]


def test_counts_follow_the_latest_occupancy_and_add_up_crossings_per_direction() -> None:
    overlay = SceneOverlay(LAYOUT)
    assert overlay.view().occupancy == (0,) and overlay.view().crossings == ((0, 0),)
    overlay.update(result(0, {}, (ZoneOccupancy("c", "door", ((1, 2),), 0, 0.0),)))
    overlay.update(result(1, {}, (crossing("west", 1), crossing("west", 2))))
    overlay.update(result(2, {}, (crossing("east", 3),), detected=False))
    view = overlay.view()
    assert view.occupancy == (2,) and view.crossings == ((2, 1),)
    counts = overlay.counts(LabelMap(("background", "person")))
    assert counts == {
        "zones": [{"id": "door", "inside": 2, "by_label": {"person": 2}}],
        "lines": [{"id": "gate", "crossings": {"west": 2, "east": 1}}],
    }
    overlay.count((ZoneOccupancy("c", "door", (), 3, 0.0),))  # the stream's end
    assert overlay.view().occupancy == (0,)


def test_a_trail_follows_the_anchor_of_its_box_on_detected_frames_only() -> None:
    overlay = SceneOverlay(LAYOUT, trail_points=5)
    overlay.update(result(0, {4: (10, 10, 20, 30)}))
    overlay.update(result(1, {4: (12, 10, 22, 31)}))
    overlay.update(result(2, {4: (12, 10, 22, 31)}, detected=False))
    ((track, points),) = overlay.view().trails
    assert track == 4 and points.tolist() == [[15, 30], [17, 31]]


def test_trails_are_bounded_in_length_and_in_tracks_kept() -> None:
    overlay = SceneOverlay(LAYOUT, trail_points=5)
    for i in range(40):  # a new track every frame, each seen once, and track 1 throughout
        overlay.update(result(i, {1: (i, 0, i + 10, 10), 100 + i: (0, 0, 10, 10)}))
        assert overlay.tracks_kept <= 5 + 2
    trails = dict(overlay.view().trails)
    assert trails[1].tolist() == [[x, 10] for x in range(40, 45)]  # the last 5, in order
    assert set(trails) == {1, 139}  # only the tracks on the last frame are drawn


def test_an_ended_track_loses_its_trail_and_a_stream_end_clears_them() -> None:
    overlay = SceneOverlay(LAYOUT)
    overlay.update(result(0, {1: (0, 0, 10, 10), 2: (20, 0, 30, 10)}))
    overlay.update(result(1, {1: (0, 0, 10, 10)}, ended=(2,)))
    assert overlay.tracks_kept == 1
    overlay.end()
    assert overlay.tracks_kept == 0 and overlay.view().trails == ()


def test_a_layout_without_an_anchor_keeps_no_trails() -> None:
    overlay = SceneOverlay(SceneLayout(LAYOUT.zones, LAYOUT.lines))
    overlay.update(result(0, {1: (0, 0, 10, 10)}))
    assert overlay.tracks_kept == 0 and overlay.view().trails == ()
