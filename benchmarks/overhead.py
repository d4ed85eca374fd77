"""The pipeline's own cost per frame: everything but the network, with a detector that
costs nothing.

On a GPU the network is cheap (0.43 ms a frame for the bundled model on an NVIDIA H200) and
every thread's Python work (decoding loops, batching, tracking, the sinks) shares one
interpreter lock, so that work, not the GPU, bounds frames/s. This runs the real pipeline
(`Pipeline`: readers, batcher, IoU tracker, sink threads) on `--cameras` cameras reading a
tiny synthetic clip (decoding costs little), with a detector that returns `--boxes` boxes
a frame moving across the image at once, and prints frames/s and the process's CPU-ms per
frame for each sink set: none, ZeroMQ, ZeroMQ + SQLite (the GPU suite's end-to-end sinks).
Each round runs every sink set in a fresh process; with `--baseline REF` the commit REF runs
its rounds in turn with this checkout's, and the ratios (this checkout / REF) are printed.

    python -m benchmarks.overhead [--cameras 16] [--frames 200] [--boxes 4] [--rounds 5]
        [--baseline REF] [--sinks ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import numpy.typing as npt

from benchmarks.machine import machine_line
from pipeline.config import PipelineConfig
from pipeline.detection_loop import FrameDetector
from pipeline.runner import Pipeline
from pipeline.types import Detections, Frame, LabelMap

SIZE = (160, 96)
"""Width, height of the synthetic clip: small, so that decoding costs little."""
BATCH = 32


class InstantDetector(FrameDetector):
    """`boxes` person boxes a frame, drifting with the frame's index so that tracks go on.

    Each frame's boxes are a new `Detections`, built (and checked) as a detector's own
    would be; their columns are worked out once per position (50 of them), so that the
    detector costs little beside the pipeline it feeds.
    """

    labels = LabelMap(("background", "person"))
    background = 0

    def __init__(self, boxes: int) -> None:
        self.boxes = boxes
        self._score = np.full(boxes, 0.9, np.float32)
        self._label = np.ones(boxes, np.int64)
        self._xyxy: dict[tuple[int, int], npt.NDArray[np.float32]] = {}

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        return [self._found(f) for f in frames]

    def _found(self, frame: Frame) -> Detections:
        at = (frame.index % 50, frame.width)
        xyxy = self._xyxy.get(at)
        if xyxy is None:
            xyxy = self._xyxy[at] = self._boxes_at(*at)
        return Detections(xyxy, self._score, self._label)

    def _boxes_at(self, step: int, width: int) -> npt.NDArray[np.float32]:
        k = np.arange(self.boxes, dtype=np.float32)
        x = (k * 30 + step) % max(1, width - 20)
        return np.stack([x, k * 5, x + 20, k * 5 + 40], axis=1).astype(np.float32)

    @property
    def batch_size(self) -> int:
        return BATCH


def write_clip(path: Path, frames: int, size: tuple[int, int] = SIZE) -> None:
    """An H.264 clip of `frames` frames of noise-free moving gradients at 25 frames/s, `size`
    (width, height)."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        ramp = np.linspace(0, 255, width, dtype=np.float32)
        for i in range(frames):
            row = ((ramp + 3 * i) % 256).astype(np.uint8)
            image = np.repeat(np.repeat(row[None, :, None], height, 0), 3, 2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def config(clip: Path, cameras: int, sinks: list[dict[str, Any]]) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "cameras": [{"id": f"cam{i}", "source": str(clip)} for i in range(cameras)],
            "detector": {"batch_size": BATCH},
            "tracker": {"type": "iou"},
            "sinks": sinks,
        }
    )


SINKS: dict[str, Any] = {
    "no sink": lambda out: [],
    "ZeroMQ": lambda out: [{"type": "zmq", "endpoint": "tcp://127.0.0.1:*"}],
    "ZeroMQ + SQLite": lambda out: [
        {"type": "zmq", "endpoint": "tcp://127.0.0.1:*"},
        {"type": "sql", "url": "sqlite:///" + str(out / "detections.db")},
    ],
}


def run_once(clip: Path, cameras: int, boxes: int, sinks: str) -> tuple[int, float, float]:
    """Frames, wall seconds and process CPU seconds of one run."""
    with tempfile.TemporaryDirectory(prefix="ssd-overhead-") as tmp:
        cfg = config(clip, cameras, SINKS[sinks](Path(tmp)))
        pipeline = Pipeline(cfg, detector=InstantDetector(boxes))
        start, start_cpu = time.perf_counter(), time.process_time()
        summary = pipeline.run(on_start=lambda line: None)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    frames = sum(c.frames for c in summary.cameras.values())
    return frames, wall, cpu


def one_round(clip: str, cameras: int, boxes: int, sinks: list[str]) -> dict[str, Any]:
    """One run of each sink set in this process: {sink set: {"fps": frames/s, "cpu_ms":
    process CPU-ms a frame}}."""
    figures = {}
    for name in sinks:
        frames, wall, cpu = run_once(Path(clip), cameras, boxes, name)
        figures[name] = {"fps": frames / wall, "cpu_ms": 1e3 * cpu / frames}
    return figures


ROWS = (("fps", "frames/s", "{:.0f}"), ("cpu_ms", "CPU-ms a frame", "{:.3f}"))
"""What a round measures of each sink set: its key, its name and its format."""


def main(argv: list[str] | None = None) -> None:
    from benchmarks.checkouts import add_round_options, rounds_in_turn  # see that module

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=16, help="cameras (16)")
    parser.add_argument("--frames", type=int, default=200, help="frames per camera (200)")
    parser.add_argument("--boxes", type=int, default=4, help="boxes a frame (4)")
    parser.add_argument("--sinks", nargs="+", choices=list(SINKS), default=list(SINKS))
    add_round_options(parser)
    args = parser.parse_args(argv)
    print(machine_line())
    width, height = SIZE
    print(
        f"{args.cameras} cameras x {args.frames} frames of {width}x{height}, {args.boxes} boxes "
        f"a frame from a detector that costs nothing, batch {BATCH}; median of {args.rounds} "
        "rounds"
    )
    with tempfile.TemporaryDirectory(prefix="ssd-overhead-clip-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, args.frames)  # this checkout's, in the parent only
        round_args = [str(clip), args.cameras, args.boxes, args.sinks]
        rounds = rounds_in_turn(__file__, round_args, args.rounds, args.baseline)
    names = list(rounds)
    ratio = "  ratio" * bool(args.baseline)
    print(f"  {'sinks':<16} {'':<15}" + "".join(f"{name:>15}" for name in names) + ratio)
    for sinks in args.sinks:
        for key, label, form in ROWS:
            runs = [[r[sinks][key] for r in rounds[name]] for name in names]
            medians = [statistics.median(r) for r in runs]
            row = f"  {sinks:<16} {label:<15}" + "".join(f"{form.format(m):>15}" for m in medians)
            if args.baseline:
                row += f"  {medians[-1] / medians[0]:.2f}x"
            listed = "; ".join(", ".join(form.format(v) for v in r) for r in runs)
            print(f"{row}  runs: {listed}")
    if args.baseline:
        print(f"  ratio: this checkout / {args.baseline}")


if __name__ == "__main__":
    main()
