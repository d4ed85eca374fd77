"""The HTTP feed benchmark reads a loopback camera both ways, MJPEG or MPEG-TS, and prints
each way's CPU time a frame, and their ratio, for the median and the least of the rounds."""

from __future__ import annotations

import pytest

from benchmarks import mjpeg_feed


@pytest.mark.parametrize(("body", "frames"), [("mjpeg", 3), ("mpegts", 10)])
def test_the_benchmark_prints_both_ways_and_their_ratio(
    capsys: pytest.CaptureFixture[str], body: str, frames: int
) -> None:
    mjpeg_feed.main(["--frames", str(frames), "--rounds", "1", "--size", "64x48", "--body", body])
    out = capsys.readouterr().out
    assert f"{frames} frames of 64x48" in out and f"({body})" in out
    for pick in ("median", "least"):
        for way in mjpeg_feed.WAYS:
            line = next(
                line
                for line in out.splitlines()
                if line.strip().startswith(f"{way}:") and pick in line
            )
            assert float(line.split()[1]) > 0
        assert any(line.strip().startswith("ratio:") and pick in line for line in out.splitlines())
