"""The SQL sink's cost benchmark runs a short round, stores every row, and prints a row per
number of boxes."""

from __future__ import annotations

import pytest

from benchmarks import sql_sink_cost


def test_the_benchmark_prints_the_sinks_cpu_time_for_every_number_of_boxes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    sql_sink_cost.main(["--frames", "20", "--rounds", "1"])
    lines = capsys.readouterr().out.splitlines()
    rows = {c[0]: c[1:] for line in lines if (c := line.split()) and c[0].isdigit()}
    assert sorted(rows, key=int) == ["4", "16"]
    assert all(float(caller) > 0 and float(process) >= float(caller)
               for caller, process in rows.values())  # fmt: skip
