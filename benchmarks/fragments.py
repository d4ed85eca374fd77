"""What short fragments cost, and what a kill loses of a camera whose frames come seldom.

    python -m benchmarks.fragments [--clip ../shared/data/vtest.avi] [--kill-after 8]

Size: the clip's frames written as the video sink writes them (libx264, crf 23, `--preset`
ultrafast, 25 frames a second of video) for each way a camera's frames come (`LAYOUTS`):
one-second fragments (a file camera's frames at the video's rate); the one-frame fragments
and undelayed encoder of frames a second apart (`max_fps: 1`); a live or motion-gated
camera's one-frame fragments with the encoder's delay kept. For every frame of the clip
(`--frames` at most) and for one frame a second of it (`--every`); kB per frame and the
same-run ratio to one-second fragments. Kill: a child process writes frames `--interval`
apart in wall time through `VideoSink` (`--preset`; a 25 fps live camera with `max_fps: 1`,
a motion-gated one in a still scene, a live one whose detector fell that far behind after
its file opened, then the same camera as if it were a file's, with one-second fragments)
and is killed with SIGKILL after `--kill-after` frames; how many of them its files play (a
live camera whose frames slowed down has its file finished and goes on in a new one).
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
from sinks.video.encoding import Encoding, Geometry, Pacing, SegmentFile, frames_in
from sinks.video.sink import VideoSink

RATE = Fraction(25)
LAYOUTS = {
    "one-second fragments": Pacing(),
    "max_fps 1 (encoder undelayed)": Pacing(frame_gap_s=1.0),
    "live camera, motion gating": Pacing(live=True),
}
"""How a camera's frames come -> the fragments and encoder delay its files get."""
KILLED = {
    "max_fps 1 (frames 1 s apart)": Pacing(frame_gap_s=1.0, live=True),
    "gated, still (1 s apart)": Pacing(still_gap_s=1.0, live=True),
    "live, fell behind to 1 s apart": Pacing(live=True),
    "one-second fragments (file)": Pacing(),
}


def written_kb(frames: Sequence[Image], path: Path, pacing: Pacing, preset: str) -> float:
    """kB per frame of `frames` written as a camera paced so gets them."""
    height, width = frames[0].shape[:2]
    encoding = Encoding(preset=preset, threads=1)
    file = SegmentFile(path, Geometry(width, height, RATE), encoding, pacing)
    for image in frames:
        file.encode(image)
    file.finish()
    return path.stat().st_size / 1000 / len(frames)


def child(directory: Path, pacing: Pacing, interval_s: float, preset: str) -> None:
    """Write frames `interval_s` apart through a `VideoSink` until killed, saying each."""
    sink = VideoSink(
        directory, LabelMap(("background", "person")), encoding=Encoding(preset=preset)
    )
    sink.start(
        StreamInfo(
            "cam",
            160,
            120,
            RATE,
            "synthetic",
            live=pacing.live,
            frame_gap_s=pacing.frame_gap_s,
            still_gap_s=pacing.still_gap_s,
        )
    )
    for index in range(10_000):
        image = np.zeros((120, 160, 3), np.uint8)
        image[40:60, index % 140 : index % 140 + 20] = 255
        frame = Frame("cam", index, index / 25, time.time(), image)
        sink.write(FrameResult(frame, Detections.empty()))
        print(index + 1, flush=True)
        time.sleep(interval_s)


def killed_after(frames: int, pacing: Pacing, interval_s: float, preset: str) -> int:
    """Frames that play of the files of a writer killed after writing `frames`."""
    with tempfile.TemporaryDirectory(prefix="ssd-fragments-") as tmp:
        argv = [sys.executable, "-m", "benchmarks.fragments", "--child", tmp]
        argv += ["--interval", str(interval_s), "--preset", preset]
        argv += ["--gap", str(pacing.frame_gap_s)] if pacing.frame_gap_s else []
        argv += ["--still", str(pacing.still_gap_s)] if pacing.still_gap_s else []
        argv += ["--live"] if pacing.live else []
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as proc:
            assert proc.stdout is not None
            for line in proc.stdout:
                if int(line) == frames:
                    break
            proc.send_signal(signal.SIGKILL)
        # the camera's file, and the next one when it slowed down and ended the first
        return sum(frames_in(path) for path in Path(tmp).glob("cam_*.mp4"))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", default=DEFAULT_CLIP)
    parser.add_argument("--frames", type=int, default=100_000, help="of the clip, at most")
    parser.add_argument("--every", type=int, default=10, help="a frame a second of the clip")
    parser.add_argument("--preset", default="ultrafast", help="x264 preset (the sink's default)")
    parser.add_argument("--kill-after", type=int, default=8)
    parser.add_argument("--interval", type=float, default=1.0, help="between frames, killed")
    parser.add_argument("--gap", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--still", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--live", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("frames", "every", "kill_after"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.child is not None:
        child(args.child, Pacing(args.gap, args.still, args.live), args.interval, args.preset)
        return 0
    frames = read_rgb(args.clip, args.frames)
    height, width = frames[0].shape[:2]
    print(f"{args.clip}: {len(frames)} frames {width}x{height}, {args.preset}, {RATE} fps")
    with tempfile.TemporaryDirectory(prefix="ssd-fragments-") as tmp:
        for name, chosen in [
            ("every frame", frames),
            (f"every {args.every}th", frames[:: args.every]),
        ]:
            print(f"  {name} ({len(chosen)} frames):")
            base = None
            for layout, pacing in LAYOUTS.items():
                kb = written_kb(chosen, Path(tmp) / "out.mp4", pacing, args.preset)
                base = base or kb
                print(f"    {layout:30} {kb:6.2f} kB/frame  x{kb / base:.3f}")
    print(f"killed after {args.kill_after} frames {args.interval} s apart:")
    for name, pacing in KILLED.items():
        plays = killed_after(args.kill_after, pacing, args.interval, args.preset)
        print(f"  {name:30} {plays} frames play, {args.kill_after - plays} lost")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
