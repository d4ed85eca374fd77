"""benchmarks/tracking.py: the figures it prints come from the code paths they name."""

from __future__ import annotations

import pytest

import trackers.iou as iou_module
from benchmarks import tracking


def test_pair_costs_times_both_paths_and_restores_the_dense_threshold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[bool] = []
    original = iou_module.box_iou

    def counting_box_iou(*args: object) -> object:
        seen.append(True)
        return original(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(iou_module, "box_iou", counting_box_iou)
    line = tracking.pair_costs(tracks=13, detections=6, calls=2)
    assert "13 tracks x 6 detections" in line and "numpy" in line and "loop" in line
    # 5 timings of 2 calls through numpy; the loop's timings never reach box_iou
    assert len(seen) == 10
    assert iou_module.DENSE_PAIRS == 600
