"""The tracker benchmark's input: noisy detections drawn from ground truth, and tiling."""

from __future__ import annotations

import numpy as np

from benchmarks.tracking_data import NoiseModel, Sequence, tiled


def walkers() -> Sequence:
    """Two people walking right for 20 frames of a 200x100 image."""
    rows = []
    for frame in range(1, 21):
        for person, y in ((1, 10.0), (2, 50.0)):
            x = 5.0 * frame
            rows.append([frame, person, x, y, x + 20.0, y + 30.0])
    return Sequence("walkers", np.array(rows), 20, 200, 100, 25.0)


QUIET = NoiseModel(
    jitter=0.0, miss=0.0, burst_rate=0.0, fp_rate=0.0, tp_score=(0.9, 0.0), score_floor=0.1
)


def test_noise_free_model_gives_back_every_ground_truth_box() -> None:
    seq = walkers()
    det = QUIET.apply(seq, seed=0)
    expected = seq.gt[np.lexsort((seq.gt[:, 1], seq.gt[:, 0]))]
    got = det[np.lexsort((det[:, 1], det[:, 0]))]
    np.testing.assert_array_equal(got[:, 0], expected[:, 0])
    np.testing.assert_array_equal(got[:, 1:5], expected[:, 2:6])
    np.testing.assert_allclose(got[:, 5], 0.9)


def test_same_seed_same_detections_and_other_seed_others() -> None:
    seq = walkers()
    noisy = NoiseModel()
    np.testing.assert_array_equal(noisy.apply(seq, 3), noisy.apply(seq, 3))
    assert not np.array_equal(noisy.apply(seq, 3), noisy.apply(seq, 4))


def test_detections_are_sorted_by_frame_and_none_below_the_score_floor() -> None:
    det = NoiseModel(fp_rate=3.0, score_floor=0.4).apply(walkers(), seed=1)
    assert np.all(np.diff(det[:, 0]) >= 0)
    assert det[:, 5].min() >= 0.4
    assert np.all(det[:, 3] > det[:, 1]) and np.all(det[:, 4] > det[:, 2])


def test_tiling_places_copies_side_by_side_with_distinct_people() -> None:
    seq = walkers()
    det = QUIET.apply(seq, seed=0)
    wide, boxes = tiled(seq, det, 3)
    assert (wide.width, wide.height, wide.frames) == (600, 100, 20)
    assert len(np.unique(wide.gt[:, 1])) == 3 * len(np.unique(seq.gt[:, 1]))
    assert len(boxes) == 3 * len(det)
    assert np.all(np.diff(boxes[:, 0]) >= 0)
    for copy in range(3):
        shifted = det[:, 1:5] + copy * np.array([200.0, 0.0, 200.0, 0.0])
        assert all(any(np.array_equal(b, s) for b in boxes[:, 1:5]) for s in shifted)
