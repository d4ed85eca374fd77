"""`run`'s signal handling: one request to stop, however many times it is delivered."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline import runner
from pipeline.cli import main
from pipeline.cli.run import FORCE_AFTER_S, stop_on_signals
from tests.clock import Clock
from tests.conftest import VideoFactory


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
    with stop_on_signals(stop, clock) as received:
        for sig in signals:
            os.kill(os.getpid(), sig)
            clock.now += FORCE_AFTER_S / 10
    assert stop.is_set()
    assert received == [signals[0]]
    assert exits == []


def test_a_second_ctrl_c_a_moment_later_forces_the_exit(exits: list[int]) -> None:
    stop, clock = threading.Event(), Clock(100.0)
    with stop_on_signals(stop, clock) as received:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.is_set() and exits == []
        clock.now += FORCE_AFTER_S
        os.kill(os.getpid(), signal.SIGINT)
    assert exits == [128 + signal.SIGINT]
    assert received == [signal.SIGINT]


def own_handler(signum: int, _frame: object) -> None:
    """A handler of the program that calls a command (an embedder, a test runner)."""


@pytest.mark.parametrize("ends", ["returning", "raising"])
def test_the_handlers_found_before_are_back_after_the_block(exits: list[int], ends: str) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, own_handler)
    with contextlib.suppress(RuntimeError), stop_on_signals(threading.Event()):
        assert signal.getsignal(signal.SIGINT) is not own_handler
        if ends == "raising":
            raise RuntimeError("the command failed")
    assert signal.getsignal(signal.SIGINT) is own_handler
    assert signal.getsignal(signal.SIGTERM) is own_handler


def test_outside_the_main_thread_the_block_leaves_the_handlers_as_they_are() -> None:
    before = signal.getsignal(signal.SIGINT)
    failed: list[BaseException] = []

    def command() -> None:
        try:
            with stop_on_signals(threading.Event()) as received:
                assert received == [] and signal.getsignal(signal.SIGINT) is before
        except BaseException as exc:  # surfaced by the assert below
            failed.append(exc)

    thread = threading.Thread(target=command)
    thread.start()
    thread.join()
    assert failed == []


def test_run_called_from_python_gives_back_the_callers_handlers(
    exits: list[int], tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: lobby\n    source: {clip}\n"
        "detector:\n  model: person_ssdlite\n  weights: none\n  device: cpu\n  runtime: torch\n"
    )
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, own_handler)
    assert main(["run", str(config), "--no-progress"]) == 0
    assert signal.getsignal(signal.SIGINT) is own_handler  # was run's own, left behind
    assert signal.getsignal(signal.SIGTERM) is own_handler


def test_ctrl_c_while_the_detector_is_prepared_ends_that_at_once_and_opens_no_output(
    exits: list[int],
    tmp_path: Path,
    synthetic_video: VideoFactory,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # A first run's ONNX export and int8 calibration take many seconds and never look at
    # the stop: Ctrl-C there used to wait for them, then open every output for nothing.
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    db = tmp_path / "out" / "det.db"
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: lobby\n    source: {clip}\n"
        f"sinks:\n  - type: sql\n    url: sqlite:///{db}\n"
    )
    finished: list[bool] = []

    def endless_export(*_args: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # Python runs the handler between two of these sleeps
            time.sleep(0.001)
        finished.append(True)
        raise AssertionError("the stop did not end the detector's preparation")

    monkeypatch.setattr(runner, "build_run_detector", endless_export)
    assert main(["run", str(config), "--no-progress"]) == 128 + signal.SIGINT
    out = capsys.readouterr()
    assert finished == [] and exits == []
    assert "lobby" in out.out and "not started: stopped before it opened" in out.out
    assert "Traceback" not in out.err
    assert not db.exists()  # no sink opened: no run recorded as begun and stopped


def test_ctrl_c_while_the_detector_is_prepared_says_the_preparation_ends_not_queued_frames(
    exits: list[int],
    tmp_path: Path,
    synthetic_video: VideoFactory,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    # No frame is read before the detector is ready: none can be queued to finish.
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    config = tmp_path / "cams.yaml"
    config.write_text(f"cameras:\n  - id: lobby\n    source: {clip}\n")

    def endless_export(*_args: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # Python runs the handler between two of these sleeps
            time.sleep(0.001)
        raise AssertionError("the stop did not end the detector's preparation")

    monkeypatch.setattr(runner, "build_run_detector", endless_export)
    assert main(["run", str(config), "--no-progress"]) == 128 + signal.SIGINT
    err = capfd.readouterr().err
    assert "SIGINT: stopping; ending the detector's preparation" in err
    assert "queued frames" not in err
