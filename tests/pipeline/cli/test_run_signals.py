"""`run`'s signal handling: one request to stop, however many times it is delivered."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator

import pytest

from pipeline.cli.run import FORCE_AFTER_S, stop_on_signals
from tests.clock import Clock


@pytest.fixture
def exits(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The exit codes a forced exit asked for (the test process stays); handlers restored."""
    codes: list[int] = []
    monkeypatch.setattr(os, "_exit", codes.append)
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield codes
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


@pytest.mark.parametrize(
    "signals",
    [(signal.SIGTERM, signal.SIGTERM), (signal.SIGTERM, signal.SIGINT), (signal.SIGINT,) * 3],
    ids=["timeout-to-process-and-group", "term-and-int", "int-thrice"],
)
def test_a_signal_delivered_several_times_at_once_is_one_request_to_stop(
    exits: list[int], signals: tuple[signal.Signals, ...]
) -> None:
    stop, clock = threading.Event(), Clock(100.0)
    received = stop_on_signals(stop, clock)
    for sig in signals:
        os.kill(os.getpid(), sig)
        clock.now += FORCE_AFTER_S / 10
    assert stop.is_set()
    assert received == [signals[0]]
    assert exits == []


def test_a_second_ctrl_c_a_moment_later_forces_the_exit(exits: list[int]) -> None:
    stop, clock = threading.Event(), Clock(100.0)
    received = stop_on_signals(stop, clock)
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.is_set() and exits == []
    clock.now += FORCE_AFTER_S
    os.kill(os.getpid(), signal.SIGINT)
    assert exits == [128 + signal.SIGINT]
    assert received == [signal.SIGINT]
