"""What a case says of its figures in its one line."""

from __future__ import annotations

import statistics

from benchmarks.gpu_suite.cases import end_to_end_headline
from pipeline.bench.report import EndToEndResult


def _result(runs: list[float], pipelined: bool) -> EndToEndResult:
    return EndToEndResult(
        clip="clip.mp4", frame_size="1920x1080", copies=16, model="person_ssdlite",
        runtime="torch", precision="fp16", batch_size=32, frames=3200, seconds=10.0,
        frames_per_s=statistics.median(runs), runs=runs, pipelined=pipelined,
    )  # fmt: skip


def test_an_end_to_end_line_gives_the_median_and_the_slowest_and_fastest_run() -> None:
    line = end_to_end_headline(_result([424.7, 170.0, 301.2], pipelined=False))
    assert line == "301.2 frames/s (not pipelined, runs 170.0 to 424.7)"


def test_an_end_to_end_line_of_one_run_gives_no_spread() -> None:
    assert end_to_end_headline(_result([150.6], pipelined=True)) == "150.6 frames/s (pipelined)"
