"""What an HTTP MJPEG camera whose part never ends costs in memory: this process's peak
resident MB reading a good camera's `--frames` frames as a camera's reader does
(`AVSource.frames`: demux, decode, RGB), then reading a camera that sends a few good parts
and then one that never ends, through `--drops` connections, each dropped at the bound of a
part (`pipeline.http_camera.PART_LIMIT`). The cameras are the tests' loopback servers
(`tests.pipeline.http_servers.MjpegServer`), in this process: they keep no more than one
64 kB buffer and a small JPEG each.

    python -m benchmarks.mjpeg_endless [--frames 300] [--drops 3]
"""

from __future__ import annotations

import argparse
import resource
from collections.abc import Sequence

from benchmarks.machine import machine_line
from pipeline import http_camera
from pipeline.config.base import BYTES_PER_MB
from pipeline.sources import AVSource, SourceError
from tests.pipeline.http_servers import MjpegServer


def peak_mb() -> float:
    """This process's peak resident set so far, in MB (Linux counts it in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / BYTES_PER_MB


def read(url: str, frames: int | None, drops: int) -> tuple[int, list[str]]:
    """Frames read from the camera at `url`, and why each connection ended, reading until
    `frames` frames came (None: any number) or `drops` connections ended."""
    read_frames = 0
    ends: list[str] = []
    while len(ends) < drops and (frames is None or read_frames < frames):
        source = AVSource(url, live=True, timeout_s=10)
        try:
            source.open()
            for _ in source.frames():
                read_frames += 1
                if frames is not None and read_frames >= frames:
                    break
        except SourceError as exc:
            ends.append(str(exc))
        finally:
            source.close()
    return read_frames, ends


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mjpeg_endless")
    parser.add_argument("--frames", type=int, default=300, help="the good camera's frames")
    parser.add_argument("--drops", type=int, default=3, help="connections to the bad camera")
    args = parser.parse_args(argv)
    print(machine_line())
    with MjpegServer(None, interval_s=0.0) as good:
        frames, _ = read(good.url(), args.frames, 1)
    before = peak_mb()
    print(f"a good camera, {frames} frames: peak {before:.0f} MB resident")
    with MjpegServer(3, endless=True) as bad:
        frames, ends = read(bad.url(), None, args.drops)
    after = peak_mb()
    print(
        f"then a camera whose part never ends, dropped at {http_camera.PART_LIMIT / BYTES_PER_MB:g}"
        f" MB {len(ends)} times ({frames} good frames): peak {after:.0f} MB resident, "
        f"{after - before:.0f} MB more"
    )
    for end in sorted(set(ends)):
        print(f"  {end}")


if __name__ == "__main__":
    main()
