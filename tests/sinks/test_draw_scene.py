"""Zones, lines, their counts and the trails, drawn by `annotate` at the right pixels."""

from __future__ import annotations

import numpy as np

from pipeline.types import Detections, LabelMap, LineShape, SceneLayout, ZoneShape
from sinks.draw import LINE_COLOR, ZONE_COLOR, annotate, box_color, line_normal
from sinks.scene_overlay import SceneView

LABELS = LabelMap(("background", "person"))
ZONE = ZoneShape("door", ((40.0, 60.0), (120.0, 60.0), (120.0, 150.0), (40.0, 150.0)))
LINE = LineShape("gate", (200.0, 20.0), (200.0, 180.0), "west", "east")
LAYOUT = SceneLayout((ZONE,), (LINE,))


def blank() -> np.ndarray:
    return np.full((200, 300, 3), 20, np.uint8)


def near(pixel: np.ndarray, color: tuple[int, int, int], tolerance: int = 10) -> bool:
    return bool(np.abs(pixel.astype(int) - np.array(color)).max() <= tolerance)


def test_zone_outline_and_line_are_drawn_at_their_pixels_and_nowhere_inside() -> None:
    image = blank()
    out = annotate(image, Detections.empty(), LABELS, SceneView(LAYOUT, (0,), ((0, 0),)))
    assert (image == 20).all()  # the input is left alone
    assert near(out[100, 40], ZONE_COLOR) and near(out[100, 120], ZONE_COLOR)  # left, right
    assert near(out[150, 80], ZONE_COLOR)  # bottom edge
    assert (out[80:140, 50:110] == 20).all()  # inside the zone: untouched
    assert near(out[40, 200], LINE_COLOR) and near(out[170, 200], LINE_COLOR)
    assert (out[40:60, 230:240] == 20).all()  # beside the line, away from its labels


def test_the_line_normal_points_to_its_right_side_as_walked_from_a_to_b() -> None:
    # walking down the picture, the right-hand side is the picture's left
    assert line_normal(LINE) == (-1.0, 0.0)
    across = LineShape("x", (0.0, 10.0), (50.0, 10.0), "down", "up")  # left to right
    assert line_normal(across) == (-0.0, 1.0)  # its right side is below


def test_counts_text_changes_with_the_counts() -> None:
    def drawn(inside: int, west: int) -> np.ndarray:
        view = SceneView(LAYOUT, (inside,), ((west, 0),))
        return annotate(blank(), Detections.empty(), LABELS, view)

    base = drawn(0, 0)
    zone_label = (slice(30, 62), slice(35, 160))  # above the zone's top corner
    west_label = (slice(80, 120), slice(100, 200))  # left of the line: its right side
    more_inside, one_west = drawn(2, 0), drawn(0, 1)
    assert (more_inside[zone_label] != base[zone_label]).any()
    assert (more_inside[west_label] == base[west_label]).all()
    assert (one_west[west_label] != base[west_label]).any()
    assert (one_west[zone_label] == base[zone_label]).all()
    # the labels are in the shapes' colours
    assert (np.abs(base[zone_label].astype(int) - ZONE_COLOR).max(axis=2) < 10).any()
    assert (np.abs(base[west_label].astype(int) - LINE_COLOR).max(axis=2) < 10).any()


def test_a_trail_is_drawn_through_its_points_in_its_tracks_colour() -> None:
    points = np.array([[230, 60], [250, 60], [270, 60], [270, 100]], np.int32)
    view = SceneView(SceneLayout(), trails=((7, points),))
    out = annotate(blank(), Detections.empty(), LABELS, view)
    color = box_color(7, 0)
    assert near(out[60, 240], color, 40) and near(out[60, 260], color, 40)
    assert near(out[80, 270], color, 40)
    assert (out[80:100, 235:255] == 20).all()  # off the trail


def test_without_a_scene_only_boxes_are_drawn() -> None:
    plain = annotate(blank(), Detections.empty(), LABELS)
    assert (plain == 20).all()
