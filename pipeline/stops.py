"""A run's stop event, with a branch per camera: stopping the run stops every camera,
and one camera can be stopped alone (`Pipeline.stop_camera`)."""

from __future__ import annotations

import threading


class StopEvent(threading.Event):
    """An event whose branches are set with it; a branch may also be set on its own."""

    def __init__(self) -> None:
        super().__init__()
        self._branches: list[threading.Event] = []
        self._guard = threading.RLock()  # a signal handler may set it while branch() runs

    def branch(self) -> threading.Event:
        """A new event set when this one is (at once, if it is already), or on its own."""
        event = threading.Event()
        with self._guard:
            self._branches.append(event)
            if self.is_set():
                event.set()
        return event

    def set(self) -> None:
        super().set()
        with self._guard:
            branches = list(self._branches)
        for event in branches:
            event.set()
