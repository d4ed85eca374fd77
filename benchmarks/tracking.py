"""Identity quality and speed of the IoU tracker beside SORT and ByteTrack.

Ground truth of TUD-Campus and TUD-Stadtmitte (shipped inside py-motmetrics) is turned into
detector-like input with seeded noise (`NoiseModel`, in benchmarks/tracking_data.py); every
tracker gets the same input and py-motmetrics scores what it returns. See
benchmarks/README.md for how to run it and docs/tracking.md for the results.

    python -m benchmarks.tracking --rf-trackers /tmp/rf_trackers
    python -m benchmarks.tracking --pairs
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

import trackers.iou as iou_module
from benchmarks.tracking_data import Array, NoiseModel, Sequence, load_sequences, tiled
from pipeline.types import Detections, Frame
from trackers import IoUTracker

WORKER = Path(__file__).with_name("roboflow_worker.py")
METRICS = (
    "mota",
    "idf1",
    "num_switches",
    "num_fragmentations",
    "num_false_positives",
    "num_misses",
)


@dataclass
class Run:
    """One tracker on one noisy copy of one sequence."""

    tracker: str
    sequence: str
    seed: int
    seconds: float
    frames: int
    metrics: dict[str, float] = field(default_factory=dict)


def run_iou_tracker(
    det: Array, seq: Sequence, params: dict[str, float], repeat: int
) -> tuple[float, Array]:
    """Fastest of `repeat` timed passes of `IoUTracker`, and the boxes it gave an id.

    Returns (seconds in update + pop_events, float64 [H, 6] (frame, id, x1, y1, x2, y2)).
    """
    image = np.zeros((1, 1, 3), np.uint8)
    inputs = []
    for f in range(1, seq.frames + 1):
        rows = det[det[:, 0] == f]
        dets = Detections(
            xyxy=rows[:, 1:5].astype(np.float32),
            score=rows[:, 5].astype(np.float32),
            label=np.zeros(len(rows), np.int64),
        )
        inputs.append((dets, Frame("bench", f, f / seq.fps, f / seq.fps, image)))
    best = float("inf")
    outputs: list[Detections] = []
    for _ in range(repeat):
        tracker = IoUTracker("bench", **params)  # type: ignore[arg-type]
        start = time.perf_counter()
        outputs = []
        for dets, frame in inputs:
            outputs.append(tracker.update(dets, frame))
            tracker.pop_events()
        tracker.finish()
        best = min(best, time.perf_counter() - start)
    hyp = [
        np.column_stack([np.full(len(o), f), o.track_id, o.xyxy])[o.track_id >= 0]
        for f, o in enumerate(outputs, start=1)
    ]
    return best, np.concatenate(hyp).astype(np.float64)


def run_baselines(
    inputs: list[tuple[Sequence, int, Array]], python: list[str], env: dict[str, str], repeat: int
) -> dict[tuple[str, int], list[tuple[str, float, Array]]]:
    """SORT and ByteTrack on the same inputs, in a separate process (see roboflow_worker)."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
        arrays: dict[str, npt.NDArray[np.generic]] = {"runs": np.array(len(inputs))}
        for i, (seq, _, det) in enumerate(inputs):
            arrays[f"det{i}"] = det
            arrays[f"frames{i}"] = np.array(seq.frames)
            arrays[f"fps{i}"] = np.array(seq.fps)
        np.savez(src, **arrays)  # type: ignore[arg-type]
        done = subprocess.run(
            [*python, str(WORKER), str(src), str(dst), str(repeat)],
            env=env,
            cwd=tmp,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            sys.exit(f"the SORT/ByteTrack worker failed:\n{done.stderr.strip()}")
        out = np.load(dst)
        results: dict[tuple[str, int], list[tuple[str, float, Array]]] = {}
        for i, (seq, seed, _) in enumerate(inputs):
            results[(seq.name, seed)] = [
                (name, float(out[f"sec_{name}_{i}"]), out[f"hyp_{name}_{i}"])
                for name in ("SORT", "ByteTrack")
            ]
        return results


def evaluate(seq: Sequence, hyp: Array) -> dict[str, float]:
    """py-motmetrics CLEAR-MOT and identity metrics; a match needs IoU >= 0.5."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=True)
    for f in range(1, seq.frames + 1):
        g = seq.gt[seq.gt[:, 0] == f]
        h = hyp[hyp[:, 0] == f]
        # motmetrics' own iou_matrix uses np.asfarray, which NumPy 2 removed.
        overlap = iou_module.box_iou(g[:, 2:6], h[:, 2:6])
        dist = np.where(overlap >= 0.5, 1.0 - overlap, np.nan)
        acc.update(g[:, 1].astype(int), h[:, 1].astype(int), dist)
    summary = mm.metrics.create().compute(acc, metrics=list(METRICS), name="x")
    return {m: float(summary[m].iloc[0]) for m in METRICS}


def optimal_assignment(pairs: list[tuple[float, int, int]]) -> list[tuple[int, int]]:
    """Stands in for `greedy_assignment`: the candidate pairs of greatest total IoU (scipy)."""
    from scipy.optimize import linear_sum_assignment

    if not pairs:
        return []
    score = np.zeros((max(t for _, t, _ in pairs) + 1, max(d for _, _, d in pairs) + 1))
    for negated_iou, t, d in pairs:
        score[t, d] = -negated_iou
    rows, cols = linear_sum_assignment(score, maximize=True)
    return [(t, d) for t, d in zip(rows.tolist(), cols.tolist(), strict=True) if score[t, d] > 0]


GREEDY = iou_module.greedy_assignment


@dataclass
class AssignmentAudit:
    """Stands in for `greedy_assignment`; counts frames where the optimal one differs."""

    frames: int = 0
    differ: int = 0

    def __call__(self, pairs: list[tuple[float, int, int]]) -> list[tuple[int, int]]:
        taken = GREEDY(pairs)
        if pairs:
            self.frames += 1
            self.differ += set(taken) != set(optimal_assignment(pairs))
        return taken


@contextmanager
def patched(**values: object) -> Iterator[None]:
    """Temporarily replace attributes of trackers.iou (assignment, VELOCITY_GAIN, ...)."""
    old = {k: getattr(iou_module, k) for k in values}
    for k, v in values.items():
        setattr(iou_module, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(iou_module, k, v)


def table(runs: list[Run], sequences: list[Sequence]) -> str:
    """Markdown: per tracker, each sequence (mean over seeds), their mean, and frames/s."""
    names = list(dict.fromkeys(r.tracker for r in runs))
    lines = [
        "| tracker | sequence | MOTA | IDF1 | ID sw. | frag. | FP | FN | frames/s |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        mine = [r for r in runs if r.tracker == name]
        per_seq = []
        for seq in sequences:
            rs = [r for r in mine if r.sequence == seq.name]
            m = {k: float(np.mean([r.metrics[k] for r in rs])) for k in METRICS}
            fps = sum(r.frames for r in rs) / sum(r.seconds for r in rs)
            per_seq.append((m, fps))
            lines.append(_row(name, seq.name, m, fps))
        mean = {k: float(np.mean([m[k] for m, _ in per_seq])) for k in METRICS}
        fps = sum(r.frames for r in mine) / sum(r.seconds for r in mine)
        lines.append(_row(f"**{name}**", "**mean**", mean, fps))
    return "\n".join(lines)


def _row(name: str, seq: str, m: dict[str, float], fps: float) -> str:
    return (
        f"| {name} | {seq} | {m['mota']:.3f} | {m['idf1']:.3f} | {m['num_switches']:.1f} | "
        f"{m['num_fragmentations']:.1f} | {m['num_false_positives']:.1f} | "
        f"{m['num_misses']:.1f} | {fps:,.0f} |"
    )


def baseline_command(args: argparse.Namespace) -> tuple[list[str], dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if args.rf_python:
        return [args.rf_python], env
    if not Path(args.rf_trackers, "trackers", "core").is_dir():
        sys.exit(
            f"Roboflow's trackers package is not in {args.rf_trackers}: install it with "
            f"`pip install --target {args.rf_trackers} trackers`, pass --rf-trackers DIR or "
            "--rf-python PY, or use --no-baselines"
        )
    env["PYTHONPATH"] = str(Path(args.rf_trackers).resolve())
    return [sys.executable], env


SWEEP: dict[str, list[float]] = {
    "max_age": [10, 30, 60],
    "sigma_iou": [0.3, 0.4, 0.5],
    "t_min": [2, 3],
    "POSITION_GAIN": [0.2, 0.3, 0.5],
    "VELOCITY_GAIN": [0.05, 0.1, 0.2],
}
"""The grid of `--sweep`: IoUTracker arguments, and trackers.iou constants (upper case)."""


def sweep(inputs: list[tuple[Sequence, int, Array]]) -> None:
    """Mean IDF1 and MOTA over all inputs for each combination of SWEEP, best first."""
    results = []
    for values in itertools.product(*SWEEP.values()):
        combo = dict(zip(SWEEP, values, strict=True))
        params = {k: v for k, v in combo.items() if not k.isupper()}
        constants = {k: v for k, v in combo.items() if k.isupper()}
        with patched(**constants):
            scores = [
                evaluate(seq, run_iou_tracker(det, seq, params, 1)[1]) for seq, _, det in inputs
            ]
        idf1 = float(np.mean([s["idf1"] for s in scores]))
        mota = float(np.mean([s["mota"] for s in scores]))
        results.append((idf1 + mota, idf1, mota, combo))
        print(f"IDF1 {idf1:.3f} MOTA {mota:.3f} {combo}", flush=True)
    print("\nbest (IDF1 + MOTA):")
    for _, idf1, mota, combo in sorted(results, key=lambda r: -r[0])[:20]:
        print(f"IDF1 {idf1:.3f} MOTA {mota:.3f} {combo}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="noisy copies per sequence")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the fastest counts")
    parser.add_argument(
        "--rf-trackers",
        default="/tmp/rf_trackers",
        help="folder holding Roboflow's trackers (pip install --target DIR)",
    )
    parser.add_argument("--rf-python", help="a Python whose `import trackers` is Roboflow's")
    parser.add_argument("--no-baselines", action="store_true", help="skip SORT and ByteTrack")
    parser.add_argument("--sweep", action="store_true", help="grid over the tracker's parameters")
    parser.add_argument(
        "--pairs",
        action="store_true",
        help="only time overlapping_pairs for 13 tracks x 6 detections, numpy and loop",
    )
    parser.add_argument(
        "--tiles",
        type=int,
        default=4,
        help="also time every tracker on sequences tiled this many times",
    )
    for name, default in (("jitter", 0.05), ("miss", 0.10), ("burst-rate", 0.02), ("fp-rate", 1.0)):
        parser.add_argument(f"--{name}", type=float, default=default, help="noise model")
    args = parser.parse_args(argv)
    if args.pairs:
        print(pair_costs(tracks=13, detections=6))
        return

    noise = NoiseModel(
        jitter=args.jitter, miss=args.miss, burst_rate=args.burst_rate, fp_rate=args.fp_rate
    )
    sequences = load_sequences()
    inputs = [
        (seq, seed, noise.apply(seq, seed)) for seq in sequences for seed in range(args.seeds)
    ]
    print(f"noise model: {noise.describe()}")
    print(f"{args.seeds} seeds per sequence; frames/s: fastest of {args.repeat} passes\n")
    if args.sweep:
        sweep(inputs)
        return

    runs: list[Run] = []
    variants: list[tuple[str, dict[str, float], dict[str, object]]] = [
        ("IoU tracker", {}, {}),
        ("IoU tracker, max_age=0 (paper)", {"max_age": 0}, {}),
        ("IoU tracker, optimal assignment", {}, {"greedy_assignment": optimal_assignment}),
    ]
    for name, params, patch in variants:
        with patched(**patch):
            for seq, seed, det in inputs:
                seconds, hyp = run_iou_tracker(det, seq, params, args.repeat)
                runs.append(Run(name, seq.name, seed, seconds, seq.frames, evaluate(seq, hyp)))
    if not args.no_baselines:
        python, env = baseline_command(args)
        for (seq_name, seed), results in run_baselines(inputs, python, env, args.repeat).items():
            seq = next(s for s in sequences if s.name == seq_name)
            for name, seconds, hyp in results:
                runs.append(Run(name, seq_name, seed, seconds, seq.frames, evaluate(seq, hyp)))
    print(table(runs, sequences))

    audit = AssignmentAudit()
    with patched(greedy_assignment=audit):
        for seq, _, det in inputs:
            run_iou_tracker(det, seq, {}, 1)
    print(
        f"\ngreedy and optimal assignment differ in {audit.differ} of {audit.frames} frames "
        "with candidate pairs (default parameters, all inputs)"
    )
    if args.no_baselines:
        return
    print(speed_ratios(runs, "all inputs"))
    if args.tiles > 1:
        wide = [(*tiled(seq, det, args.tiles), seed) for seq, seed, det in inputs if seed == 0]
        speed: list[Run] = []
        for seq, det, seed in wide:
            seconds, _ = run_iou_tracker(det, seq, {}, args.repeat)
            speed.append(Run("IoU tracker", seq.name, seed, seconds, seq.frames))
        wide_inputs = [(seq, seed, det) for seq, det, seed in wide]
        frames = {seq.name: seq.frames for seq, _, _ in wide}
        for (name, seed), results in run_baselines(wide_inputs, python, env, args.repeat).items():
            for tracker, seconds, _ in results:
                speed.append(Run(tracker, name, seed, seconds, frames[name]))
        print(speed_ratios(speed, f"sequences tiled {args.tiles}× (seed 0)"))


def pair_costs(tracks: int, detections: int, calls: int = 20_000) -> str:
    """µs per `overlapping_pairs` call through numpy and through the scalar loop, one
    frame of people-sized boxes, fastest of 5 timings of `calls` calls each."""
    rng = np.random.default_rng(0)
    corners = rng.uniform((0, 0), (700, 450), size=(tracks, 2))
    boxes = [(x, y, x + 60.0, y + 120.0) for x, y in corners.tolist()]
    dets = [((x1 + 3, y1 - 2, x2 + 5, y2 + 1), 0.9, 1) for x1, y1, x2, y2 in boxes[:detections]]
    labels = [1] * tracks

    def per_call(dense_pairs: int) -> float:
        with patched(DENSE_PAIRS=dense_pairs):
            best = min(
                timeit.repeat(
                    lambda: iou_module.overlapping_pairs(boxes, labels, dets, 0.3),
                    number=calls,
                    repeat=5,
                )
            )
        return best / calls * 1e6

    numpy_us, loop_us = per_call(0), per_call(tracks * detections)
    return (
        f"overlapping_pairs, {tracks} tracks x {detections} detections: "
        f"numpy {numpy_us:.1f} µs, loop {loop_us:.1f} µs (numpy / loop {numpy_us / loop_us:.1f})"
    )


def speed_ratios(runs: list[Run], what: str) -> str:
    """frames/s of each tracker over `runs`, and the IoU tracker's speed-up."""

    def fps(name: str) -> float:
        mine = [r for r in runs if r.tracker == name]
        return sum(r.frames for r in mine) / sum(r.seconds for r in mine)

    ours = fps("IoU tracker")
    parts = [f"IoU tracker {ours:,.0f} frames/s"] + [
        f"{base} {fps(base):,.0f} frames/s (IoU tracker ×{ours / fps(base):.1f})"
        for base in ("SORT", "ByteTrack")
    ]
    return f"{what}: " + "; ".join(parts)


if __name__ == "__main__":
    main()
