"""What the snapshot stage costs per frame, beside the tracker and the detector it follows.

Decodes frames of a clip (the bundled sample by default), detects people on them once with
the bundled model, then times, over the same detections, the tracker alone and the tracker
followed by the snapshot stage (`pipeline.snapshots.SnapshotKeeper`), and prints per-frame
figures and their same-run ratios, plus what the stage holds in memory at its peak. Then, per
ended track, what the pipeline's thread spends on its snapshot's files: handing them to the
writer thread (`SnapshotWriterThread.submit`), beside encoding and writing them itself
(`SnapshotWriter.save`).

    python -m benchmarks.snapshots [--clip FILE] [--frames N] [--repeat R] [--full-frame]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from detector import Detector
from detector.request import DetectorRequest
from pipeline.snapshots import SnapshotKeeper
from pipeline.sources import AVSource
from pipeline.types import Detections, Frame, Snapshot
from sinks.snapshots.writer import SnapshotWriter, encode_jpeg
from sinks.snapshots.writer_thread import SnapshotWriterThread
from trackers import IoUTracker

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "pedestrians.mp4"


def frames_of(clip: Path, count: int) -> list[Frame]:
    source = AVSource(str(clip), live=False)
    source.open()
    frames = []
    try:
        for index, raw in enumerate(source.frames()):
            if index >= count:
                break
            frames.append(Frame("cam", index, raw.pts, time.time(), raw.image))
    finally:
        source.close()
    return frames


def run_tracker(
    frames: list[Frame], dets: list[Detections], keeper: SnapshotKeeper | None
) -> tuple[float, list[Snapshot], int]:
    """Seconds for one pass; the snapshots of the ended tracks; the most crop bytes the
    keeper held."""
    tracker = IoUTracker("cam")
    snapshots: list[Snapshot] = []
    peak = 0
    started = time.perf_counter()
    for frame, found in zip(frames, dets, strict=True):
        tracked = tracker.update(found, frame)
        events = tuple(tracker.pop_events())
        if keeper is not None:
            events = keeper.update(frame, tracked, events)
            peak = max(peak, keeper.kept_bytes())
        snapshots += [e.snapshot for e in events if e.snapshot is not None]
    last = tuple(tracker.finish())
    if keeper is not None:
        last = keeper.finish(last)
    elapsed = time.perf_counter() - started
    return elapsed, snapshots + [e.snapshot for e in last if e.snapshot is not None], peak


def file_costs(snapshots: list[Snapshot]) -> tuple[float, float]:
    """Seconds per snapshot the caller spends writing it itself, and handing it to the
    writer thread (one at a time, each written before the next is handed over)."""
    started = time.perf_counter()
    writer = SnapshotWriter(Path(snapshots[0].directory))
    for snapshot in snapshots:
        writer.save(snapshot)
    itself = time.perf_counter() - started
    thread = SnapshotWriterThread(writer)
    handing = 0.0
    try:
        for snapshot in snapshots:
            started = time.perf_counter()
            pending = thread.submit(snapshot)
            handing += time.perf_counter() - started
            pending.wait()
    finally:
        thread.close()
    return itself / len(snapshots), handing / len(snapshots)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=SAMPLE)
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--full-frame", action="store_true")
    args = parser.parse_args()

    frames = frames_of(args.clip, args.frames)
    detector = Detector.build(DetectorRequest(device="cpu"))
    started = time.perf_counter()
    dets = [d for k in range(0, len(frames), 8) for d in detector.detect(frames[k : k + 8])]
    detect_s = time.perf_counter() - started
    n = len(frames)
    print(
        f"clip {args.clip.name}: {n} frames {frames[0].width}x{frames[0].height}, "
        f"{sum(len(d) for d in dets) / n:.1f} boxes a frame"
    )
    alone, with_stage = [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(args.repeat):  # interleaved, so that both see the same machine load
            alone.append(run_tracker(frames, dets, None)[0])
            keeper = SnapshotKeeper("cam", Path(folder), full_frame=args.full_frame)
            seconds, snapshots, peak = run_tracker(frames, dets, keeper)
            with_stage.append(seconds)
        itself_s, handing_s = file_costs(snapshots) if snapshots else (0.0, 0.0)
    started = time.perf_counter()
    jpeg_bytes = sum(len(encode_jpeg(s.crop, 90)) for s in snapshots)
    encode_ms = (time.perf_counter() - started) / max(1, len(snapshots)) * 1e3
    tracker_us = min(alone) / n * 1e6
    stage_us = (min(with_stage) - min(alone)) / n * 1e6
    detect_us = detect_s / n * 1e6
    print(f"detector (batch 8, once):     {detect_us / 1000:8.2f} ms/frame")
    print(f"tracker alone (best of {args.repeat}):  {tracker_us:8.1f} us/frame")
    print(
        f"snapshot stage on top:        {stage_us:8.1f} us/frame "
        f"({stage_us / tracker_us:.2f}x the tracker, {stage_us / detect_us:.2%} of the detector)"
    )
    print(
        f"snapshots: {len(snapshots)}; most bytes held at once (crops, and whole frames "
        f"with full_frame): {peak / 1e3:.0f} kB"
    )
    print(
        f"JPEG of a crop (quality 90; encoded as written, not timed above): {encode_ms:.2f} ms, "
        f"{jpeg_bytes / max(1, len(snapshots)) / 1e3:.1f} kB on average"
    )
    print(
        f"per ended track, on the pipeline's thread: {handing_s * 1e6:.1f} us handing its "
        f"files to the writer thread; {itself_s * 1e6:.1f} us writing them itself "
        f"({itself_s / max(handing_s, 1e-9):.0f}x), on a disk that answers"
    )


if __name__ == "__main__":
    main()
