"""The host-copy benchmark runs on tiny frames and prints one row per thread count."""

from __future__ import annotations

import pytest

from benchmarks import host_copy


def test_the_benchmark_prints_one_row_per_thread_count_with_one_thread_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    host_copy.main(["--frames", "3", "--size", "16x8", "--threads", "3", "2", "--repeat", "2"])
    lines = capsys.readouterr().out.splitlines()
    assert "3 frames of 16x8 RGB" in lines[1]
    rows = [line.split() for line in lines[3:]]
    assert [row[0] for row in rows] == ["1", "2", "3"]
    assert rows[0][4] == "1.00x"
