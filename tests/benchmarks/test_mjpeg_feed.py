"""The MJPEG feed benchmark reads a loopback camera both ways and prints each way's CPU time
a frame, and their ratio, for the median and the least of the rounds."""

from __future__ import annotations

import pytest

from benchmarks import mjpeg_feed


def test_the_benchmark_prints_both_ways_and_their_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    mjpeg_feed.main(["--frames", "3", "--rounds", "1", "--size", "64x48"])
    out = capsys.readouterr().out
    assert "3 frames of 64x48" in out
    for pick in ("median", "least"):
        for way in mjpeg_feed.WAYS:
            line = next(
                line
                for line in out.splitlines()
                if line.strip().startswith(f"{way}:") and pick in line
            )
            assert float(line.split()[1]) > 0
        assert any(line.strip().startswith("ratio:") and pick in line for line in out.splitlines())
