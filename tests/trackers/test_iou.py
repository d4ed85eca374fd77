"""Behaviour of the online IoU tracker on hand-built scenes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou as torch_box_iou

from pipeline.types import UNTRACKED, Detections, Frame
from trackers import IoUTracker
from trackers import iou as iou_module
from trackers.iou import overlapping_pairs

CAM = "cam0"
Box = tuple[float, float, float, float]
Row = tuple[Box, float, int]  # (box, score, label)


def make_frame(index: int, camera_id: str = CAM) -> Frame:
    return Frame(
        camera_id=camera_id,
        index=index,
        pts=index / 25,
        wall_time=1000.0 + index / 25,
        image=np.zeros((4, 4, 3), np.uint8),
    )


def make_dets(rows: Sequence[Row]) -> Detections:
    if not rows:
        return Detections.empty()
    return Detections(
        xyxy=np.array([r[0] for r in rows], np.float32),
        score=np.array([r[1] for r in rows], np.float32),
        label=np.array([r[2] for r in rows], np.int64),
    )


def walker(t: int, x0: float = 10.0, y0: float = 10.0, dx: float = 2.0) -> Box:
    """A 20x40 box moving `dx` pixels right per frame."""
    x = x0 + dx * t
    return (x, y0, x + 20.0, y0 + 40.0)


def run(
    tracker: IoUTracker, scene: Sequence[Sequence[Row]], start: int = 0, step: int = 1
) -> list[list[int]]:
    """Feed frames `start, start+step, ...`; return each frame's track ids."""
    return [
        tracker.update(make_dets(rows), make_frame(start + i * step)).track_id.tolist()
        for i, rows in enumerate(scene)
    ]


def iou(a: Sequence[float], b: Sequence[float]) -> float:
    return float(torch_box_iou(torch.tensor([a]), torch.tensor([b]))[0, 0])


def kinds(tracker: IoUTracker) -> list[tuple[str, int]]:
    return [(e.kind, e.track.track_id) for e in tracker.pop_events()]


# --- confirmation ------------------------------------------------------------------------


def test_slow_mover_gets_one_id_after_t_min_frames_and_keeps_it() -> None:
    tracker = IoUTracker(CAM, t_min=3)
    ids = run(tracker, [[(walker(t), 0.9, 0)] for t in range(8)])
    assert ids == [[-1], [-1]] + [[1]] * 6
    events = tracker.pop_events()
    assert [e.kind for e in events] == ["started"]
    started = events[0].track
    assert (started.track_id, started.camera_id, started.label) == (1, CAM, 0)
    assert (started.first_frame, started.last_frame, started.frames) == (0, 2, 3)
    assert tracker.pop_events() == []


def test_track_shorter_than_t_min_never_gets_an_id_even_with_gap_bridging() -> None:
    tracker = IoUTracker(CAM, t_min=3, max_age=30)
    # Two detections, a miss, two more at the same place: tentative tracks do not bridge
    # gaps, so neither run of two ever reaches t_min=3.
    scene = [[(walker(0), 0.9, 0)], [(walker(1), 0.9, 0)], [], [(walker(3), 0.9, 0)]]
    scene.append([(walker(4), 0.9, 0)])
    assert run(tracker, [*scene, [], []]) == [[-1], [-1], [], [-1], [-1], [], []]
    assert tracker.pop_events() == []
    assert tracker.finish() == []
    # No id was used up: the next track to be confirmed gets 1.
    assert run(tracker, [[(walker(t), 0.9, 0)] for t in range(3)])[-1] == [1]


def test_track_never_reaching_sigma_h_gets_no_id_and_consumes_none() -> None:
    tracker = IoUTracker(CAM, sigma_h=0.5, t_min=2)
    weak = [[(walker(t), 0.4, 0)] for t in range(5)]
    assert run(tracker, weak) == [[-1]] * 5
    strong = [[(walker(t, y0=200.0), 0.8, 0)] for t in range(3)]
    assert run(tracker, strong, start=5)[-1] == [1]
    assert kinds(tracker) == [("started", 1)]


def test_one_high_score_anywhere_in_the_track_confirms_it() -> None:
    tracker = IoUTracker(CAM, sigma_h=0.5, t_min=3)
    scores = [0.3, 0.9, 0.3, 0.3]
    ids = run(tracker, [[(walker(t), s, 0)] for t, s in enumerate(scores)])
    assert ids == [[-1], [-1], [1], [1]]
    (event,) = tracker.pop_events()
    assert event.track.best_score == pytest.approx(0.9)
    assert event.track.best_box == walker(1)


def test_t_min_1_confirms_on_the_first_confident_detection() -> None:
    tracker = IoUTracker(CAM, t_min=1, sigma_h=0.5)
    ids = run(tracker, [[(walker(0), 0.9, 0), (walker(0, y0=300.0), 0.3, 0)]])
    assert ids == [[1, -1]]
    assert kinds(tracker) == [("started", 1)]


# --- gap bridging ------------------------------------------------------------------------


def test_one_frame_miss_keeps_the_id() -> None:
    tracker = IoUTracker(CAM, t_min=2)
    scene = [[(walker(t), 0.9, 0)] for t in range(3)] + [[]]
    scene += [[(walker(t), 0.9, 0)] for t in range(4, 7)]
    assert run(tracker, scene) == [[-1], [1], [1], [], [1], [1], [1]]
    assert kinds(tracker) == [("started", 1)]
    (ended,) = tracker.finish()
    assert (ended.track.first_frame, ended.track.last_frame, ended.track.frames) == (0, 6, 6)


def test_one_frame_miss_ends_the_track_with_max_age_0_as_in_the_paper() -> None:
    tracker = IoUTracker(CAM, t_min=2, max_age=0)
    first = [[(walker(0), 0.6, 0)], [(walker(1), 0.95, 0)], [(walker(2), 0.7, 0)]]
    second = [[(walker(4), 0.8, 0)], [(walker(5), 0.9, 0)]]
    ids = run(tracker, [*first, [], *second])
    assert ids == [[-1], [1], [1], [], [-1], [2]]

    events = tracker.pop_events()
    assert [(e.kind, e.track.track_id) for e in events] == [
        ("started", 1),
        ("ended", 1),
        ("started", 2),
    ]
    ended = events[1].track
    assert (ended.first_frame, ended.last_frame, ended.frames) == (0, 2, 3)
    assert ended.first_time == make_frame(0).wall_time
    assert ended.last_time == make_frame(2).wall_time
    assert ended.best_score == pytest.approx(0.95)
    assert ended.best_box == walker(1)
    assert ended.last_box == walker(2)
    restarted = events[2].track
    assert (restarted.first_frame, restarted.last_frame, restarted.frames) == (4, 5, 2)


def test_gap_is_bridged_along_the_walking_direction() -> None:
    # 6 px/frame with a 20 px wide box: after 4 missed frames the last box no longer
    # overlaps the person at all; only the predicted one does.
    tracker = IoUTracker(CAM, t_min=2)
    hidden = range(10, 14)
    ids = run(tracker, [[] if t in hidden else [(walker(t, dx=6.0), 0.9, 0)] for t in range(20)])
    assert iou(walker(9, dx=6.0), walker(14, dx=6.0)) == 0.0
    assert ids == [[-1]] + [[] if t in hidden else [1] for t in range(1, 20)]


def test_track_ends_after_max_age_frames_without_detection() -> None:
    tracker = IoUTracker(CAM, t_min=2, max_age=5)
    scene: list[list[Row]] = [[(walker(t), 0.9, 0)] for t in range(4)]
    run(tracker, [*scene, *[[]] * 5])  # frames 4..8: 5 missed frames, still alive
    assert kinds(tracker) == [("started", 1)]
    assert run(tracker, [[]], start=9) == [[]]  # 6 frames since the last detection
    events = tracker.pop_events()
    assert [(e.kind, e.track.track_id) for e in events] == [("ended", 1)]
    summary = events[0].track
    # The summary covers the detections only, not the frames bridged.
    assert (summary.first_frame, summary.last_frame, summary.frames) == (0, 3, 4)
    assert summary.last_box == walker(3)
    assert summary.last_time == make_frame(3).wall_time
    # The person comes back too late: a new track and a new id.
    assert run(tracker, [[(walker(t), 0.9, 0)] for t in range(10, 12)], start=10) == [[-1], [2]]


def test_finish_ends_tracks_that_are_bridging_a_gap() -> None:
    tracker = IoUTracker(CAM, t_min=2, max_age=10)
    run(tracker, [[(walker(0), 0.9, 0)], [(walker(1), 0.9, 0)], [], []])
    events = tracker.finish()
    assert [(e.kind, e.track.track_id) for e in events] == [("started", 1), ("ended", 1)]
    assert events[1].track.last_frame == 1


def test_lost_track_is_not_matched_to_a_different_class() -> None:
    tracker = IoUTracker(CAM, t_min=1, max_age=10)
    ids = run(tracker, [[(walker(0), 0.9, 0)], [], [(walker(2), 0.9, 1)]])
    assert ids == [[1], [], [2]]


# --- assignment --------------------------------------------------------------------------


def test_crossing_people_keep_their_ids() -> None:
    # A walks right, B walks left, 10 px lower; their boxes overlap for several frames.
    a = [walker(t, x0=0.0, y0=0.0, dx=2.0) for t in range(30)]
    b = [walker(t, x0=58.0, y0=10.0, dx=-2.0) for t in range(30)]
    # The scene must really test the assignment: at some frame each person's box overlaps
    # the other's previous box enough to match it.
    assert any(iou(a[t - 1], b[t]) >= 0.3 and iou(b[t - 1], a[t]) >= 0.3 for t in range(1, 30)), (
        "scene has no crossing"
    )

    tracker = IoUTracker(CAM, t_min=3)
    # B is listed first so that input order cannot hide a swap.
    ids = run(tracker, [[(b[t], 0.9, 0), (a[t], 0.9, 0)] for t in range(30)])
    b_id, a_id = ids[2]
    assert a_id != b_id and min(a_id, b_id) >= 1
    assert ids[2:] == [[b_id, a_id]] * 28
    assert [e.kind for e in tracker.pop_events()] == ["started", "started"]


def test_people_crossing_head_on_keep_their_ids_through_full_overlap() -> None:
    # Same height, opposite directions: at the crossing each box lands exactly where the
    # other person was a frame earlier, so matching by last box would swap them; only
    # their velocities tell them apart.
    a = [walker(t, x0=0.0, y0=0.0, dx=3.0) for t in range(40)]
    b = [walker(t, x0=117.0, y0=0.0, dx=-3.0) for t in range(40)]
    assert any(
        iou(a[t - 1], b[t]) > iou(a[t - 1], a[t]) and iou(b[t - 1], a[t]) > iou(b[t - 1], b[t])
        for t in range(1, 40)
    )
    tracker = IoUTracker(CAM, t_min=3)
    ids = run(tracker, [[(b[t], 0.9, 0), (a[t], 0.9, 0)] for t in range(40)])
    assert ids[2:] == [ids[2]] * 38 and sorted(ids[2]) == [1, 2]


def test_person_hidden_behind_another_gets_the_same_id_back() -> None:
    a = [walker(t, x0=0.0, y0=0.0, dx=3.0) for t in range(40)]
    b = [walker(t, x0=117.0, y0=5.0, dx=-3.0) for t in range(40)]
    hidden = range(16, 24)  # A is behind B: the detector sees B only
    scene = [[(b[t], 0.9, 0)] + ([] if t in hidden else [(a[t], 0.9, 0)]) for t in range(40)]
    tracker = IoUTracker(CAM, t_min=3)
    ids = run(tracker, scene)
    b_id, a_id = ids[2]
    assert all(frame_ids == [b_id] for t, frame_ids in enumerate(ids) if t in hidden)
    assert all(
        frame_ids == [b_id, a_id] for t, frame_ids in enumerate(ids[2:], 2) if t not in hidden
    )
    assert [e.kind for e in tracker.pop_events()] == ["started", "started"]


def test_global_greedy_gives_the_best_overlap_to_each_track() -> None:
    # Track 1 (older) overlaps both new boxes; track 2 overlaps only the first one, well.
    # Matching in track order would let track 1 take the first box and break track 2.
    t1, t2 = (0.0, 0.0, 20.0, 40.0), (6.0, 0.0, 26.0, 40.0)
    d0, d1 = (5.0, 0.0, 25.0, 40.0), (-6.0, 0.0, 14.0, 40.0)
    assert iou(t1, d0) > iou(t1, d1) >= 0.3
    assert iou(t2, d0) > iou(t1, d0) and iou(t2, d1) < 0.3
    tracker = IoUTracker(CAM, t_min=1)
    assert run(tracker, [[(t1, 0.9, 0), (t2, 0.9, 0)], [(d0, 0.9, 0), (d1, 0.9, 0)]]) == [
        [1, 2],
        [2, 1],
    ]


def _random_scene(
    rng: np.random.Generator, n: int, labels: int = 2, field: float = 200.0
) -> list[Row]:
    xy = rng.random((n, 2)) * field
    wh = rng.random((n, 2)) * 40 + 1
    return [
        (
            (float(p[0]), float(p[1]), float(p[0] + s[0]), float(p[1] + s[1])),
            0.9,
            int(rng.integers(labels)),
        )
        for p, s in zip(xy, wh, strict=True)
    ]


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("dense", [False, True])
def test_overlapping_pairs_are_the_same_class_pairs_over_the_threshold(
    seed: int, dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(iou_module, "DENSE_PAIRS", 0 if dense else 10**9)
    rng = np.random.default_rng(seed)
    tracks, dets = _random_scene(rng, 15, field=60), _random_scene(rng, 12, field=60)
    boxes = [box for box, _, _ in tracks]
    labels = [label for _, _, label in tracks]
    pairs = overlapping_pairs(boxes, labels, dets, 0.1)
    expected = torch_box_iou(
        torch.tensor(boxes, dtype=torch.float64),
        torch.tensor([b for b, _, _ in dets], dtype=torch.float64),
    ).numpy()
    expected *= np.array(labels)[:, None] == np.array([label for _, _, label in dets])
    rows, cols = np.nonzero(expected >= 0.1)
    assert len(rows) > 3  # the scene has overlaps to find
    assert sorted((t, d) for _, t, d in pairs) == list(
        zip(rows.tolist(), cols.tolist(), strict=True)
    )
    np.testing.assert_allclose(
        [-v for v, _, _ in sorted(pairs, key=lambda p: p[1:])], expected[rows, cols], atol=1e-9
    )


def test_crowds_are_tracked_the_same_whichever_way_ious_are_computed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(0)
    people = _random_scene(rng, 60, labels=1)
    speed = rng.normal(0, 2, (60, 2))
    scene = []
    for t in range(30):
        seen = rng.random(60) > 0.1
        scene.append(
            [
                ((b[0] + v[0] * t, b[1] + v[1] * t, b[2] + v[0] * t, b[3] + v[1] * t), 0.9, 0)
                for (b, _, _), v, s in zip(people, speed, seen, strict=True)
                if s
            ]
        )
    results = []
    for dense_pairs in (0, 10**9):
        monkeypatch.setattr(iou_module, "DENSE_PAIRS", dense_pairs)
        results.append(run(IoUTracker(CAM), scene))
    assert results[0] == results[1]
    assert max(max(ids) for ids in results[0]) >= 55  # people were tracked


# --- classes -----------------------------------------------------------------------------


def test_two_classes_at_the_same_place_never_share_a_track() -> None:
    tracker = IoUTracker(CAM, t_min=2)
    scene = [[(walker(t), 0.9, 0), (walker(t), 0.8, 1)] for t in range(4)]
    ids = run(tracker, scene)
    assert ids[0] == [-1, -1]
    assert ids[1][0] != ids[1][1] and min(ids[1]) >= 1
    assert all(frame_ids == ids[1] for frame_ids in ids[1:])
    labels = {e.track.track_id: e.track.label for e in tracker.pop_events()}
    assert labels == {ids[1][0]: 0, ids[1][1]: 1}


def test_class_change_breaks_the_track() -> None:
    tracker = IoUTracker(CAM, t_min=1, max_age=0)
    ids = run(tracker, [[(walker(0), 0.9, 0)], [(walker(1), 0.9, 1)]])
    assert ids == [[1], [2]]
    assert kinds(tracker) == [("started", 1), ("ended", 1), ("started", 2)]


# --- frame skipping ----------------------------------------------------------------------


def test_tracking_every_third_frame_keeps_ids_and_bridges_gaps_in_frames() -> None:
    # Detection runs on frames 0, 3, 6, ...: a walker moves 6 px between calls. Frames
    # 75-81 get no detection (3 calls): with velocity in pixels per frame the predicted
    # box is still on the person at frame 84, 12 frames after the last detection.
    frames = list(range(0, 120, 3))
    scene = [[] if 75 <= f <= 81 else [(walker(f), 0.9, 0)] for f in frames]
    assert iou(walker(72), walker(84)) < 0.3
    tracker = IoUTracker(CAM, t_min=3, max_age=15)
    ids = run(tracker, scene, step=3)
    assert ids == [[-1], [-1]] + [[] if 75 <= f <= 81 else [1] for f in frames[2:]]
    assert kinds(tracker) == [("started", 1)]


def test_max_age_counts_frames_not_calls() -> None:
    tracker = IoUTracker(CAM, t_min=2, max_age=12)
    run(tracker, [[(walker(f, dx=0.5), 0.9, 0)] for f in (0, 5, 10)], step=5)
    assert kinds(tracker) == [("started", 1)]
    run(tracker, [[], []], start=15, step=5)  # 10 frames since the last detection: alive
    assert tracker.pop_events() == []
    run(tracker, [[]], start=25)  # 15 frames: more than 12
    events = tracker.pop_events()
    assert [(e.kind, e.track.track_id, e.track.last_frame) for e in events] == [("ended", 1, 10)]


# --- lifecycle and API -------------------------------------------------------------------


def test_detections_below_sigma_l_stay_untracked_and_do_not_extend_tracks() -> None:
    tracker = IoUTracker(CAM, sigma_l=0.3, sigma_h=0.5, t_min=2, max_age=0)
    scene = [
        [(walker(0), 0.9, 0), (walker(0, y0=300.0), 0.2, 0)],
        [(walker(1), 0.9, 0), (walker(1, y0=300.0), 0.2, 0)],
        [(walker(2), 0.1, 0)],  # too weak: the track sees a miss and ends
    ]
    ids = run(tracker, scene)
    assert ids == [[-1, -1], [1, -1], [-1]]
    events = tracker.pop_events()
    assert [(e.kind, e.track.track_id) for e in events] == [("started", 1), ("ended", 1)]
    assert (events[1].track.last_frame, events[1].track.frames) == (1, 2)


def test_empty_frames_are_fine() -> None:
    tracker = IoUTracker(CAM, t_min=2)
    out = tracker.update(Detections.empty(), make_frame(0))
    assert len(out) == 0 and out.track_id.dtype == np.int64
    assert tracker.pop_events() == []
    # Empty frames while a track is alive, then after it ended.
    ids = run(tracker, [[(walker(1), 0.9, 0)], [(walker(2), 0.9, 0)], [], []], start=1)
    assert ids == [[-1], [1], [], []]
    assert [e.kind for e in tracker.finish()] == ["started", "ended"]
    assert tracker.finish() == []


def test_finish_ends_confirmed_tracks_and_forgets_tentative_ones() -> None:
    tracker = IoUTracker(CAM, t_min=3)
    scene = [[(walker(t), 0.9, 0)] for t in range(4)]
    scene[2].append((walker(0, y0=300.0), 0.9, 0))  # tentative: only 2 frames
    scene[3].append((walker(1, y0=300.0), 0.9, 0))
    run(tracker, scene)
    events = tracker.finish()  # "started" was never popped: it comes first
    assert [(e.kind, e.track.track_id) for e in events] == [("started", 1), ("ended", 1)]
    assert (events[1].track.last_frame, events[1].track.frames) == (3, 4)
    assert tracker.pop_events() == []

    # Usable again for a new stream (indices start over); ids continue.
    ids = run(tracker, [[(walker(t), 0.9, 0)] for t in range(3)])
    assert ids[-1] == [2]
    assert [e.kind for e in tracker.finish()] == ["started", "ended"]


def test_ids_never_repeat_after_reset() -> None:
    tracker = IoUTracker(CAM, t_min=1)
    assert run(tracker, [[(walker(0), 0.9, 0), (walker(0, y0=300.0), 0.9, 0)]]) == [[1, 2]]
    tracker.reset()
    assert tracker.pop_events() == []
    # The same person at the same place, right after the reset: a new track, a new id.
    assert run(tracker, [[(walker(0), 0.9, 0)]]) == [[3]]
    assert kinds(tracker) == [("started", 3)]
    assert tracker.finish() and tracker.pop_events() == []


def test_input_detections_are_not_mutated() -> None:
    tracker = IoUTracker(CAM, t_min=1)
    dets = make_dets([(walker(0), 0.9, 0), (walker(0, y0=300.0), 0.1, 2)])
    dets = dets.with_track_ids(np.array([7, 8], np.int64))
    before = [c.copy() for c in (dets.xyxy, dets.score, dets.label, dets.track_id)]
    out = tracker.update(dets, make_frame(0))
    assert out is not dets
    for col, old in zip((dets.xyxy, dets.score, dets.label, dets.track_id), before, strict=True):
        np.testing.assert_array_equal(col, old)
    np.testing.assert_array_equal(out.xyxy, dets.xyxy)
    np.testing.assert_array_equal(out.score, dets.score)
    np.testing.assert_array_equal(out.label, dets.label)
    assert out.track_id.tolist() == [1, UNTRACKED]  # 0.1 < sigma_h: never confirmed


def test_frames_from_another_camera_or_out_of_order_are_refused() -> None:
    tracker = IoUTracker(CAM)
    with pytest.raises(ValueError, match="one tracker per camera"):
        tracker.update(Detections.empty(), make_frame(0, camera_id="other"))
    tracker.update(Detections.empty(), make_frame(5))
    with pytest.raises(ValueError, match="increasing index order"):
        tracker.update(Detections.empty(), make_frame(5))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sigma_l": -0.1}, "sigma_l"),
        ({"sigma_l": 1.5, "sigma_h": 1.0}, "sigma_l"),
        ({"sigma_l": 0.6, "sigma_h": 0.5}, "sigma_h"),
        ({"sigma_h": 1.2}, "sigma_h"),
        ({"sigma_iou": 0.0}, "sigma_iou"),
        ({"sigma_iou": 1.01}, "sigma_iou"),
        ({"t_min": 0}, "t_min"),
        ({"t_min": 2.5}, "t_min"),
        ({"sigma_iou": float("nan")}, "sigma_iou"),
        ({"max_age": -1}, "max_age"),
        ({"max_age": 1.5}, "max_age"),
        ({"max_age": True}, "max_age"),
    ],
)
def test_invalid_parameters_raise(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        IoUTracker(CAM, **kwargs)  # type: ignore[arg-type]


def test_empty_camera_id_raises() -> None:
    with pytest.raises(ValueError, match="camera_id"):
        IoUTracker("")
