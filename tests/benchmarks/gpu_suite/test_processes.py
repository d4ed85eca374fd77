"""The several-processes case: frames/s over the seconds every process read in together,
and a process that fails telling why."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.gpu_suite.processes import ProcessRun, measure_processes, together
from pipeline.bench.end_to_end import DetectorSetup
from pipeline.bench.model_only import bench_weights


def test_frames_are_counted_over_the_first_start_to_the_last_end() -> None:
    # One read 100 frames over 10 s, the other 50 over 4 s, starting 2 s later.
    runs = [ProcessRun(100, 10.0, 1010.0), ProcessRun(50, 4.0, 1006.0)]
    assert together(runs) == (150, 10.0)
    # Staggered so that neither covers the other: from the first start to the last end.
    assert together([ProcessRun(10, 2.0, 102.0), ProcessRun(10, 2.0, 105.0)]) == (20, 5.0)


def test_a_process_that_fails_tells_why_in_one_line(
    tmp_path: Path,
) -> None:
    setup = DetectorSetup(
        "person_ssdlite", bench_weights("person_ssdlite"), "cpu", "torch", "fp32", 2
    )
    missing = str(tmp_path / "missing.mp4")
    with pytest.raises(
        RuntimeError,
        match=r"^a process of the case failed: ValidationError: .*missing\.mp4[^\n]*$",
    ):
        measure_processes(missing, cameras=1, processes=1, setup=setup, repeat=1, timeout_s=60)
