"""What FFmpeg's decoder threads cost when many cameras share a machine: frames/s, the
process's CPU ms a frame, and the frames a decoder holds back before its first picture.

`--cameras` reader threads each decode their own copy of a clip as a camera's reader does
(`AVSource`: demux, decode, RGB with one swscale thread, resized to the network's 300x300),
under each decoder setting in turn: FFmpeg's automatic threads (frame + slice, a thread a
core and one more), frame or slice threads with a count, one thread (as `AVSource` with
`decoder_threads` 1), and no threads. Settings take
turns within a round, and each figure is the median of the rounds. Clips: a 1920x1080 H.264
clip written here (moving gradients), and vtest.avi (768x576 MPEG-4 part 2) where it is.

    python -m benchmarks.decode_threads [--cameras 1 2 4 8 16] [--frames 100] [--rounds 3]
        [--decode-only] [--vtest PATH]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import av

from benchmarks.machine import machine_line
from benchmarks.overhead import write_clip
from detector.resize import resize_rgb
from pipeline.bench.clips import scaled_clip

VTEST = Path(__file__).resolve().parents[2] / "shared" / "data" / "vtest.avi"
HD = (1920, 1080)
MODEL_SIZE = (300, 300)


@dataclass(frozen=True)
class Setting:
    """A decoder's threads: FFmpeg's `thread_type` and `thread_count` (0: FFmpeg's choice)."""

    name: str
    thread_type: str
    thread_count: int


SETTINGS = (
    Setting("auto", "AUTO", 0),
    Setting("frame-2", "FRAME", 2),
    Setting("slice-2", "SLICE", 2),
    Setting("auto-1", "AUTO", 1),
    Setting("none", "NONE", 1),
)
ROWS = (("fps", "frames/s"), ("cpu_ms", "CPU-ms a frame"), ("held", "frames held"))
"""What a run measures, and its row's name (the median of the rounds); CPU-ms a frame also
gets a row of the least of the rounds, the figure other work on the machine moves least."""


def decode(clip: str, setting: Setting, max_frames: int, convert: bool = True) -> tuple[int, int]:
    """Decode `clip` as a reader does under `setting` (`convert`: to RGB, resized): (frames,
    packets sent before the first frame came out, less one: the frames the decoder holds
    back)."""
    with av.open(clip, mode="r") as container:
        stream = container.streams.video[0]
        stream.thread_type = setting.thread_type
        if setting.thread_count:
            stream.thread_count = setting.thread_count
        frames, held = 0, -1
        for packets, packet in enumerate(container.demux(stream)):
            for vframe in packet.decode():
                if held < 0:
                    held = packets  # those sent before this one
                if convert:
                    image = vframe.to_ndarray(format="rgb24", threads=1)
                    resize_rgb(image, MODEL_SIZE)
                frames += 1
                if frames >= max_frames:
                    return frames, held
        return frames, max(held, 0)


def one_run(
    clip: str, setting: Setting, cameras: int, max_frames: int, convert: bool
) -> dict[str, float]:
    """`cameras` threads decoding `clip` at once: frames/s, CPU ms a frame, frames held."""
    results: list[tuple[int, int]] = []
    lock = threading.Lock()

    def reader() -> None:
        got = decode(clip, setting, max_frames, convert)
        with lock:
            results.append(got)

    threads = [threading.Thread(target=reader) for _ in range(cameras)]
    start, start_cpu = time.perf_counter(), time.process_time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - start, time.process_time() - start_cpu
    frames = sum(f for f, _ in results)
    return {
        "fps": frames / wall,
        "cpu_ms": 1e3 * cpu / max(frames, 1),
        "held": max(h for _, h in results),
    }


def measure(
    clip: str,
    cameras: Sequence[int],
    frames: int,
    rounds: int,
    settings: Sequence[Setting],
    convert: bool = True,
) -> dict[int, dict[str, list[dict[str, float]]]]:
    """Every (cameras, setting) run `rounds` times, the settings in turn within a round."""
    runs: dict[int, dict[str, list[dict[str, float]]]] = {
        n: {s.name: [] for s in settings} for n in cameras
    }
    for _ in range(rounds):
        for n in cameras:
            for setting in settings:
                runs[n][setting.name].append(one_run(clip, setting, n, frames, convert))
    return runs


def report(
    title: str, runs: dict[int, dict[str, list[dict[str, float]]]], settings: Sequence[Setting]
) -> None:
    """A table a camera count: a row a figure, a column a setting (median of the rounds)."""
    print(title)
    for n, by_setting in runs.items():
        print(f"  {n} cameras" + "".join(f"{s.name:>10}" for s in settings))
        for key, label in ROWS:
            medians = [statistics.median(r[key] for r in by_setting[s.name]) for s in settings]
            print(f"    {label:<15}" + "".join(f"{m:>10.2f}" for m in medians)[1:])
            if key == "cpu_ms":
                least = [min(r[key] for r in by_setting[s.name]) for s in settings]
                print(f"    {'  least':<15}" + "".join(f"{m:>10.2f}" for m in least)[1:])


def hd_clip(vtest: Path, frames: int) -> str:
    """A 1920x1080 H.264 clip of `frames` frames, kept in the temp folder for the next run:
    `vtest` upscaled (libx264 veryfast, CRF 23) where it is, moving gradients otherwise."""
    folder = Path(tempfile.gettempdir()) / f"ssd-decode-threads-{frames}"
    folder.mkdir(exist_ok=True)
    if vtest.is_file():
        cached = folder / f"scaled_{HD[0]}x{HD[1]}.mp4"
        return str(cached) if cached.is_file() else scaled_clip(str(vtest), HD, folder, frames)
    path = folder / "gradients.mp4"
    if not path.is_file():
        write_clip(path, frames, HD)
    return str(path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--frames", type=int, default=100, help="frames a camera (100)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds (3)")
    parser.add_argument("--vtest", type=Path, default=VTEST, help="the 768x576 clip")
    parser.add_argument("--decode-only", action="store_true", help="no RGB conversion nor resizing")
    args = parser.parse_args(argv)
    print(machine_line())
    print(
        f"{args.frames} frames a camera, "
        + (
            "decoded only"
            if args.decode_only
            else f"RGB resized to {MODEL_SIZE[0]}x{MODEL_SIZE[1]}"
        )
        + f"; median of {args.rounds} rounds; 'frames held': packets in before the first "
        "picture out, less one"
    )
    clip = hd_clip(args.vtest, args.frames)
    convert = not args.decode_only
    hd = measure(clip, args.cameras, args.frames, args.rounds, SETTINGS, convert)
    report(f"{HD[0]}x{HD[1]} H.264 ({Path(clip).name})", hd, SETTINGS)
    if args.vtest.is_file():
        sd = measure(str(args.vtest), args.cameras, args.frames, args.rounds, SETTINGS, convert)
        report(f"{args.vtest.name} (768x576)", sd, SETTINGS)
    print(machine_line())


if __name__ == "__main__":
    main()
