"""A run's stop event, with a branch per camera: stopping the run stops every camera,
and one camera can be stopped alone (`Pipeline.stop_camera`)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

STOP_PREPARING = "ending the detector's preparation; no output is opened"
"""What a stop does while the run's detector is prepared: no frame is read yet."""
STOP_OPENING = "ending the outputs' opening; no frame is read"
"""What a stop does while the run's outputs open: still no frame is read."""
STOP_RUNNING = "finishing queued frames"
"""What a stop does once cameras read: frames decoded and queued are still detected."""


class StopEvent(threading.Event):
    """An event whose branches are set with it; a branch may also be set on its own."""

    def __init__(self) -> None:
        super().__init__()
        self._branches: list[threading.Event] = []
        self._guard = threading.RLock()  # a signal handler may set it while branch() runs
        self._raising_in: int | None = None  # the thread in `raising`'s block

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
        if self._raising_in == threading.get_ident():
            raise KeyboardInterrupt  # a signal handler's, run in that thread: out of the block

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """While in the block, setting the event in the thread that runs it (a signal
        handler does, in the main thread) also raises KeyboardInterrupt there: for work
        that never looks at the event and may take many seconds (a first run's ONNX export
        and int8 calibration), which a stop cuts short instead of waiting for it. Set from
        another thread, the event is only set."""
        self._raising_in = threading.get_ident()
        try:
            yield
        finally:
            self._raising_in = None
