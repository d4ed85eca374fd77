"""int8 against float32 on real footage: how many detections agree, and how much faster.

Runs the model three ways over a clip (torch float32, ONNX Runtime float32, ONNX Runtime
int8) and prints how closely the last two follow torch's detections (`detector.agreement`),
then the network's images/s in float32 and int8 on the same inputs, interleaved.
By default the clip is vtest.avi from frame 200: the default calibration clip is its first
200 frames, so the figures are on frames the quantizer never saw. See docs/performance.md.

    python -m benchmarks.quantization [--clip ../shared/data/vtest.avi --start 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from pathlib import Path

import av
import torch

from detector import Detector, DetectorRequest
from detector.agreement import Agreement, compare
from pipeline.bench.model_only import bench_model
from pipeline.types import Detections, Frame

DEFAULT_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "vtest.avi"


def read_frames(clip: Path, start: int, stop: int | None) -> list[Frame]:
    """Frames start..stop-1 of `clip`, RGB."""
    frames = []
    with av.open(str(clip)) as container:
        for i, image in enumerate(container.decode(video=0)):
            if stop is not None and i >= stop:
                break
            if i >= start:
                pts = float(image.time or 0.0)
                frames.append(Frame("clip", i, pts, 0.0, image.to_ndarray(format="rgb24")))
    if not frames:
        raise SystemExit(f"{clip} has no frames from {start}")
    return frames


def detect_all(detector: Detector, frames: list[Frame], batch: int) -> list[Detections]:
    found: list[Detections] = []
    for i in range(0, len(frames), batch):
        found += detector.detect(frames[i : i + batch])
    return found


def images_per_s(detectors: dict[str, Detector], batch: int, rounds: int) -> dict[str, float]:
    """Median images/s of each detector's network (`pipeline.bench.model_only.bench_model`:
    the same seeded random inputs, a warm-up, 1 s a run), measured in turn, so that load on
    the machine hits all alike."""
    runs: dict[str, list[float]] = {name: [] for name in detectors}
    for _ in range(rounds):
        for name, detector in detectors.items():
            result = bench_model(
                detector, name, "default", detector.precision, batch, 1, min_time_s=1.0
            )
            runs[name].append(result.images_per_s)
    return {name: statistics.median(r) for name, r in runs.items()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clip", type=Path, default=DEFAULT_CLIP, help="video to compare on")
    parser.add_argument("--start", type=int, default=200, help="first frame (200)")
    parser.add_argument("--stop", type=int, default=None, help="frame to stop before (end)")
    parser.add_argument("--model", default="person_ssdlite")
    parser.add_argument("--calibration", type=Path, default=None, help="int8 calibration clip")
    parser.add_argument("--score-threshold", type=float, default=0.5)
    parser.add_argument(
        "--int8-threshold", type=float, default=None,
        help="score threshold of the int8 network (default: --score-threshold); a little "
             "lower makes up for int8's lower scores",
    )  # fmt: skip
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per network")
    args = parser.parse_args(argv)

    torch.set_flush_denormal(True)
    frames = read_frames(args.clip, args.start, args.stop)
    # fp32 asked for: under precision auto the bundled model runs in int8 on VNNI CPUs.
    asked = DetectorRequest(
        model=args.model, device="cpu", precision="fp32", score_threshold=args.score_threshold
    )
    int8 = dataclasses.replace(
        asked,
        precision="int8",
        calibration=args.calibration,
        score_threshold=args.int8_threshold or args.score_threshold,
    )
    detectors = {
        "torch fp32": Detector.build(dataclasses.replace(asked, runtime="torch")),
        "onnxruntime fp32": Detector.build(dataclasses.replace(asked, runtime="onnxruntime")),
        "onnxruntime int8": Detector.build(int8),
    }
    span = f"frames {frames[0].index}..{frames[-1].index}"
    print(f"{args.model} on {args.clip} {span}, score >= {args.score_threshold}, "
          "matched at IoU >= 0.5; against torch fp32:")  # fmt: skip
    reference = detect_all(detectors["torch fp32"], frames, args.batch)
    for name in ("onnxruntime fp32", "onnxruntime int8"):
        agreement: Agreement = compare(reference, detect_all(detectors[name], frames, args.batch))
        print(f"  {name:17} {agreement.summary()}")
    del detectors["torch fp32"]
    speeds = images_per_s(detectors, args.batch, args.rounds)
    line = ", ".join(f"{name} {ips:.1f}" for name, ips in speeds.items())
    ratio = speeds["onnxruntime int8"] / speeds["onnxruntime fp32"]
    print(f"network only, batch {args.batch}, images/s (median of {args.rounds}): {line}; "
          f"int8 / fp32 = {ratio:.2f}x")  # fmt: skip
    print(f"CPU flags: {' '.join(_vnni_flags()) or 'no VNNI'}; threads {torch.get_num_threads()}")


def _vnni_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return sorted(f for f in line.split() if "vnni" in f or f.startswith("amx"))
    except OSError:
        pass  # not Linux
    return []


if __name__ == "__main__":
    main()
