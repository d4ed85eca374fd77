"""What decoding frames smaller than the camera's would cost in boxes.

Decoding a camera at a smaller size (as Frigate's detect resolution does) makes decoding,
drawing and encoding cheaper, but the detector then resizes an already scaled picture to
its input. This detects every `--every`-th frame of `--clip` as the pipeline does (the
full decoded frame resized by the detector) and again after scaling each frame first to
each of `--sizes` by each of a few scalers (FFmpeg's swscale with its bilinear, fast
bilinear and nearest-point kernels, as PyAV's `to_ndarray(width=, height=)` makes them in
the decoding pass; OpenCV's bilinear on the full frame), and prints per case the boxes a
frame and the recall and precision of its boxes (scaled back) against the full frame's at
IoU 0.5 (`detector.agreement`).

    python -m benchmarks.prescale [--clip vtest.avi] [--sizes 640x480 384x288] [--every 2]
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from benchmarks.machine import machine_line
from detector.agreement import compare
from detector.engine import Detector
from detector.quantize import DEFAULT_CALIBRATION
from detector.request import DetectorRequest
from pipeline.argtypes import frame_size
from pipeline.types import Detections, Frame

VTEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "vtest.avi"
SCALERS = {
    "swscale bilinear": "BILINEAR",
    "swscale fast bilinear": "FAST_BILINEAR",
    "swscale point": "POINT",
    "OpenCV bilinear": None,
}
"""What scales a frame: swscale's kernel (in the decoding pass), or None for OpenCV's
bilinear on the full frame (the detector's own kernel)."""


def scaled(
    decoded: av.VideoFrame, kernel: str | None, size: tuple[int, int]
) -> npt.NDArray[np.uint8]:
    """`decoded` as RGB [h, w, 3] at `size` (w, h), scaled by `kernel` (`SCALERS`)."""
    width, height = size
    if kernel is None:
        full = decoded.to_ndarray(format="rgb24")
        return np.asarray(cv2.resize(full, size, interpolation=cv2.INTER_LINEAR), np.uint8)
    image = decoded.to_ndarray(format="rgb24", width=width, height=height, interpolation=kernel)
    return np.asarray(image, np.uint8)


def _full(decoded: av.VideoFrame) -> npt.NDArray[np.uint8]:
    return np.asarray(decoded.to_ndarray(format="rgb24"), np.uint8)


def detect_clip(
    detector: Detector,
    clip: Path,
    every: int,
    convert: Callable[[av.VideoFrame], npt.NDArray[np.uint8]],
) -> tuple[list[Detections], tuple[int, int]]:
    """Detections of every `every`-th frame of `clip` converted by `convert`, and the
    converted frames' (width, height)."""
    found: list[Detections] = []
    batch: list[Frame] = []
    size = (0, 0)
    with av.open(str(clip)) as container:
        for index, decoded in enumerate(container.decode(video=0)):
            if index % every:
                continue
            image = convert(decoded)
            size = image.shape[1], image.shape[0]
            batch.append(Frame("clip", index, 0.0, 0.0, image))
            if len(batch) == detector.batch_size:
                found += detector.detect(batch)
                batch = []
    if batch:
        found += detector.detect(batch)
    return found, size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--clip",
        type=Path,
        default=VTEST if VTEST.is_file() else DEFAULT_CALIBRATION,
        help="video file (default vtest.avi where present, else the bundled sample clip)",
    )
    parser.add_argument("--sizes", type=frame_size, nargs="+", default=[(640, 480), (384, 288)])
    parser.add_argument("--every", type=int, default=2, help="detect every Nth frame (2)")
    parser.add_argument("--precision", default="fp32", help="as in the config (fp32)")
    args = parser.parse_args(argv)
    detector = Detector.build(DetectorRequest(device="cpu", precision=args.precision, batch_size=8))
    full, (width, height) = detect_clip(detector, args.clip, args.every, _full)
    print(machine_line())
    print(f"{args.clip.name}: 1 frame in {args.every} ({len(full)}), {detector.describe()}")
    print(f"  {'frames':<10} {'scaler':<22} {'boxes/frame':>11} {'recall':>7} {'precision':>9}")
    per_frame = sum(map(len, full)) / max(len(full), 1)
    print(f"  {f'{width}x{height}':<10} {'none (as run decodes)':<22} {per_frame:>11.3f}")
    for w, h in args.sizes:
        for name, kernel in SCALERS.items():
            convert = functools.partial(scaled, kernel=kernel, size=(w, h))
            found, _ = detect_clip(detector, args.clip, args.every, convert)
            back = np.array([width / w, height / h] * 2, np.float32)
            back_in_full = [Detections(d.xyxy * back, d.score, d.label) for d in found]
            agreement = compare(full, back_in_full)
            boxes = sum(map(len, found)) / max(len(found), 1)
            print(
                f"  {f'{w}x{h}':<10} {name:<22} {boxes:>11.3f} {agreement.recall:>7.3f} "
                f"{agreement.precision:>9.3f}"
            )


if __name__ == "__main__":
    main()
