"""What zones and lines cost per frame, beside what tracking costs, in the same run.

Part one times the stages alone on synthetic crowds (seeded random walks of N people, a
frame of 768x576): the IoU tracker's `update`, then `SceneAnalyzer.update` on its output
with 4 zones and 4 lines. Part two (`--e2e`) runs the whole pipeline on a clip, with and
without a zone and a line, alternating the two so that both see the same machine, and
prints the frames/s of each and their ratio. Part three (`--draw`) times what the video and
live view spend drawing a frame (`annotate`): boxes alone, then boxes with a zone, a line,
their counts and every track's trail (with the `SceneOverlay` update that keeps them).

    python -m benchmarks.analytics [--e2e] [--clip samples/pedestrians.mp4] [--repeats 2]
                                   [--draw]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from analytics import Line, SceneAnalyzer, SceneRules, Zone, scene_layout
from pipeline.config import parse_config
from pipeline.runner import Pipeline
from pipeline.types import AnalyticsEvent, Detections, Frame, FrameResult, LabelMap
from sinks.draw import annotate
from sinks.scene_overlay import SceneOverlay
from trackers import IoUTracker

W, H, FPS = 768, 576, 10.0
RULES = SceneRules(
    anchor=(0.5, 1.0),
    line_hysteresis=0.015,
    min_frames=3,
    occupancy_period_s=None,
    leave_frames=3,
)
ZONES = [
    Zone("a", ((0.0, 0.45), (0.5, 0.45), (0.5, 1.0), (0.0, 1.0))),
    Zone("b", ((0.5, 0.0), (1.0, 0.0), (1.0, 0.5), (0.5, 0.5))),
    Zone("c", ((0.2, 0.2), (0.4, 0.1), (0.6, 0.3), (0.5, 0.6), (0.3, 0.5), (0.1, 0.4))),
    Zone("d", ((0.6, 0.6), (0.9, 0.6), (0.9, 0.9), (0.6, 0.9))),
]
LINES = [
    Line("v", (0.5, 0.0), (0.5, 1.0)),
    Line("h", (0.0, 0.5), (1.0, 0.5)),
    Line("d1", (0.0, 0.0), (1.0, 1.0)),
    Line("d2", (0.2, 0.9), (0.9, 0.2)),
]


def crowd(people: int, frames: int, seed: int = 0) -> list[Detections]:
    """`people` boxes walking at random, with detector-like jitter, for `frames` frames."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform([0, 0], [W - 40, H - 100], size=(people, 2))
    vel = rng.normal(0, 3, size=(people, 2))
    out = []
    for _ in range(frames):
        pos = np.clip(pos + vel, 0, [W - 40, H - 100])
        jitter = rng.normal(0, 1.5, size=(people, 4))
        xyxy = np.concatenate([pos, pos + np.array([40.0, 100.0])], axis=1) + jitter
        out.append(
            Detections(
                xyxy=xyxy.astype(np.float32),
                score=np.full(people, 0.9, np.float32),
                label=np.ones(people, np.int64),
            )
        )
    return out


def stage_costs(people: int, frames: int = 600, rounds: int = 3) -> tuple[float, float]:
    """Microseconds per frame of tracking, and of the analyzer on the tracked boxes (the
    best of `rounds` runs over the same crowd, each stage its own best)."""
    dets = crowd(people, frames)
    runs = [_stage_costs(dets) for _ in range(rounds)]
    return min(r[0] for r in runs), min(r[1] for r in runs)


def _stage_costs(dets: list[Detections]) -> tuple[float, float]:
    frames = len(dets)
    image = np.zeros((H, W, 3), np.uint8)
    tracker = IoUTracker("cam")
    analyzer = SceneAnalyzer("cam", ZONES, LINES, RULES)
    tracking = analysing = 0.0
    for i, d in enumerate(dets):
        frame = Frame("cam", i, i / FPS, i / FPS, image)
        started = time.perf_counter()
        tracked = tracker.update(d, frame)
        events = tuple(tracker.pop_events())
        middle = time.perf_counter()
        analyzer.update(FrameResult(frame, tracked, events))
        tracking += middle - started
        analysing += time.perf_counter() - middle
    return tracking / frames * 1e6, analysing / frames * 1e6


def e2e_fps(clip: Path, with_scene: bool) -> tuple[float, float]:
    """Frames per second of a whole run on `clip` (no sink), with or without a scene, and
    the share of the run's time spent in `SceneAnalyzer.update` (measured inside the run:
    on a shared machine it holds where the frames/s of two runs do not)."""
    scene = (
        "    zones:\n      - {id: a, polygon: [[0, 0.45], [0.5, 0.45], [0.5, 1], [0, 1]]}\n"
        "    lines:\n      - {id: v, points: [[0.5, 0], [0.5, 1]]}\n"
        if with_scene
        else ""
    )
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n{scene}")
    spent = [0.0]
    update = SceneAnalyzer.update

    def timed(self: SceneAnalyzer, result: FrameResult) -> tuple[AnalyticsEvent, ...]:
        started = time.perf_counter()
        try:
            return update(self, result)
        finally:
            spent[0] += time.perf_counter() - started

    SceneAnalyzer.update = timed  # type: ignore[method-assign]
    try:
        summary = Pipeline(config).run()
    finally:
        SceneAnalyzer.update = update  # type: ignore[method-assign]
    return summary.frames / summary.elapsed_s, spent[0] / summary.elapsed_s


def draw_costs(people: int, frames: int = 200, rounds: int = 7) -> tuple[float, float]:
    """Microseconds per frame of `annotate` with the boxes alone, and with a zone, a line,
    their counts and the trails (the overlay's update included), on tracked boxes of a
    crowd over a 768x576 frame (the best of `rounds` runs, each kind its own best)."""
    tracker = IoUTracker("cam")
    image = np.random.default_rng(1).integers(0, 255, (H, W, 3), dtype=np.uint8)
    results = []
    for i, d in enumerate(crowd(people, frames)):
        frame = Frame("cam", i, i / FPS, i / FPS, image)
        tracked = tracker.update(d, frame)
        results.append(FrameResult(frame, tracked, tuple(tracker.pop_events())))
    layout = scene_layout(ZONES[:1], LINES[:1], RULES.anchor, W, H)
    labels = LabelMap(("background", "person"))
    plain, drawn = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        for r in results:
            annotate(r.frame.image, r.detections, labels)
        plain.append(time.perf_counter() - started)
        overlay = SceneOverlay(layout)
        started = time.perf_counter()
        for r in results:
            overlay.update(r)
            annotate(r.frame.image, r.detections, labels, overlay.view())
        drawn.append(time.perf_counter() - started)
    return min(plain) / frames * 1e6, min(drawn) / frames * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--e2e", action="store_true", help="also time whole runs on --clip")
    parser.add_argument("--clip", type=Path, default=Path("samples/pedestrians.mp4"))
    parser.add_argument("--repeats", type=int, default=2, help="whole runs of each kind")
    parser.add_argument("--draw", action="store_true", help="also time drawing the scene")
    args = parser.parse_args()

    print(f"stages alone, {len(ZONES)} zones and {len(LINES)} lines, frames of {W}x{H}:")
    print(f"{'people':>7} {'tracking us/frame':>18} {'analytics us/frame':>19} {'ratio':>6}")
    for people in (5, 20, 50):
        tracking, analysing = stage_costs(people)
        print(f"{people:>7} {tracking:>18.0f} {analysing:>19.0f} {analysing / tracking:>6.2f}")
    if args.draw:
        print(f"drawing a {W}x{H} frame (annotate), boxes alone and with a zone, a line, counts")
        print("and trails of up to 30 points:")
        print(f"{'people':>7} {'boxes us/frame':>15} {'with scene us/frame':>20} {'ratio':>6}")
        for people in (5, 20, 50):
            plain, drawn = draw_costs(people)
            print(f"{people:>7} {plain:>15.0f} {drawn:>20.0f} {drawn / plain:>6.2f}")
    if not args.e2e:
        return
    best = {False: 0.0, True: 0.0}
    shares = []
    for _ in range(args.repeats):
        for with_scene in (False, True):  # alternating: both see the same machine
            fps, share = e2e_fps(args.clip, with_scene)
            best[with_scene] = max(best[with_scene], fps)
            if with_scene:
                shares.append(share)
    print(f"whole runs on {args.clip} (best of {args.repeats}, no sinks):")
    print(f"  without zones/lines: {best[False]:.2f} frames/s")
    print(f"  with a zone and a line: {best[True]:.2f} frames/s")
    print(f"  ratio: {best[True] / best[False]:.3f}")
    print(f"  time in the analyzer, measured in the runs: {100 * max(shares):.2f}% at most")


if __name__ == "__main__":
    main()
