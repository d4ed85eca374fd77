"""Work that looks at nothing while it waits (a connect, SQLite's busy wait, a database that
stopped answering, a detector being built), waited for so that a run's stop ends the wait
at once: the one way the SQL sink's opening and a cluster's driver and shards do it.

A leaf module that imports nothing from the project: part of the vocabulary every layer may
use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

STEP_S = 0.05
"""How often a wait looks at the run's stop."""

_Result = TypeVar("_Result")


class Abandoned(Exception):
    """The run's stop came while the work waited for had not ended; the work goes on in its
    thread, alone."""


def unless_stopped(
    work: Callable[[], _Result],
    stop: threading.Event,
    name: str,
    discard: Callable[[_Result], None] | None = None,
) -> _Result:
    """What `work` returns, or raises. `work` runs in a daemon thread named `name` (it ends
    by itself, or with the process), waited for in steps of STEP_S; Abandoned comes after
    the first step that ends with `stop` set and `work` not done. What it returns after
    that goes to `discard`, what it raises is dropped. Work done by the time the stop is
    seen is heard all the same, so a stop already set still gives `work` one step."""
    guard = threading.Lock()
    done = threading.Event()
    results: list[_Result] = []
    failed: list[BaseException] = []
    abandoned: list[bool] = []

    def run() -> None:
        try:
            result = work()
            with guard:
                if not abandoned:
                    results.append(result)
                    return
            if discard is not None:
                discard(result)
        except BaseException as exc:  # the waiting thread raises it
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    while not done.wait(STEP_S):
        if stop.is_set():
            with guard:
                if results:
                    break
                abandoned.append(True)
            raise Abandoned(name)
    if failed:
        raise failed[0]
    return results[0]
