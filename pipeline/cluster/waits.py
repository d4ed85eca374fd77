"""Waits of a cluster run that its stop ends at once: work that looks at nothing meanwhile
(the driver's reading of a database that stopped answering, a shard's detector being built,
a first run's ONNX export and int8 calibration included) runs in a daemon thread, waited
for in short steps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

STEP_S = 0.05
"""How often a wait looks at the run's stop."""

_Result = TypeVar("_Result")


class StoppedWaiting(Exception):
    """The run's stop came while the work waited for had not ended."""


def unless_stopped(work: Callable[[], _Result], stop: threading.Event | None, name: str) -> _Result:
    """What `work` returns. With `stop`, `work` runs in a daemon thread named `name`,
    waited for in steps of STEP_S, and StoppedWaiting comes after the first step that ends
    with `stop` set: the work is left to that thread (it ends by itself, or with the
    process), and what it returns or raises then is dropped. Work that ends within a step
    is heard all the same, even after the stop."""
    if stop is None:
        return work()
    done = threading.Event()
    results: list[_Result] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            results.append(work())
        except BaseException as exc:  # the waiting thread raises it
            failed.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    while not done.wait(STEP_S):
        if stop.is_set():
            raise StoppedWaiting(name)
    if failed:
        raise failed[0]
    return results[0]
