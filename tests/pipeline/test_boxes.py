"""The shared geometry: IoU of xyxy boxes, greedy one-to-one matching, points against
zones (polygons) and lines."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou as torch_box_iou

from pipeline import boxes
from pipeline.boxes import (
    anchor_points,
    box_iou,
    crossing_position,
    distances_to_lines,
    greedy_assignment,
    points_in_polygon,
    points_in_polygons,
    polygon_area,
    polygon_edges,
    polygon_is_simple,
    side_of_line,
)


def test_greedy_assignment_takes_the_best_pair_first_and_each_row_and_column_once() -> None:
    pairs = [(-0.5, 0, 0), (-0.9, 1, 0), (-0.6, 0, 1), (-0.6, 1, 1), (-0.6, 2, 2), (-0.6, 2, 3)]
    # (1, 0) is best; ties at 0.6 go to the lower row, then the lower column.
    assert greedy_assignment(pairs) == [(1, 0), (0, 1), (2, 2)]
    assert greedy_assignment([]) == []


def test_box_iou_agrees_with_torchvision_and_gives_0_for_empty_boxes() -> None:
    rng = np.random.default_rng(0)
    a = rng.random((7, 4)) * 100
    a[:, 2:] = a[:, :2] + rng.random((7, 2)) * 50
    b = a[:5] + rng.normal(0, 10, (5, 4))
    b[:, 2:] = np.maximum(b[:, 2:], b[:, :2])  # some empty boxes
    b[0] = (5.0, 5.0, 5.0, 5.0)
    expected = torch_box_iou(torch.tensor(a), torch.tensor(b)).nan_to_num(0.0).numpy()
    np.testing.assert_allclose(box_iou(a, b), expected, atol=1e-9)
    assert box_iou(b[:1], b[:1])[0, 0] == 0.0


# Zones and lines

CONCAVE = np.array([[10, 10], [90, 10], [90, 90], [50, 40], [10, 90]], np.float64)


def test_points_in_polygon_agree_with_opencv_on_a_concave_polygon() -> None:
    import cv2

    rng = np.random.default_rng(0)
    points = rng.uniform(0, 100, size=(2000, 2))
    contour = CONCAVE.astype(np.float32).reshape(-1, 1, 2)
    distance = np.array(
        [cv2.pointPolygonTest(contour, (float(x), float(y)), True) for x, y in points]
    )
    clear = np.abs(distance) > 1e-6  # on an edge, either answer is right
    inside = points_in_polygon(points, CONCAVE)
    assert clear.sum() > 1900
    assert np.array_equal(inside[clear], distance[clear] > 0)


def test_a_point_in_the_notch_of_a_concave_polygon_is_outside() -> None:
    assert points_in_polygon(np.array([[50, 80], [50, 30], [20, 50]]), CONCAVE).tolist() == [
        False,
        True,
        True,
    ]


def test_no_points_make_no_answers() -> None:
    assert points_in_polygon(np.zeros((0, 2)), CONCAVE).shape == (0,)
    assert side_of_line(np.zeros((0, 2)), (0, 0), (1, 0)).shape == (0,)


def test_side_of_line_is_the_signed_distance_positive_on_the_right_walking_from_a_to_b() -> None:
    # a line drawn left to right across the screen: walking along it, the right is below
    distances = side_of_line(np.array([[5.0, 13.0], [5.0, 7.0], [50.0, 10.0]]), (0, 10), (20, 10))
    assert distances.tolist() == [3.0, -3.0, 0.0]
    diagonal = side_of_line(np.array([[0.0, 2.0]]), (0, 0), (2, 2))
    assert diagonal[0] == pytest.approx(np.sqrt(2))


def test_crossing_position_is_where_a_step_meets_the_line_from_a_to_b() -> None:
    assert crossing_position((5, -1), (5, 1), (0, 0), (10, 0)) == pytest.approx(0.5)
    assert crossing_position((15, -1), (15, 1), (0, 0), (10, 0)) == pytest.approx(1.5)
    assert crossing_position((0, 5), (4, -5), (0, 0), (0, 10)) == pytest.approx(0.5)
    assert np.isnan(crossing_position((0, 1), (5, 1), (0, 0), (10, 0)))


def test_anchor_points_are_fractions_of_each_box() -> None:
    boxes = np.array([[10, 20, 30, 60], [0, 0, 4, 8]], np.float32)
    assert anchor_points(boxes, 0.5, 1.0).tolist() == [[20.0, 60.0], [2.0, 8.0]]
    assert anchor_points(boxes, 0.5, 0.5).tolist() == [[20.0, 40.0], [2.0, 4.0]]


def test_polygon_area_and_simplicity() -> None:
    square = np.array([[0, 0], [4, 0], [4, 4], [0, 4]])
    bowtie = np.array([[0, 0], [4, 4], [4, 0], [0, 4]])
    assert polygon_area(square) == 16.0
    assert polygon_area(CONCAVE) == pytest.approx(80 * 80 - 0.5 * 80 * 50)
    assert polygon_is_simple(square) and polygon_is_simple(CONCAVE)
    assert not polygon_is_simple(bowtie)
    assert not polygon_is_simple(np.array([[0, 0], [4, 0], [4, 4], [2, 0], [0, 4]]))  # touches


def _reference_is_simple(polygon: np.ndarray) -> bool:
    """The edge-by-edge loop `polygon_is_simple` was written as, kept as its reference."""
    poly = [tuple(map(float, p)) for p in np.asarray(polygon, np.float64).reshape(-1, 2)]
    m = len(poly)
    edges = [(poly[i], poly[(i + 1) % m]) for i in range(m)]

    def orient(a: tuple[float, ...], b: tuple[float, ...], c: tuple[float, ...]) -> float:
        return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])

    def on(a: tuple[float, ...], b: tuple[float, ...], c: tuple[float, ...]) -> bool:
        return min(a[0], b[0]) <= c[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= c[1] <= max(
            a[1], b[1]
        )

    def touch(
        p1: tuple[float, ...], p2: tuple[float, ...], p3: tuple[float, ...], p4: tuple[float, ...]
    ) -> bool:
        d1, d2 = orient(p3, p4, p1), orient(p3, p4, p2)
        d3, d4 = orient(p1, p2, p3), orient(p1, p2, p4)
        if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and d1 and d2 and d3 and d4:
            return True
        return bool(
            (d1 == 0 and on(p3, p4, p1))
            or (d2 == 0 and on(p3, p4, p2))
            or (d3 == 0 and on(p1, p2, p3))
            or (d4 == 0 and on(p1, p2, p4))
        )

    for i in range(m):
        for j in range(i + 1, m):
            if j == i + 1 or (i == 0 and j == m - 1):
                continue
            if touch(*edges[i], *edges[j]):
                return False
    return True


def _random_polygons(rng: np.random.Generator) -> list[np.ndarray]:
    polygons = []
    for _ in range(150):  # random points: mostly crossing
        polygons.append(rng.random((int(rng.integers(1, 12)), 2)))
    for _ in range(150):  # star-shaped, simple unless rounding makes corners meet
        n = int(rng.integers(3, 40))
        angles = np.sort(rng.random(n)) * 2 * np.pi
        radii = rng.uniform(0.2, 1.0, n)
        star = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
        polygons.append(star if rng.random() < 0.5 else np.round(star * 6))
    for _ in range(400):  # small integer grids: repeated corners, collinear and touching edges
        n = int(rng.integers(3, 9))
        polygons.append(rng.integers(0, 4, (n, 2)).astype(np.float64))
    return polygons


def test_polygon_is_simple_gives_the_edge_by_edge_loop_s_answer_on_random_polygons() -> None:
    rng = np.random.default_rng(7)
    polygons = _random_polygons(rng)
    answers = [_reference_is_simple(p) for p in polygons]
    assert [polygon_is_simple(p) for p in polygons] == answers
    assert 50 < sum(answers) < len(answers) - 50  # both answers well represented


def test_polygon_is_simple_in_small_blocks_of_edge_pairs_gives_the_same_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(boxes, "_PAIRS_PER_BLOCK", 3)  # a block of one row of edges
    polygons = _random_polygons(np.random.default_rng(8))
    assert [polygon_is_simple(p) for p in polygons] == [_reference_is_simple(p) for p in polygons]


def test_points_in_several_polygons_at_once_are_each_polygon_s_answer() -> None:
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 100, size=(300, 2))
    square = np.array([[20, 20], [60, 20], [60, 60], [20, 60]])
    triangle = np.array([[50, 0], [100, 100], [0, 100]])
    both = points_in_polygons(points, *polygon_edges([CONCAVE, square, triangle]))
    assert both.shape == (300, 3)
    for column, polygon in enumerate((CONCAVE, square, triangle)):
        assert np.array_equal(both[:, column], points_in_polygon(points, polygon))
    assert points_in_polygons(points, *polygon_edges([])).shape == (300, 0)


def test_distances_to_several_lines_at_once_are_each_line_s_answer() -> None:
    points = np.array([[5.0, 13.0], [0.0, 2.0]])
    lines = np.array([[0, 10, 20, 10], [0, 0, 2, 2]], np.float64)
    together = distances_to_lines(points, lines)
    assert together.shape == (2, 2)
    assert np.allclose(together[:, 0], side_of_line(points, (0, 10), (20, 10)))
    assert np.allclose(together[:, 1], side_of_line(points, (0, 0), (2, 2)))
