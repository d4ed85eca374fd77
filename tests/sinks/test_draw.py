"""annotate draws boxes coloured by track on a copy of the image; captions and colours."""

from __future__ import annotations

import numpy as np

from pipeline.types import Detections, LabelMap
from sinks.draw import annotate, box_color, caption

LABELS = LabelMap(("background", "person", "car"))


def detections(boxes: list[list[float]], labels: list[int], tracks: list[int]) -> Detections:
    return Detections(
        xyxy=np.array(boxes, np.float32),
        score=np.full(len(boxes), 0.9, np.float32),
        label=np.array(labels, np.int64),
        track_id=np.array(tracks, np.int64),
    )


def test_annotate_returns_new_image_with_box_outline_and_leaves_input_unchanged() -> None:
    image = np.full((120, 160, 3), 40, np.uint8)
    original = image.copy()
    dets = detections([[40, 50, 120, 100]], [1], [3])

    out = annotate(image, dets, LABELS)

    np.testing.assert_array_equal(image, original)
    assert out is not image and out.shape == image.shape and out.dtype == np.uint8
    assert np.any(out[75, 38:43] != original[75, 38:43])  # left edge of the box
    assert np.any(out[75, 118:123] != original[75, 118:123])  # right edge
    assert np.any(out[98:103, 80] != original[98:103, 80])  # bottom edge
    np.testing.assert_array_equal(out[75, 60:100], original[75, 60:100])  # box inside
    np.testing.assert_array_equal(out[110:, :30], original[110:, :30])  # far corner


def test_annotate_colours_boxes_by_track_id_whatever_their_label() -> None:
    image = np.zeros((120, 160, 3), np.uint8)
    out = annotate(
        image,
        detections([[10, 40, 50, 80], [60, 40, 100, 80], [110, 40, 150, 80]], [1, 2, 1], [7, 7, 8]),
        LABELS,
    )
    left_edges = [tuple(out[60, x]) for x in (10, 60, 110)]
    assert left_edges[0] == left_edges[1] == box_color(7, 1)
    assert left_edges[2] == box_color(8, 1) != box_color(7, 1)


def test_untracked_boxes_are_coloured_by_label() -> None:
    assert box_color(-1, 1) == box_color(-1, 1)
    assert box_color(-1, 1) != box_color(-1, 2)


def test_caption_shows_track_id_only_for_tracked_boxes() -> None:
    assert caption("person", 0.8712, 3) == "person 0.87 #3"
    assert caption("car", 0.5, -1) == "car 0.50"
