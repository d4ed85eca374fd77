"""The receiving side of the event bus in a process of its own, so that a test can read its
memory (`/proc/<pid>/status`) while a peer misbehaves.

`python -m tests.sinks.event_bus.receiver publisher ENDPOINT`: an `EventPublisher` bound at
ENDPOINT, publishing a detections event for camera 'cam1' every 20 ms.
`python -m tests.sinks.event_bus.receiver subscriber ENDPOINT`: an `EventSubscriber`
connected to ENDPOINT, printing "event <type> <camera> <seq>" for each event it receives.
Both print "ready" once set up, and end when their standard input is closed.
"""

from __future__ import annotations

import select
import sys

from sinks.event_bus.publisher import EventPublisher
from sinks.event_bus.subscriber import EventSubscriber
from tests.sinks.event_bus.conftest import LABELS, result


def stdin_closed(wait_s: float) -> bool:
    """Whether standard input reached its end, waiting up to `wait_s` for it."""
    readable, _, _ = select.select([sys.stdin], [], [], wait_s)
    return bool(readable) and not sys.stdin.readline()


def publish(endpoint: str) -> None:
    sink = EventPublisher(endpoint, LABELS)
    try:
        print("ready", flush=True)
        index = 0
        while not stdin_closed(0.02):
            sink.write(result("cam1", index))
            index += 1
    finally:
        sink.close()


def subscribe(endpoint: str) -> None:
    with EventSubscriber(endpoint) as subscriber:
        print("ready", flush=True)
        while not stdin_closed(0):
            event = subscriber.receive(timeout_s=0.02)
            if event is not None:
                print(f"event {event.type} {event.camera} {event.seq}", flush=True)


if __name__ == "__main__":
    role, endpoint = sys.argv[1:]
    {"publisher": publish, "subscriber": subscribe}[role](endpoint)
