"""The model-images benchmark runs on tiny frames and finds the same boxes both ways."""

from __future__ import annotations

import pytest

from benchmarks import model_images


def test_the_benchmark_compares_both_ways_of_resizing_and_finds_the_same_boxes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    model_images.main(
        [
            "--size",
            "96x64",
            "--batch",
            "2",
            "--repeat",
            "1",
            "--device",
            "cpu",
            "--precision",
            "fp32",
        ]
    )
    lines = capsys.readouterr().out.splitlines()
    assert "2 frames of 96x64 a batch" in lines[1]
    assert [line.split()[0] for line in lines[3:5]] == ["resized", "resized"]
    assert lines[-1].endswith("same boxes: yes")
