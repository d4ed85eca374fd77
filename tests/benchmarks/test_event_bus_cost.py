"""The ZeroMQ sink's cost benchmark runs a short round and prints a row per case."""

from __future__ import annotations

import pytest

from benchmarks import event_bus_cost


def test_the_benchmark_prints_the_sinks_cpu_time_for_every_case(
    capsys: pytest.CaptureFixture[str],
) -> None:
    event_bus_cost.main(["--frames", "20", "--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    cells = [line.split() for line in lines if line.strip()[:1].isdigit()]
    rows = {cell[0]: cell[1:] for cell in cells}
    assert sorted(rows) == ["0/none", "0/reader", "16/none", "16/reader", "4/none", "4/reader"]
    assert all(float(values[0]) > 0 for values in rows.values())  # CPU ms a frame
