"""A pipeline run in a thread and stopped, as Ctrl-C stops it, once it reached a wait."""

from __future__ import annotations

import threading
from collections.abc import Callable

from pipeline.runner import Pipeline
from pipeline.summary import RunSummary


def stopped_run(pipeline: Pipeline, waiting: Callable[[], bool], wait_s: float) -> RunSummary:
    """The summary of `pipeline` run in a thread and stopped once `waiting()` holds (the
    run reached the wait under test); the run must end within `wait_s` of the stop."""
    summaries: list[RunSummary] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            summaries.append(pipeline.run())
        except BaseException as exc:  # the test's thread reports it
            errors.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    assert waiting(), "the run never reached the wait"
    pipeline.stop.set()  # what Ctrl-C does
    runner.join(wait_s)
    assert not runner.is_alive(), "the run still waits"
    assert not errors, errors
    (summary,) = summaries
    return summary
