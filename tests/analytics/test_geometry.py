"""Zones and lines in pixels of a frame size."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from analytics.geometry import Line, Zone, pixel_geometry

SQUARE = Zone("square", ((0.25, 0.2), (0.5, 0.2), (0.5, 0.8), (0.25, 0.8)))
ACROSS = Line("across", (0.5, 0.0), (0.5, 1.0))


def test_fractions_are_scaled_to_the_frame_and_pixels_kept() -> None:
    pixels = Zone("px", ((50, 20), (100, 20), (100, 80)), in_pixels=True)
    geometry = pixel_geometry("cam", [SQUARE, pixels], [ACROSS], 0.05, 200, 100)
    assert geometry.edges[:4, :2].tolist() == [[50, 20], [100, 20], [100, 80], [50, 80]]
    assert geometry.edges[4:, :2].tolist() == [[50, 20], [100, 20], [100, 80]]
    assert geometry.starts.tolist() == [0, 4]
    assert geometry.line_array.tolist() == [[100, 0, 100, 100]]
    assert geometry.hysteresis_px == pytest.approx(0.05 * np.hypot(200, 100))


def test_a_pixel_zone_or_line_outside_the_frame_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    far = Zone("far", ((1000, 10), (1200, 10), (1200, 90)), in_pixels=True)
    gate = Line("gate", (300, 0), (400, 100), in_pixels=True)
    with caplog.at_level(logging.WARNING, logger="analytics.geometry"):
        pixel_geometry("cam", [SQUARE, far], [ACROSS, gate], 0.05, 200, 100)
    assert [r.getMessage() for r in caplog.records] == [
        "camera cam: zone far lies outside the 200x100 frame: it will see nothing "
        "(pixel coordinates of another resolution? fractions survive a change)",
        "camera cam: line gate lies outside the 200x100 frame: it will see nothing "
        "(pixel coordinates of another resolution? fractions survive a change)",
    ]
