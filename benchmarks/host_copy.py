"""What stacking a CUDA batch into host memory costs per frame, on one thread and on several.

The detector's thread stacks each batch's frames into one pinned host buffer before the
upload to CUDA (`detector.host_copy.HostCopy`, `detector.engine._upload`). This times that
copy alone, on the CPU, into a buffer allocated once (as the CUDA caching host allocator
hands the same pinned block out again): `--frames` random frames of `--size`, stacked with
each thread count in turn, the rounds interleaved. Per thread count it prints the median of
`--repeat` rounds in ms per frame and GB/s, its ratio to one thread measured in the same
run, and the cores it kept busy (the process's CPU time over the wall time: near the thread
count where the copies ran at once, i.e. without holding the GIL). Pageable memory stands
in for pinned memory: no GPU is needed, and on CUDA the copy into either is the same host
memcpy.

    python -m benchmarks.host_copy [--frames 32] [--size 1920x1080] [--threads 1 8] [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from benchmarks.machine import machine_line
from detector.host_copy import HostCopy, copy_threads
from pipeline.argtypes import frame_size


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=32, help="frames per batch (32)")
    parser.add_argument("--size", type=frame_size, default=(1920, 1080), help="WxH (1920x1080)")
    parser.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=None,
        help=f"thread counts to compare (1 and the detector's, {copy_threads()} here)",
    )
    parser.add_argument("--repeat", type=int, default=15, help="rounds (15)")
    args = parser.parse_args(argv)
    counts = sorted({1, *(args.threads or [copy_threads()])})
    width, height = args.size
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(args.frames)]
    out = np.ones((args.frames, height, width, 3), np.uint8)  # touched: no page faults timed
    copies = {n: HostCopy(n) for n in counts}
    times: dict[int, list[float]] = {n: [] for n in counts}
    cpu: dict[int, float] = dict.fromkeys(counts, 0.0)  # the process's CPU seconds
    try:
        for n in counts:  # warm-up: threads started, caches and TLBs as in steady state
            copies[n].stack(frames, out)
        for _ in range(args.repeat):
            for n in counts:
                start, start_cpu = time.perf_counter(), time.process_time()
                copies[n].stack(frames, out)
                times[n].append(time.perf_counter() - start)
                cpu[n] += time.process_time() - start_cpu
    finally:
        for copy in copies.values():
            copy.close()
    np.testing.assert_array_equal(out, np.stack(frames))
    batch_mb = out.nbytes / 1e6
    print(machine_line())
    print(
        f"{args.frames} frames of {width}x{height} RGB ({batch_mb:.0f} MB), median of {args.repeat}"
    )
    print(
        f"  {'threads':>7} {'ms/frame':>9} {'min-max ms/frame':>17} {'GB/s':>6} "
        f"{'vs 1 thread':>12} {'cores busy':>11}"
    )
    single = statistics.median(times[1])
    for n in counts:
        median = statistics.median(times[n])
        low, high = (1e3 * t / args.frames for t in (min(times[n]), max(times[n])))
        print(
            f"  {n:>7} {1e3 * median / args.frames:>9.3f} {f'{low:.3f}-{high:.3f}':>17} "
            f"{batch_mb / 1e3 / median:>6.1f} {single / median:>11.2f}x "
            f"{cpu[n] / sum(times[n]):>11.2f}"
        )


if __name__ == "__main__":
    main()
