"""What a run pays for the memory of its frames at 1080p: frames/s, the process's CPU ms a
frame, the page faults a frame and its peak resident memory.

The real pipeline (`Pipeline`: readers decoding and resizing for the network, batcher, IoU
tracker, ZeroMQ and SQLite sinks, as the GPU suite's end-to-end case) runs `--cameras`
cameras reading a 1920x1080 H.264 clip, with a detector that costs nothing (that of
`benchmarks.overhead`, its frames resized to 300x300 on the readers' threads as a network's
would be). Each round runs in a fresh process, since malloc's settings are the whole
process's; with `--baseline REF` the commit REF runs its rounds in turn with this
checkout's, and the ratios are printed.

    python -m benchmarks.frame_memory [--cameras 8] [--frames 100] [--rounds 5] [--baseline REF]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from benchmarks.machine import machine_line
from benchmarks.overhead import InstantDetector, write_clip
from detector.resize import resize_rgb
from pipeline.config import PipelineConfig
from pipeline.runner import Pipeline

SIZE = (1920, 1080)
"""Width, height of the clip: the GPU suite's end-to-end frames."""
MODEL_SIZE = (300, 300)
BOXES = 4
BATCH = 32
ROWS = (
    ("fps", "frames/s"),
    ("cpu_ms", "CPU-ms a frame"),
    ("faults", "faults a frame"),
    ("peak_mb", "peak MB"),
)
"""What a round measures, and its row's name."""


class ResizingDetector(InstantDetector):
    """`InstantDetector`, with its frames resized on the readers' threads as a network's."""

    def model_image(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        return resize_rgb(image, MODEL_SIZE)


def one_round(clip: str, cameras: int) -> dict[str, float]:
    """One run in this process: frames/s, process CPU ms a frame, page faults a frame (memory
    written for the first time) and peak resident MB."""
    with tempfile.TemporaryDirectory(prefix="ssd-frame-memory-") as tmp:
        cfg = PipelineConfig.model_validate(
            {
                "cameras": [{"id": f"cam{i}", "source": str(clip)} for i in range(cameras)],
                "detector": {"batch_size": BATCH},
                "tracker": {"type": "iou"},
                "sinks": [
                    {"type": "zmq", "endpoint": "tcp://127.0.0.1:*"},
                    {"type": "sql", "url": f"sqlite:///{tmp}/detections.db"},
                ],
            }
        )
        pipeline = Pipeline(cfg, detector=ResizingDetector(BOXES))
        start, start_cpu = time.perf_counter(), time.process_time()
        start_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        summary = pipeline.run(on_start=lambda line: None)
        wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start_faults
    frames = sum(c.frames for c in summary.cameras.values())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "fps": frames / wall,
        "cpu_ms": 1e3 * cpu / frames,
        "faults": faults / frames,
        "peak_mb": peak_mb,
    }


def main(argv: list[str] | None = None) -> None:
    from benchmarks.checkouts import add_round_options, rounds_in_turn  # see that module

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, default=8, help="cameras (8)")
    parser.add_argument("--frames", type=int, default=100, help="frames per camera (100)")
    add_round_options(parser)
    args = parser.parse_args(argv)
    print(machine_line())
    width, height = SIZE
    print(
        f"{args.cameras} cameras x {args.frames} frames of {width}x{height} H.264, resized to "
        f"{MODEL_SIZE[1]}x{MODEL_SIZE[0]} on the readers, {BOXES} boxes a frame from a detector "
        f"that costs nothing, batch {BATCH}, ZeroMQ + SQLite; median of {args.rounds} rounds"
    )
    with tempfile.TemporaryDirectory(prefix="ssd-frame-memory-clip-") as tmp:
        clip = Path(tmp) / "clip.mp4"
        write_clip(clip, args.frames, SIZE)  # this checkout's, in the parent only
        rounds = rounds_in_turn(__file__, [str(clip), args.cameras], args.rounds, args.baseline)
    names = list(rounds)
    print(
        f"  {'':<14}" + "".join(f"{name:>16}" for name in names) + ("  ratio" * bool(args.baseline))
    )
    for key, label in ROWS:
        medians = [statistics.median(r[key] for r in rounds[name]) for name in names]
        runs = "  runs: " + "; ".join(
            ", ".join(f"{r[key]:.2f}" for r in rounds[name]) for name in names
        )
        ratio = f"  {medians[-1] / medians[0]:.2f}x" if args.baseline else ""
        print(f"  {label:<14}" + "".join(f"{m:>16.2f}" for m in medians) + ratio + runs)
    if args.baseline:
        print(f"  ratio: this checkout / {args.baseline}")


if __name__ == "__main__":
    main()
