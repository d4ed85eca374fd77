"""Waits of a cluster run that its stop ends at once: work that looks at nothing meanwhile
(the driver's reading of a database that stopped answering, a shard's detector being built,
a first run's ONNX export and int8 calibration included) runs in a daemon thread, waited
for in short steps (`pipeline.stoppable`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from pipeline import stoppable

_Result = TypeVar("_Result")


class StoppedWaiting(Exception):
    """The run's stop came while the work waited for had not ended."""


def unless_stopped(work: Callable[[], _Result], stop: threading.Event | None, name: str) -> _Result:
    """What `work` returns; without `stop`, called here. With it, as
    `pipeline.stoppable.unless_stopped` waits for it, StoppedWaiting when the stop ends
    the wait: what the work returns or raises then is dropped."""
    if stop is None:
        return work()
    try:
        return stoppable.unless_stopped(work, stop, name)
    except stoppable.Abandoned:
        raise StoppedWaiting(name) from None
