"""`StopEvent`: a run's stop reaches every camera's branch; a branch stops alone."""

from __future__ import annotations

import threading

import pytest

from pipeline.stops import StopEvent


def test_setting_the_stop_sets_every_branch_made_before_or_after() -> None:
    stop = StopEvent()
    before = stop.branch()
    stop.set()
    after = stop.branch()
    assert before.is_set() and after.is_set()


def test_a_branch_set_alone_leaves_the_stop_and_the_other_branches_unset() -> None:
    stop = StopEvent()
    one, other = stop.branch(), stop.branch()
    one.set()
    assert not stop.is_set() and not other.is_set()


def test_a_stop_raises_only_in_the_thread_in_its_raising_block() -> None:
    stop = StopEvent()
    with pytest.raises(KeyboardInterrupt), stop.raising():
        stop.set()  # as a signal handler does, in the thread building the detector
    assert stop.is_set()

    other = StopEvent()
    with other.raising():
        setter = threading.Thread(target=other.set)  # a caller stopping a run it started
        setter.start()
        setter.join()
    assert other.is_set()
    other.set()  # after the block: only sets
