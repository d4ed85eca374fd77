"""What the zmq sink costs the thread that calls it, per frame.

`EventPublisher.write` of frames from 16 cameras (1920x1080; the pixels do not matter) with
0, 4 or 16 tracked boxes each, and a track event on every 10th frame, to a PUB socket bound
on 127.0.0.1 at a free port, with no subscriber and with one reading everything (in a thread
of its own, not counted). The figure is the writing thread's CPU time (`time.thread_time`)
per frame: the Python work that holds the interpreter lock, as in a run. Each round runs
every condition in a fresh process; with `--baseline REF` the commit REF (exported with
`git archive` into a temporary folder) runs its rounds in turn with this checkout's, and the
ratios are printed. The median of the rounds is shown. `--profile` also prints where this
checkout's time goes (cProfile, 4 boxes a frame, no subscriber).

    python -m benchmarks.event_bus_cost [--frames 3000] [--rounds 5] [--baseline REF] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time

import numpy as np

from benchmarks.event_bus import _endpoint, subscriber
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


def one_round(frames: int) -> dict[str, list[float]]:
    """Every condition once, in this process: {"boxes/subscriber": [CPU ms, wall ms]}."""
    measured = {}
    for boxes in BOXES:
        results = frame_results(frames, boxes)
        for kind in SUBSCRIBERS:
            cpu, wall, _sent = cpu_ms_per_frame(results, kind)
            measured[f"{boxes}/{kind}"] = [cpu, wall]
    return measured


def main(argv: list[str] | None = None) -> None:
    from benchmarks.checkouts import add_round_options, rounds_in_turn  # see that module

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=3000, help="frames per timed run")
    add_round_options(parser)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile table")
    parser.add_argument("--top", type=int, default=15, help="rows of the profile")
    args = parser.parse_args(argv)

    print(machine_line())
    print(
        f"zmq sink write(): {args.frames} frames of {CAMERAS} cameras (1920x1080), "
        f"a track event every 10th frame; CPU ms per frame of the writing thread, "
        f"median of {args.rounds} rounds (wall ms in brackets)"
    )
    rounds = rounds_in_turn(__file__, [args.frames], args.rounds, args.baseline)
    _table(rounds, args.baseline)
    if args.profile:
        profile(frame_results(args.frames, 4), args.top)


def _table(rounds: dict[str, list[dict[str, list[float]]]], baseline: str | None) -> None:
    names = list(rounds)
    header = "".join(f"{name:>22}" for name in names)
    print(f"  {'boxes/subscriber':<16}{header}{'  ratio' if baseline else ''}")
    for condition in rounds[names[0]][0]:
        cells, medians = "", []
        for name in names:
            cpu = statistics.median(r[condition][0] for r in rounds[name])
            wall = statistics.median(r[condition][1] for r in rounds[name])
            medians.append(cpu)
            cells += f"{cpu:>12.4f} ({wall:.4f})"
        ratio = f"  {medians[-1] / medians[0]:.2f}x" if baseline else ""
        print(f"  {condition:<16}{cells}{ratio}")
    if baseline:
        print(f"  ratio: this checkout / {baseline}, CPU time")


if __name__ == "__main__":
    main()
