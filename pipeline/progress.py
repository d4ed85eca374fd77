"""Per-camera progress bars while running, and the closing summary."""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from pipeline.summary import CameraStats, RunSummary
from pipeline.urls import mask_credentials


class Progress:
    """One tqdm bar per camera (only on a terminal unless forced)."""

    def __init__(self, camera_ids: list[str], *, enabled: bool = True) -> None:
        self._bars: dict[str, tqdm] = {}
        self._enabled = enabled
        self._order = camera_ids

    def started(self, line: str, out: TextIO | None = None) -> None:
        """Says one of the run's start lines (`Pipeline.run`'s `on_start`: the detector's
        preparation, what runs it, where to watch) on stderr, before any bar; any password
        in a URL shown as ***."""
        print(mask_credentials(line), file=out or sys.stderr, flush=True)

    def update(self, stats: CameraStats) -> None:
        if not self._enabled:
            return
        bar = self._bars.get(stats.camera_id)
        if bar is None:
            if stats.camera_id not in self._order:  # added while running (a cluster run)
                self._order = [*self._order, stats.camera_id]
            bar = tqdm(
                total=stats.total_frames,
                desc=stats.camera_id,
                unit="frame",
                position=self._order.index(stats.camera_id),
                leave=True,
                disable=None,  # off when stderr is not a terminal
                dynamic_ncols=True,
            )
            self._bars[stats.camera_id] = bar
        bar.update(stats.frames - bar.n)
        bar.set_postfix(det=stats.detections, tracks=stats.tracks, refresh=False)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

    def print_summary(self, summary: RunSummary, out: TextIO | None = None) -> None:
        """The summary table on `out`: stdout as it is now (a program may have replaced it
        since this module was imported), when not given."""
        out = out or sys.stdout
        elapsed = max(summary.elapsed_s, 1e-9)
        rows = [("camera", "frames", "fps", "detections", "tracks", "status")]
        for cam in summary.cameras.values():
            status = cam.status
            notes = [
                f"{n} {what}"
                for n, what in (
                    (cam.decode_errors, "corrupt packets/images skipped"),
                    (cam.dropped, "frames dropped to keep up"),
                    (cam.skipped, "frames not detected (max_fps/detect_every)"),
                    (cam.motion_skipped, "frames not detected (no motion)"),
                    (cam.reconnects, "reconnections" if cam.frames else "retries"),
                )
                if n
            ]
            if notes:
                status += f" ({', '.join(notes)})"
            rows.append(
                (
                    cam.camera_id,
                    str(cam.frames),
                    f"{cam.frames / elapsed:.1f}",
                    str(cam.detections),
                    str(cam.tracks),
                    status,
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        for r in rows:
            out.write(
                "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[5] + "\n"
            )
        out.write(
            f"{summary.frames} frames in {summary.elapsed_s:.1f} s "
            f"({summary.frames / elapsed:.1f} frames/s)"
            + (f", after {summary.setup_s:.1f} s of set-up" if summary.setup_s >= 1 else "")
            + (" — interrupted" if summary.interrupted else "")
            + "\n"
        )
        if summary.detector:
            out.write(f"{summary.detector}\n")
        for output in summary.outputs:
            first, *details = output.split("\n")  # details: e.g. one line per file written
            out.write(f"  -> {first}\n")
            for line in details:
                out.write(f"       {line}\n")
        if summary.detector_error:
            out.write(f"  {summary.detector_error}\n")
        for err in summary.sink_errors:
            out.write(f"  sink error: {err}\n")
        if summary.server_error:
            out.write(f"  {summary.server_error}\n")
