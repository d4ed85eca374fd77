"""A wait for work that looks at nothing ends at once with the run's stop; what the work
returns after it goes to `discard`, and work done by the time the stop is seen is kept."""

from __future__ import annotations

import threading
import time

import pytest

from pipeline.stoppable import Abandoned, unless_stopped


def test_the_work_s_result_and_its_error_come_back_as_they_are() -> None:
    stop = threading.Event()
    assert unless_stopped(lambda: 42, stop, "answer") == 42
    with pytest.raises(ZeroDivisionError):
        unless_stopped(lambda: 1 // 0, stop, "fails")


def test_a_stop_ends_the_wait_and_what_the_work_returns_after_it_is_discarded() -> None:
    stop, let_go = threading.Event(), threading.Event()
    discarded: list[str] = []
    gone = threading.Event()

    def work() -> str:
        let_go.wait(10)
        return "late"

    def discard(result: str) -> None:
        discarded.append(result)
        gone.set()

    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Abandoned):
        unless_stopped(work, stop, "hangs", discard)
    assert time.monotonic() - started < 5  # not the work's 10 s
    let_go.set()
    assert gone.wait(5) and discarded == ["late"]


def test_work_done_within_its_first_step_is_kept_though_the_stop_is_already_set() -> None:
    stop = threading.Event()
    stop.set()
    discarded: list[int] = []
    assert unless_stopped(lambda: 7, stop, "quick", discarded.append) == 7
    assert discarded == []
