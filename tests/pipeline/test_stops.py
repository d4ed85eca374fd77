"""`StopEvent`: a run's stop reaches every camera's branch; a branch stops alone."""

from __future__ import annotations

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
