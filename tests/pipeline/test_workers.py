"""Sink workers: a closed worker never makes its producer wait."""

from __future__ import annotations

import threading

from pipeline.types import FrameResult
from pipeline.workers import SinkWorker
from sinks.base import Sink


class Quiet(Sink):
    name = "quiet"

    def write(self, result: FrameResult) -> None:
        return None

    def close(self) -> None:
        return None


def test_handing_messages_to_a_closed_worker_returns_at_once() -> None:
    worker = SinkWorker(Quiet(), 1)
    worker.close(timeout=5)
    done = threading.Event()

    def hand_over() -> None:
        for _ in range(3):  # more than its queue holds
            worker.run_ended("finished")
        done.set()

    threading.Thread(target=hand_over, daemon=True).start()
    assert done.wait(5)
