"""What short fragments cost, and what a kill loses of a camera whose frames come seldom.

    python -m benchmarks.fragments [--clip ../shared/data/vtest.avi] [--kill-after 8]

Size: the clip's frames written as the video sink writes them (libx264, crf 23, `--preset`
ultrafast, 25 frames a second of video), with one-second fragments (frames at the video's rate) and
with the one-frame fragments and undelayed encoder of frames a second apart (`max_fps: 1`),
for every frame of the clip and for one frame a second of it (`--every`); kB per frame and
the same-run ratio. Kill: a child process writes frames a second apart in wall time through
`VideoSink` (a 25 fps live camera with `max_fps: 1`, then the same camera as if every frame
came at its rate) and is killed with SIGKILL after `--kill-after` frames; how many of them
its file plays.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from benchmarks.encoders import Image, read_rgb
from pipeline.bench.clips import DEFAULT_CLIP
from pipeline.types import Detections, Frame, FrameResult, LabelMap, StreamInfo
from sinks.video.encoding import FRAGMENT_US, Encoding, Geometry, SegmentFile, frames_in
from sinks.video.encoding import fragment_us as fragment_length
from sinks.video.sink import VideoSink

RATE = Fraction(25)


def written_kb(frames: Sequence[Image], path: Path, fragment_us: int, preset: str) -> float:
    """kB per frame of `frames` written with fragments of `fragment_us`."""
    height, width = frames[0].shape[:2]
    encoding = Encoding(preset=preset, threads=1)
    file = SegmentFile(path, Geometry(width, height, RATE), encoding, fragment_us)
    for image in frames:
        file.encode(image)
    file.finish()
    return path.stat().st_size / 1000 / len(frames)


def child(directory: Path, gap_s: float | None, interval_s: float) -> None:
    """Write frames `interval_s` apart through a `VideoSink` until killed, saying each."""
    sink = VideoSink(directory, LabelMap(("background", "person")))
    sink.start(StreamInfo("cam", 160, 120, RATE, "synthetic", live=True, frame_gap_s=gap_s))
    for index in range(10_000):
        image = np.zeros((120, 160, 3), np.uint8)
        image[40:60, index % 140 : index % 140 + 20] = 255
        frame = Frame("cam", index, index / 25, time.time(), image)
        sink.write(FrameResult(frame, Detections.empty()))
        print(index + 1, flush=True)
        time.sleep(interval_s)


def killed_after(frames: int, gap_s: float | None, interval_s: float) -> int:
    """Frames that play of a file whose writer was killed after writing `frames`."""
    with tempfile.TemporaryDirectory(prefix="ssd-fragments-") as tmp:
        argv = [sys.executable, "-m", "benchmarks.fragments", "--child", tmp]
        argv += ["--interval", str(interval_s)] + (["--gap", str(gap_s)] if gap_s else [])
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if int(line) == frames:
                    break
            proc.send_signal(signal.SIGKILL)
        [path] = Path(tmp).glob("cam_*.mp4")
        return frames_in(path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--every", type=int, default=10, help="a frame a second of the clip")
    parser.add_argument("--preset", default="ultrafast", help="x264 preset (the sink's default)")
    parser.add_argument("--kill-after", type=int, default=8)
    parser.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--gap", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.kill_after < 1:
        parser.error(f"--kill-after must be at least 1, got {args.kill_after}")
    if args.child is not None:
        child(args.child, args.gap, args.interval)
        return 0
    frames = read_rgb(args.clip, 100_000)
    height, width = frames[0].shape[:2]
    print(f"{args.clip}: {len(frames)} frames {width}x{height}, {args.preset}, {RATE} fps")
    one_frame = fragment_length(RATE, 1.0)
    with tempfile.TemporaryDirectory(prefix="ssd-fragments-") as tmp:
        for name, chosen in [
            ("every frame", frames),
            (f"every {args.every}th", frames[:: args.every]),
        ]:
            second = written_kb(chosen, Path(tmp) / "second.mp4", FRAGMENT_US, args.preset)
            each = written_kb(chosen, Path(tmp) / "each.mp4", one_frame, args.preset)
            extra = 1000 * (each - second)
            print(f"  {name:14} ({len(chosen)} frames): one-second fragments "
                  f"{second:6.2f} kB/frame, a fragment a frame {each:6.2f} kB/frame: "
                  f"x{each / second:.4f} ({extra:+.0f} bytes a frame)")  # fmt: skip
    print(f"killed after {args.kill_after} frames {args.interval} s apart:")
    for name, gap in [("max_fps 1 (frames 1 s apart)", 1.0), ("as if at the video's rate", None)]:
        plays = killed_after(args.kill_after, gap, args.interval)
        print(f"  {name:30} {plays} frames play, {args.kill_after - plays} lost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
