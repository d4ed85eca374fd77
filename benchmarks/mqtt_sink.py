"""What the mqtt sink costs the sink thread, beside the ZeroMQ bus on the same frames.

`write` of N frames with 20 boxes each (about 2.5 kB per detections event), to a Mosquitto
of the script's own (started on a free port; `mosquitto` must be installed) at QoS 0, 1 and
2, to the same broker after it was killed (messages buffered, the oldest dropped), and to
`EventPublisher` (the zmq sink, no subscriber). Conditions alternate, each repeated; the
median is shown, with its ratio to the zmq sink's in the same run, and for each mqtt
condition what its last run's connection counted as not delivered: dropped (buffer full),
undelivered (still buffered at the end) and lost (handed to paho, never sent or acknowledged).

    python -m benchmarks.mqtt_sink [--frames 5000] [--repeat 3]

Run it on an otherwise idle machine; results are printed as a table.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pipeline.types import Detections, Frame, FrameResult, LabelMap
from sinks.base import Sink
from sinks.event_bus.publisher import EventPublisher
from sinks.mqtt.settings import BrokerAddress, BrokerSettings
from sinks.mqtt.sink import MqttSink

LABELS = LabelMap(("background", "person"))
BOXES = 20


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def mosquitto() -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """(port, process) of a private broker, killed at the end."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "mosquitto.conf"
        config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        process = subprocess.Popen([binary, "-c", str(config)], stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            yield port, process
        finally:
            process.kill()
            process.wait()


def results(frames: int) -> list[FrameResult]:
    rng = np.random.default_rng(0)
    image = np.zeros((8, 8, 3), np.uint8)
    xy = rng.uniform(0, 500, (BOXES, 2)).astype(np.float32)
    detections = Detections(
        xyxy=np.concatenate([xy, xy + 40], axis=1),
        score=rng.uniform(0.5, 1, BOXES).astype(np.float32),
        label=np.ones(BOXES, np.int64),
        track_id=np.arange(BOXES, dtype=np.int64),
    )
    return [
        FrameResult(Frame("cam", i, i / 25, 1.8e9 + i / 25, image), detections)
        for i in range(frames)
    ]


def timed_writes(sink: Sink, frames: list[FrameResult]) -> float:
    """frames/s of `write`; `close` (delivering what waits) not counted."""
    started = time.perf_counter()
    for result in frames:
        sink.write(result)
    elapsed = time.perf_counter() - started
    sink.close()
    return len(frames) / elapsed


def not_delivered(sink: MqttSink) -> str:
    """What the closed sink's connection counted as never reaching the broker."""
    c = sink.connection
    return f"{c.dropped} dropped, {c.undelivered} undelivered, {c.lost} lost"


def mqtt_sink(port: int, qos: int, buffer_size: int = 10_000_000) -> MqttSink:
    settings = BrokerSettings(
        BrokerAddress("127.0.0.1", port, False), client_id=f"bench-{uuid.uuid4().hex[:8]}"
    )
    return MqttSink(
        settings, LABELS, prefix="bench", qos=qos, buffer_size=buffer_size, close_timeout_s=0
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frames = results(args.frames)
    figures: dict[str, list[float]] = {}
    extra: dict[str, str] = {}
    with mosquitto() as (port, _):
        for _ in range(args.repeat):
            publisher = EventPublisher(f"tcp://127.0.0.1:{_free_port()}", LABELS)
            figures.setdefault("zmq (no subscriber)", []).append(timed_writes(publisher, frames))
            for qos in (0, 1, 2):
                sink = mqtt_sink(port, qos)
                figures.setdefault(f"mqtt qos {qos}", []).append(timed_writes(sink, frames))
                extra[f"mqtt qos {qos}"] = not_delivered(sink)
    for _ in range(args.repeat):
        with mosquitto() as (port, process):
            sink = mqtt_sink(port, 1, buffer_size=1000)
            process.kill()
            process.wait()
            while sink.connection.connected:
                time.sleep(0.01)
            figures.setdefault("mqtt broker away (buffer 1000)", []).append(
                timed_writes(sink, frames)
            )
            extra["mqtt broker away (buffer 1000)"] = not_delivered(sink)
    base = statistics.median(figures["zmq (no subscriber)"])
    print(f"{args.frames} frames of {BOXES} boxes, median of {args.repeat}")
    print("| sink | frames/s | vs zmq | note |\n|---|---|---|---|")
    for name, values in figures.items():
        fps = statistics.median(values)
        print(f"| {name} | {fps:,.0f} | {fps / base:.2f} | {extra.get(name, '')} |")


if __name__ == "__main__":
    main()
