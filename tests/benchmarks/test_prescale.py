"""The pre-scaling benchmark runs on a few frames of the bundled clip, a row per scaler."""

from __future__ import annotations

import pytest

from benchmarks import prescale
from detector.quantize import DEFAULT_CALIBRATION


def test_the_benchmark_compares_each_scaler_with_the_full_frames_boxes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ["--clip", str(DEFAULT_CALIBRATION), "--sizes", "320x180", "--every", "50"]
    prescale.main(args)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith("pedestrians.mp4: 1 frame in 50 (4)")
    rows = [line.split() for line in lines[4:]]
    assert len(rows) == len(prescale.SCALERS)
    for row in rows:
        recall, precision = float(row[-2]), float(row[-1])
        assert row[0] == "320x180" and 0 <= recall <= 1 and 0 <= precision <= 1
