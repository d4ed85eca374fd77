"""A progress bar that stops a training run after so many batches, as Ctrl-C would: shared
by the trainer's and the train command's tests."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import Any


class StopAfter:
    """A progress bar that sets `stop` once `batches` batches went by."""

    def __init__(self, items: Iterable[Any], stop: threading.Event, batches: int) -> None:
        self.items, self.stop, self.batches = items, stop, batches

    def __iter__(self) -> Iterator[Any]:
        for seen, item in enumerate(self.items, start=1):
            if seen == self.batches:
                self.stop.set()
            yield item

    def set_postfix(self, **_: Any) -> None:
        pass

    def close(self) -> None:
        pass
