"""The suite's deadline: a case starts only where its expected time fits in what is left."""

from __future__ import annotations

from benchmarks.gpu_suite.budget import Deadline
from tests.clock import Clock


def test_a_case_starts_only_where_its_first_guess_fits_in_what_is_left() -> None:
    clock = Clock(100.0)
    deadline = Deadline(60.0, {"model": 10.0, "compile": 50.0}, clock=clock)
    assert deadline.why_not("model") is None and deadline.why_not("compile") is None
    clock.now += 15
    assert deadline.why_not("model") is None
    why = deadline.why_not("compile")
    assert why == "time budget: a compile case is expected to take 50 s, 45 s of 60 s are left"


def test_after_a_case_ran_its_kind_is_expected_to_take_the_longest_seen() -> None:
    clock = Clock(100.0)
    deadline = Deadline(60.0, {"compile": 50.0, "model": 10.0}, clock=clock)
    deadline.ran("compile", 5.0)  # the first replaces the guess
    clock.now += 50
    assert deadline.why_not("compile") is None
    deadline.ran("compile", 12.0)
    deadline.ran("compile", 7.0)
    assert deadline.why_not("compile") is not None  # 12 s expected, 10 s left
    assert deadline.why_not("model") is None  # other kinds keep their own expectation


def test_past_the_deadline_no_case_starts_and_none_is_said_to_have_negative_time() -> None:
    clock = Clock(100.0)
    deadline = Deadline(10.0, {"tests": 0.0}, clock=clock, started=clock.now - 30)
    assert deadline.left_s() == -20.0
    assert deadline.why_not("tests") == (
        "time budget: a tests case is expected to take 0 s, 0 s of 10 s are left"
    )
