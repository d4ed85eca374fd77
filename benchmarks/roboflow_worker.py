"""Runs SORT and ByteTrack of Roboflow's `trackers` package on prepared detections.

Started by benchmarks/tracking.py in a separate process whose `sys.path` puts Roboflow's
package first: its import name, `trackers`, is also the name of this project's package, so
the two never share a process. This script imports nothing from the project.

    python benchmarks/roboflow_worker.py IN.npz OUT.npz REPEAT

IN.npz holds, per run i: `det{i}` float64 [K, 6] (frame, x1, y1, x2, y2, score), frames
counted from 1; `frames{i}`: number of frames; `fps{i}`: frame rate. OUT.npz gets, per
tracker name and run: `hyp_{name}_{i}` float64 [H, 6] (frame, id, x1, y1, x2, y2) for every
box the tracker gave an id, and `sec_{name}_{i}`: the fastest of REPEAT timed passes.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import supervision as sv

# Resolved at run time, from the PYTHONPATH the benchmark sets: Roboflow's package.
trackers = importlib.import_module("trackers")
if not hasattr(trackers, "SORTTracker"):
    sys.exit(
        f"roboflow_worker: imported {trackers.__file__}, which is not Roboflow's trackers "
        "package; pass --rf-trackers DIR (pip install --target DIR trackers)"
    )

BASELINES: dict[str, Callable[[float], Any]] = {
    "SORT": lambda fps: trackers.SORTTracker(frame_rate=fps),
    "ByteTrack": lambda fps: trackers.ByteTrackTracker(frame_rate=fps),
}


def frames_of(det: np.ndarray, frames: int) -> list[sv.Detections]:
    """One `sv.Detections` per frame (1..frames), built before any timing."""
    out = []
    for f in range(1, frames + 1):
        rows = det[det[:, 0] == f]
        out.append(
            sv.Detections(
                xyxy=rows[:, 1:5].astype(np.float32),
                confidence=rows[:, 5].astype(np.float32),
                class_id=np.zeros(len(rows), dtype=int),
            )
        )
    return out


def run(
    make: Callable[[float], Any], inputs: list[sv.Detections], fps: float
) -> tuple[float, np.ndarray]:
    """Seconds spent in `update` over the whole sequence, and the boxes given an id."""
    tracker = make(fps)
    start = time.perf_counter()
    outputs = [tracker.update(dets) for dets in inputs]
    seconds = time.perf_counter() - start
    hyp = []
    for f, out in enumerate(outputs, start=1):
        keep = out.tracker_id >= 0
        for tid, box in zip(out.tracker_id[keep], out.xyxy[keep], strict=True):
            hyp.append((f, tid, *box))
    return seconds, np.array(hyp, dtype=np.float64).reshape(-1, 6)


def main(src: str, dst: str, repeat: int) -> None:
    data = np.load(src)
    out: dict[str, np.ndarray] = {}
    for i in range(int(data["runs"])):
        fps = float(data[f"fps{i}"])
        inputs = frames_of(data[f"det{i}"], int(data[f"frames{i}"]))
        for name, make in BASELINES.items():
            passes = [run(make, inputs, fps) for _ in range(repeat)]
            out[f"hyp_{name}_{i}"] = passes[0][1]
            out[f"sec_{name}_{i}"] = np.array(min(seconds for seconds, _ in passes))
    np.savez(dst, **out)  # type: ignore[arg-type]


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
