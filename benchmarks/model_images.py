"""What resizing on the readers' threads takes off the detector's thread, per frame.

A run's camera readers resize every frame they hand over whole to the network's input
(`Frame.model_image`, `Detector.model_image`), so the detector's thread only stacks
input-sized images: at 1080p that is a twentieth of the bytes a full frame would cost it to
copy. This detects the same batches of frames (frames of the bundled clip scaled to
`--size`) with and without their model images, the rounds interleaved, and prints per frame
the median of the detector's own stage times (`Detector.stage_times`: prepare, forward,
post-processing) and of its whole `detect` call, each ratio measured in the same run, and
what the readers pay instead (CPU time of `model_image`, on their own threads in a run).
It checks that both give the same boxes.

    python -m benchmarks.model_images [--size 1920x1080] [--batch 32] [--repeat 7]
        [--device auto|cpu|cuda] [--precision auto|fp32|fp16|int8] [--runtime auto|torch|...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import cv2
import numpy as np

from benchmarks.machine import machine_line
from detector.clip_frames import sample_frames
from detector.engine import Detector
from detector.quantize import DEFAULT_CALIBRATION
from detector.request import DetectorRequest
from detector.timing import StageTimes
from pipeline.argtypes import frame_size
from pipeline.build import leave_a_core
from pipeline.types import Detections, Frame

STAGES = ("prepare_s", "forward_s", "postprocess_s")


def _timed(detector: Detector, frames: list[Frame]) -> tuple[list[Detections], StageTimes, float]:
    """The batch's detections, its stage times, and the wall seconds of `detect`."""
    detector.stage_times = StageTimes()
    start = time.perf_counter()
    found = detector.detect(frames)
    wall = time.perf_counter() - start
    times, detector.stage_times = detector.stage_times, None
    return found, times, wall


def _same(a: list[Detections], b: list[Detections]) -> bool:
    return all(
        np.array_equal(x.label, y.label) and np.allclose(x.xyxy, y.xyxy, atol=1e-3)
        for x, y in zip(a, b, strict=True)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=frame_size, default=(1920, 1080), help="WxH (1920x1080)")
    parser.add_argument("--batch", type=int, default=32, help="frames per batch (32)")
    parser.add_argument("--repeat", type=int, default=7, help="rounds (7)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda (auto)")
    parser.add_argument("--precision", default="auto", help="as in the config (auto)")
    parser.add_argument("--runtime", default="auto", help="as in the config (auto)")
    args = parser.parse_args(argv)
    width, height = args.size
    request = DetectorRequest(
        device=args.device, runtime=args.runtime, precision=args.precision, batch_size=args.batch
    )
    detector = Detector.build(request)
    leave_a_core(detector)  # as a run does
    clip = sample_frames(DEFAULT_CALIBRATION, args.batch)
    images = [np.asarray(cv2.resize(image, (width, height)), np.uint8) for image in clip]
    frames = [Frame("bench", i, 0.0, 0.0, image) for i, image in enumerate(images)]
    _timed(detector, frames)  # warm-up: kernels, caches and the host-copy threads started
    cases = ("resized by the detector", "resized ahead")
    walls: dict[str, list[float]] = {name: [] for name in cases}
    stages: dict[str, dict[str, list[float]]] = {n: {s: [] for s in STAGES} for n in cases}
    readers: list[float] = []
    agree = True
    for _ in range(args.repeat):
        start = time.process_time()
        resized = [detector.model_image(image) for image in images]
        readers.append(time.process_time() - start)
        ahead = [replace(f, model_image=r) for f, r in zip(frames, resized, strict=True)]
        found = {}
        for name, batch in (("resized by the detector", frames), ("resized ahead", ahead)):
            found[name], times, wall = _timed(detector, batch)
            walls[name].append(wall)
            for stage in STAGES:
                stages[name][stage].append(getattr(times, stage))
        agree = agree and _same(found["resized by the detector"], found["resized ahead"])

    def per_frame(seconds: list[float]) -> float:
        return 1e3 * statistics.median(seconds) / args.batch

    print(machine_line())
    print(
        f"{detector.describe()}; {args.batch} frames of {width}x{height} a batch, "
        f"median of {args.repeat} interleaved rounds, ms per frame"
    )
    print(f"  {'':<24} {'prepare':>8} {'forward':>8} {'post':>8} {'detect':>8}")
    for name in cases:
        row = [per_frame(stages[name][s]) for s in STAGES] + [per_frame(walls[name])]
        print(f"  {name:<24} " + " ".join(f"{v:>8.3f}" for v in row))
    base, ahead_name = "resized by the detector", "resized ahead"
    prepare_ratio = per_frame(stages[base]["prepare_s"]) / per_frame(
        stages[ahead_name]["prepare_s"]
    )
    detect_ratio = per_frame(walls[base]) / per_frame(walls[ahead_name])
    print(
        f"  detector's thread: prepare {prepare_ratio:.1f}x cheaper, detect {detect_ratio:.2f}x "
        f"faster resized ahead; the readers' threads pay {per_frame(readers):.3f} CPU-ms "
        f"a frame for it; same boxes: {'yes' if agree else 'NO'}"
    )


if __name__ == "__main__":
    main()
