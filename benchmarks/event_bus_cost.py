"""What the zmq sink costs the thread that calls it, per frame.

`EventPublisher.write` of frames from 16 cameras (1920x1080; the pixels do not matter) with
0, 4 or 16 tracked boxes each, and a track event on every 10th frame, to a PUB socket bound
on 127.0.0.1 at a free port, with no subscriber and with one reading everything (in a thread
of its own, not counted). Conditions alternate, each repeated; the median is shown. The
figure is the writing thread's CPU time (`time.thread_time`) per frame: the Python work
that holds the interpreter lock, as in a run. `--profile` also prints where it goes
(cProfile, 4 boxes a frame, no subscriber).

    python -m benchmarks.event_bus_cost [--frames 3000] [--repeat 5] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import zmq

from benchmarks.machine import machine_line
from pipeline.types import (
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    TrackEvent,
    TrackSummary,
)
from sinks.event_bus.publisher import EventPublisher

LABELS = LabelMap(("background", "person"))
CAMERAS = 16
BOXES = (0, 4, 16)
SUBSCRIBERS = ("none", "reader")


def _endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"tcp://127.0.0.1:{probe.getsockname()[1]}"


def frame_results(frames: int, boxes: int, seed: int = 0) -> list[FrameResult]:
    """`frames` results round-robin over `CAMERAS` cameras, `boxes` tracked boxes each (one
    in eight not tracked yet), a track started on every 10th frame."""
    rng = np.random.default_rng(seed)
    image = np.zeros((1080, 1920, 3), np.uint8)  # shared: only its shape is read
    results = []
    for i in range(frames):
        camera, index = f"cam{i % CAMERAS:02d}", i // CAMERAS
        wall_time = 1.8e9 + i / (CAMERAS * 25)
        corner = rng.uniform(0, 1600, (boxes, 2)).astype(np.float32)
        size = rng.uniform(20, 300, (boxes, 2)).astype(np.float32)
        track_id = np.arange(boxes, dtype=np.int64) + index // 50
        track_id[::8] = -1
        detections = Detections(
            xyxy=np.hstack([corner, corner + size]),
            score=rng.uniform(0.3, 1.0, boxes).astype(np.float32),
            label=np.ones(boxes, np.int64),
            track_id=track_id,
        )
        events: tuple[TrackEvent, ...] = ()
        if i % 10 == 0:
            box = (10.0, 20.0, 110.0, 220.0)
            summary = TrackSummary(
                camera, index, 1, index, index, wall_time, wall_time, 3, 0.9, box, box
            )
            events = (TrackEvent("started", summary),)
        frame = Frame(camera, index, index / 25, wall_time, image)
        results.append(FrameResult(frame, detections, events))
    return results


@contextmanager
def subscriber(endpoint: str, kind: str) -> Iterator[Callable[[], int]]:
    """None, or a SUB socket reading everything in a thread; yields "how many were read"."""
    if kind == "none":
        yield lambda: 0
        return
    context = zmq.Context()
    sock = context.socket(zmq.SUB)
    sock.setsockopt(zmq.SUBSCRIBE, b"")
    sock.connect(endpoint)
    read = [0]
    stop = threading.Event()

    def drain() -> None:
        while not stop.is_set():
            if sock.poll(50):
                sock.recv_multipart()
                read[0] += 1

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield lambda: read[0]
    finally:
        stop.set()
        reader.join()
        sock.close(linger=0)
        context.term()


def cpu_ms_per_frame(results: list[FrameResult], kind: str) -> tuple[float, float, int]:
    """(CPU ms per frame of the writing thread, wall ms per frame, events sent)."""
    endpoint = _endpoint()
    with subscriber(endpoint, kind):
        sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=0 if kind == "none" else 1)
        for result in results[:100]:  # warm-up, not counted
            sink.write(result)
        cpu, wall = time.thread_time(), time.perf_counter()
        for result in results:
            sink.write(result)
        cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
        sink.close()
    return cpu / len(results) * 1e3, wall / len(results) * 1e3, sink.sent


def profile(results: list[FrameResult], top: int) -> None:
    """Prints the `top` functions by own time over `results`, no subscriber."""
    sink = EventPublisher(_endpoint(), LABELS)
    for result in results[:100]:
        sink.write(result)
    profiler = cProfile.Profile()
    profiler.enable()
    for result in results:
        sink.write(result)
    profiler.disable()
    sink.close()
    print(f"\nprofile: {len(results)} frames, 4 boxes each, no subscriber (own time, top {top})")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames per timed run")
    parser.add_argument("--repeat", type=int, default=5, help="runs per condition")
    parser.add_argument("--profile", action="store_true", help="also print a cProfile table")
    parser.add_argument("--top", type=int, default=15, help="rows of the profile")
    args = parser.parse_args()

    print(machine_line())
    print(
        f"zmq sink write(): {args.frames} frames of {CAMERAS} cameras (1920x1080), "
        f"a track event every 10th frame; median of {args.repeat} runs"
    )
    results = {boxes: frame_results(args.frames, boxes) for boxes in BOXES}
    runs: dict[tuple[int, str], list[tuple[float, float, int]]] = {
        (boxes, kind): [] for boxes in BOXES for kind in SUBSCRIBERS
    }
    for _ in range(args.repeat):
        for boxes, kind in runs:
            runs[boxes, kind].append(cpu_ms_per_frame(results[boxes], kind))
    print(f"  {'boxes':>5} {'subscriber':<10} {'CPU ms/frame':>12} {'min-max':>13} {'wall ms':>8}")
    for (boxes, kind), measured in runs.items():
        cpu = [m[0] for m in measured]
        wall = statistics.median(m[1] for m in measured)
        spread = f"{min(cpu):.4f}-{max(cpu):.4f}"
        print(f"  {boxes:>5} {kind:<10} {statistics.median(cpu):>12.4f} {spread:>13} {wall:>8.4f}")
    if args.profile:
        profile(results[4], args.top)


if __name__ == "__main__":
    main()
