"""A subscriber that never reads must not slow the pipeline: events are dropped and counted.

Two measurements, each alternating the conditions and repeated (the median is shown):

1. The sink alone: `EventPublisher.write` of N frames with 20 boxes each (about 2.5 kB per
   event), with no subscriber, with a subscriber reading everything, and with one that never
   reads.
2. The whole pipeline (bundled person model, CPU) on a synthetic clip, with no subscriber and
   with one that never reads: frames per second, events sent and dropped.

    python -m benchmarks.event_bus [--frames 20000] [--pipeline-frames 400] [--repeat 3]

Run it on an otherwise idle machine; results are printed as a table.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import zmq

from pipeline.types import Detections, Frame, FrameResult, LabelMap
from sinks.event_bus.publisher import EventPublisher

LABELS = LabelMap(("background", "person"))


def _endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


@contextmanager
def subscriber(endpoint: str, kind: str) -> Iterator[Callable[[], int]]:
    """None, a reader of everything, or a stalled socket; yields "how many were read"."""
    if kind == "none":
        yield lambda: 0
        return
    context = zmq.Context()
    sock = context.socket(zmq.SUB)
    if kind == "stalled":
        sock.setsockopt(zmq.RCVHWM, 100)
        sock.setsockopt(zmq.RCVBUF, 4096)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    read = [0]
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            if sock.poll(100):
                sock.recv_multipart()
                read[0] += 1

    reader = threading.Thread(target=drain, daemon=True)
    if kind == "reader":
        reader.start()
    try:
        yield lambda: read[0]
    finally:
        stop.set()
        if reader.is_alive():
            reader.join()
        sock.close(linger=0)
        context.term()


def sink_alone(frames: int, kind: str) -> tuple[float, int, int]:
    """(frames/s of write(), events sent, events dropped)."""
    endpoint = _endpoint()
    image = np.zeros((8, 8, 3), np.uint8)
    n = 20
    dets = Detections(
        xyxy=np.tile(np.array([[10.5, 20.25, 110.75, 220.5]], np.float32), (n, 1)),
        score=np.linspace(0.9, 0.5, n).astype(np.float32),
        label=np.ones(n, np.int64),
        track_id=np.arange(n, dtype=np.int64),
    )
    results = [
        FrameResult(Frame("cam", i, i / 25, 1.8e9 + i / 25, image), dets) for i in range(frames)
    ]
    with subscriber(endpoint, kind):
        sink = EventPublisher(
            endpoint, LABELS, send_hwm=1000, wait_for_subscribers=0 if kind == "none" else 1
        )
        start = time.perf_counter()
        for result in results:
            sink.write(result)
        elapsed = time.perf_counter() - start
        sink.close()
    return frames / elapsed, sink.sent, sink.dropped


def pipeline_run(video: Path, kind: str, workdir: Path) -> tuple[float, int, int]:
    """(frames/s of the whole run, events sent, dropped) with a zmq sink only."""
    from pipeline.config import parse_config
    from pipeline.runner import Pipeline

    # ipc: fixed-size socket buffers (loopback TCP grows its own to megabytes), so that a
    # stalled subscriber is full after a few hundred events and drops really happen.
    endpoint = f"ipc://{workdir}/events-{kind}.sock"
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {video}\n"
        "detector:\n  model: person_ssdlite\n  device: cpu\n  batch_size: 8\n"
        "  score_threshold: 0.0\n  max_detections: 20\n"
        f"sinks:\n  - type: zmq\n    endpoint: {endpoint}\n    send_hwm: 100\n"
        f"    wait_for_subscribers: {0 if kind == 'none' else 1}\n"
    )
    with subscriber(endpoint, kind):
        summary = Pipeline(config).run()
    (line,) = [o for o in summary.outputs if o.startswith("zmq ")]
    sent = int(line.split(": ")[1].split(" events sent")[0])
    dropped = int(line.split(", ")[-1].split(" dropped")[0])
    return summary.frames / summary.elapsed_s, sent, dropped


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=20_000)
    parser.add_argument("--pipeline-frames", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-sink", action="store_true", help="only the whole pipeline")
    args = parser.parse_args()

    runs: dict[str, list[tuple[float, int, int]]]
    if not args.skip_sink:
        print(f"sink alone: {args.frames} frames, 20 boxes each, median of {args.repeat}")
        runs = {k: [] for k in ("none", "reader", "stalled")}
        for _ in range(args.repeat):
            for kind in runs:
                runs[kind].append(sink_alone(args.frames, kind))
        _table(runs)

    from tests.conftest import write_video

    with tempfile.TemporaryDirectory() as tmp:
        video = write_video(Path(tmp) / "clip.mp4", frames=args.pipeline_frames, size=(320, 240))
        print(f"\nwhole pipeline: {args.pipeline_frames} frames 320x240, median of {args.repeat}")
        runs = {k: [] for k in ("none", "stalled")}
        pipeline_run(video, "none", Path(tmp))  # warm-up: model load, first-call costs
        for _ in range(args.repeat):
            for kind in runs:
                runs[kind].append(pipeline_run(video, kind, Path(tmp)))
                print(f"  ({kind}: {runs[kind][-1][0]:.1f} frames/s)", flush=True)
        _table(runs)


def _table(runs: dict[str, list[tuple[float, int, int]]]) -> None:
    print(f"  {'subscriber':<10} {'frames/s':>10} {'min-max':>16} {'sent':>8} {'dropped':>8}")
    for kind, results in runs.items():
        rates = [r[0] for r in results]
        print(
            f"  {kind:<10} {statistics.median(rates):>10.1f} "
            f"{f'{min(rates):.1f}-{max(rates):.1f}':>16} {results[-1][1]:>8} {results[-1][2]:>8}"
        )


if __name__ == "__main__":
    main()
