"""Motion regions: the regions a patch of motion becomes, and a frame's boxes put together
from its regions' detections and the last boxes where nothing changed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from pipeline.detection_loop import FrameDetector
from pipeline.regions import EDGE_PX, PAD_SHARE, RegionRule, combine
from pipeline.types import Detections, Frame, LabelMap, Region

WIDTH, HEIGHT = 640, 480


def boxes(*rows: tuple[float, float, float, float], label: int = 1) -> Detections:
    return Detections(
        xyxy=np.array(rows, np.float32).reshape(-1, 4),
        score=np.full(len(rows), 0.9, np.float32),
        label=np.full(len(rows), label, np.int64),
    )


class DarkSquares(FrameDetector):
    """Finds each dark (grey < 50) 20x20 square of a bright picture by its top left pixel,
    in the given image's own pixels: what a real detector does with a crop."""

    labels = LabelMap(("background", "square"))
    input_size = (100, 100)

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        return [self._squares(f.image) for f in frames]

    @staticmethod
    def _squares(image: npt.NDArray[np.uint8]) -> Detections:
        dark = image[..., 0] < 50
        corners = dark.copy()
        corners[1:] &= ~dark[:-1]
        corners[:, 1:] &= ~dark[:, :-1]
        ys, xs = np.nonzero(corners)
        rows = [(x, y, x + 20, y + 20) for y, x in zip(ys.tolist(), xs.tolist(), strict=True)]
        rows = [r for r in rows if r[2] <= image.shape[1] and r[3] <= image.shape[0]]
        return boxes(*rows)


def picture(*corners: tuple[int, int]) -> Frame:
    image = np.full((HEIGHT, WIDTH, 3), 220, np.uint8)
    for x, y in corners:
        image[y : y + 20, x : x + 20] = 0
    return Frame("cam", 0, 0.0, 0.0, image)


def test_a_patch_of_motion_becomes_a_padded_region_of_the_detectors_aspect_and_size() -> None:
    rule = RegionRule(min_size=(100, 200), max_share=0.9)
    (small,) = rule.regions([(300, 200, 320, 220)], WIDTH, HEIGHT)
    assert (small.width, small.height) == (200, 100)  # grown to the input size, not less
    assert small.x <= 300 - PAD_SHARE * 20 and small.x + small.width >= 320 + PAD_SHARE * 20
    (large,) = rule.regions([(100, 100, 400, 200)], WIDTH, HEIGHT)
    assert large.width == 2 * large.height  # the detector's aspect, 2:1
    assert large.x <= 100 - 75 and large.x + large.width >= 400 + 75  # padded by 300 / 4
    assert large.y <= 100 and large.y + large.height >= 200


def test_a_region_at_the_frames_edge_is_moved_inside_it() -> None:
    rule = RegionRule(min_size=(100, 100), max_share=0.9)
    (region,) = rule.regions([(0, 470, 10, 480)], WIDTH, HEIGHT)
    assert (region.x, region.y, region.width, region.height) == (0, 380, 100, 100)


def test_overlapping_regions_are_merged_and_distant_ones_kept_apart() -> None:
    rule = RegionRule(min_size=(100, 100), max_share=0.9)
    apart = rule.regions([(50, 50, 60, 60), (500, 300, 510, 310)], WIDTH, HEIGHT)
    assert len(apart) == 2
    (merged,) = rule.regions([(50, 50, 60, 60), (120, 60, 130, 70)], WIDTH, HEIGHT)
    assert merged.x <= 50 and merged.x + merged.width >= 130
    assert merged.width == merged.height


def test_regions_covering_more_than_max_share_mean_the_whole_frame() -> None:
    patches = [(50, 50, 60, 60), (500, 300, 510, 310)]  # two 100x100 regions: 6.5 %
    assert len(RegionRule((100, 100), max_share=0.07).regions(patches, WIDTH, HEIGHT)) == 2
    assert RegionRule((100, 100), max_share=0.06).regions(patches, WIDTH, HEIGHT) == ()


def test_a_rule_with_no_size_or_a_share_out_of_bounds_is_refused() -> None:
    with pytest.raises(ValueError, match="min_size"):
        RegionRule((0, 100), 0.5)
    with pytest.raises(ValueError, match="max_share"):
        RegionRule((100, 100), 0.0)


def test_boxes_found_in_a_crop_are_mapped_back_to_exactly_where_they_are_in_the_frame() -> None:
    frame = picture((210, 130), (330, 170))
    region = Region(200, 100, 200, 150)
    detector = DarkSquares()
    found = detector.detect([region.crop(frame)])
    combined = combine(Detections.empty(), [region], found, WIDTH, HEIGHT)
    (whole,) = detector.detect([frame])
    np.testing.assert_array_equal(combined.xyxy, whole.xyxy)
    assert len(combined) == 2


def test_last_boxes_outside_every_region_are_kept_and_those_inside_replaced() -> None:
    previous = boxes((10, 10, 30, 30), (250, 150, 270, 170), (390, 120, 420, 140))
    region = Region(200, 100, 200, 150)
    found = boxes((60, 60, 80, 80))  # the thing inside moved, seen in the region's pixels
    combined = combine(previous, [region], [found], WIDTH, HEIGHT)
    rows = {tuple(row) for row in combined.xyxy.tolist()}
    # Kept: the box far away, and the one only partly inside (it crosses the region's edge).
    assert rows == {(10, 10, 30, 30), (390, 120, 420, 140), (260, 160, 280, 180)}
    assert previous.xyxy.shape == (3, 4)  # the inputs are left as they were


def test_a_box_cut_by_a_crop_edge_inside_the_frame_is_dropped_but_not_at_the_frames_edge() -> None:
    inner = Region(200, 100, 200, 150)
    cut = boxes((190, 40, 200, 60), (EDGE_PX - 1, 40, 20, 60))  # at its right and left edges
    assert len(combine(Detections.empty(), [inner], [cut], WIDTH, HEIGHT)) == 0
    corner = Region(0, 0, 200, 150)  # its left and top edges are the frame's
    at_frame_edge = boxes((0, 0, 20, 20))
    combined = combine(Detections.empty(), [corner], [at_frame_edge], WIDTH, HEIGHT)
    np.testing.assert_array_equal(combined.xyxy, at_frame_edge.xyxy)


def test_one_detection_per_region_is_needed() -> None:
    with pytest.raises(ValueError, match="1 detections for 2 regions"):
        combine(Detections.empty(), [Region(0, 0, 9, 9), Region(20, 0, 9, 9)], [boxes()], 64, 64)


def test_a_region_outside_the_frame_or_empty_is_refused() -> None:
    with pytest.raises(ValueError, match="not inside a 640x480 frame"):
        Region(600, 0, 100, 100).crop(picture())
    with pytest.raises(ValueError, match="size >= 1"):
        Region(0, 0, 0, 10)
