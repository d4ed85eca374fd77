"""The class head's rate-factor benchmark, on two images for two steps."""

from __future__ import annotations

import math

import pytest

from benchmarks.head_lr import main


def test_prints_a_finite_row_of_first_and_last_losses_per_factor(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["--steps", "2", "--images", "2", "--factors", "1", "25"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("# class head rate factor, person_ssdlite, 2 images, 2 steps")
    rows = [line.strip("|").split("|") for line in lines[3:]]
    assert [r[0].strip() for r in rows] == ["x1", "x25"]
    assert [float(r[1]) for r in rows] == pytest.approx([0.002, 0.05])  # the recipe's rate
    for cells in rows:
        conf_first, conf_last, ratio, loc_first, loc_last = (float(c) for c in cells[2:7])
        assert all(math.isfinite(x) and x > 0 for x in (conf_first, conf_last, loc_first, loc_last))
        assert ratio == pytest.approx(conf_last / conf_first, abs=0.01)
        assert cells[7].strip() == "yes"
    # the same starting weights and batch: the first step's losses agree across factors
    assert rows[0][2] == rows[1][2] and rows[0][5] == rows[1][5]


def test_a_factor_below_the_trainers_bound_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--factors", "0.5"])
    assert exit_.value.code == 2
    assert "--factors must be at least 1" in capsys.readouterr().err
