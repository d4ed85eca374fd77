"""What the video output costs: CPU time, size and fidelity of x264 presets and the naive
baseline's OpenCV `mp4v` writer on the same frames.

    python -m benchmarks.encoders [--clip ../shared/data/vtest.avi] [--frames 300]

For each encoder setting: CPU ms per frame (the encoder's own, one thread, as the video sink
runs it on small machines; the frames are converted to YUV 4:2:0 beforehand), kB per frame,
and PSNR of the decoded file against the source frames (RGB, all frames). The settings run
interleaved `--rounds` times and the median is printed, which evens out a shared machine's
drift. docs/performance.md uses it to compare the pipeline's output with the naive one's.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from pipeline.bench.clips import DEFAULT_CLIP

Image = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Setting:
    """One encoder setting: libx264 with `preset` and `crf`, or OpenCV's mp4v (preset None)."""

    preset: str | None
    crf: int = 23

    @property
    def name(self) -> str:
        return "opencv mp4v" if self.preset is None else f"x264 {self.preset} crf {self.crf}"


def read_rgb(clip: str, count: int) -> list[Image]:
    """The first `count` frames of `clip`, RGB [H, W, 3] (even sizes: H.264 4:2:0)."""
    frames: list[Image] = []
    with av.open(clip) as container:
        for frame in container.decode(video=0):
            rgb = frame.to_ndarray(format="rgb24")
            height, width = rgb.shape[0] // 2 * 2, rgb.shape[1] // 2 * 2
            frames.append(np.ascontiguousarray(rgb[:height, :width]))
            if len(frames) == count:
                break
    if not frames:
        raise SystemExit(f"no frames in {clip}")
    return frames


def encode(setting: Setting, frames: Sequence[Image], path: Path, rate: int = 25) -> float:
    """Writes `frames` to `path`; CPU seconds the encoding took (process time)."""
    height, width = frames[0].shape[:2]
    if setting.preset is None:
        bgr = [cv2.cvtColor(f, cv2.COLOR_RGB2BGR) for f in frames]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), rate, (width, height))
        started = time.process_time()
        for image in bgr:
            writer.write(image)
        writer.release()
        return time.process_time() - started
    yuv = [np.asarray(cv2.cvtColor(f, cv2.COLOR_RGB2YUV_I420), dtype=np.uint8) for f in frames]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(setting.crf), "preset": setting.preset}
        stream.codec_context.thread_count = 1
        started = time.process_time()
        for planes in yuv:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(planes, format="yuv420p")))
        out.mux(stream.encode(None))
        return time.process_time() - started


def psnr(path: Path, reference: Sequence[Image]) -> float:
    """PSNR in dB of the decoded `path` against `reference` (RGB, over all frames)."""
    errors = []
    with av.open(str(path)) as container:
        for frame, original in zip(container.decode(video=0), reference, strict=False):
            diff = frame.to_ndarray(format="rgb24").astype(np.float32) - original
            errors.append(float(np.mean(diff * diff)))
    return float(10 * np.log10(255.0**2 / max(float(np.mean(errors)), 1e-12)))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--settings", nargs="+", default=["veryfast:23", "superfast:23", "superfast:26",
                                          "ultrafast:23", "ultrafast:26", "mp4v"],
        help="PRESET:CRF for libx264, or mp4v for OpenCV's writer",
    )  # fmt: skip
    args = parser.parse_args(argv)
    settings = [
        Setting(None) if s == "mp4v" else Setting(s.split(":")[0], int(s.split(":")[1]))
        for s in args.settings
    ]
    frames = read_rgb(args.clip, args.frames)
    height, width = frames[0].shape[:2]
    print(f"{args.clip}: {len(frames)} frames {width}x{height}, median of {args.rounds} rounds")
    cpu: dict[Setting, list[float]] = {s: [] for s in settings}
    with tempfile.TemporaryDirectory(prefix="ssd-encoders-") as tmp:
        paths = {s: Path(tmp) / f"{i}.mp4" for i, s in enumerate(settings)}
        for _ in range(args.rounds):
            for s in settings:
                cpu[s].append(encode(s, frames, paths[s]))
        for s in settings:
            ms = 1000 * statistics.median(cpu[s]) / len(frames)
            kb = paths[s].stat().st_size / 1000 / len(frames)
            print(f"  {s.name:24} {ms:6.2f} CPU-ms/frame  {kb:6.2f} kB/frame  "
                  f"PSNR {psnr(paths[s], frames):5.2f} dB")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
