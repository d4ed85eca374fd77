"""The memory benchmark of an MJPEG camera whose part never ends reads a good camera, then
drops the bad one at the bound of a part, and prints the peak resident MB after each."""

from __future__ import annotations

import pytest

from benchmarks import mjpeg_endless
from pipeline import http_camera
from pipeline.config.base import BYTES_PER_MB


def test_the_benchmark_drops_the_camera_at_the_bound_and_prints_both_peaks(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(http_camera, "PART_LIMIT", 2 * BYTES_PER_MB)  # a part's bytes, not 180 MB
    mjpeg_endless.main(["--frames", "5", "--drops", "1"])
    out = capsys.readouterr().out
    assert "a good camera, 5 frames: peak " in out
    assert "dropped at 2 MB 1 times (3 good frames): peak " in out
    assert "an MJPEG part passed 2 MB without its boundary" in out
