"""The live view's recent tracks and their snapshots.

`RecentTracks` keeps the newest ended tracks the sink was given (for `/api/tracks` and the
`/tracks` page); `snapshot_file` finds a snapshot file under the snapshot folder for a URL
path, refusing any path the naming rule of `sinks.snapshot_files` cannot make (`..`,
absolute paths, other folders, links leading out of the folder).
"""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pipeline.types import LabelMap, TrackEvent
from sinks.snapshot_files import is_snapshot_name

MAX_RECENT_TRACKS = 200
"""Ended tracks `/api/tracks` lists, newest first."""
SNAPSHOT_URL = "/snapshots/"
"""Where the live view serves the snapshot folder: `/snapshots/<camera>/<file>.jpg`."""


_URLS = ("snapshot_url", "frame_url")


def _iso(seconds: float) -> str:
    moment = datetime.fromtimestamp(seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class RecentTracks:
    """The last `limit` ended tracks, as JSON rows; `snapshots`: whether snapshot files are
    served (their URLs are given only then). Written by the sink, read by the handlers."""

    def __init__(self, labels: LabelMap, *, snapshots: bool, limit: int = MAX_RECENT_TRACKS):
        self._labels = labels
        self._snapshots = snapshots
        self._rows: deque[dict[str, Any]] = deque(maxlen=limit)
        self._lock = threading.Lock()

    def add(self, events: tuple[TrackEvent, ...]) -> None:
        """Keep the ended tracks among `events`."""
        rows = [self._row(e) for e in events if e.kind == "ended"]
        if rows:
            with self._lock:
                self._rows.extend(rows)

    def rows(self, prefix: str = "") -> list[dict[str, Any]]:
        """The kept tracks, newest first; their snapshot URLs under `prefix` (the path the
        live view is served at, e.g. "/live"; "" at the root)."""
        with self._lock:
            rows = list(reversed(self._rows))
        return [
            {**row, **{k: prefix + row[k] for k in _URLS if row[k] is not None}} for row in rows
        ]

    def _row(self, event: TrackEvent) -> dict[str, Any]:
        t, snap = event.track, event.snapshot
        served = snap is not None and snap.lost is None and self._snapshots
        return {
            "camera": t.camera_id,
            "track_id": int(t.track_id),
            "label": self._labels.name(int(t.label)),
            "first_time": _iso(t.first_time),
            "last_time": _iso(t.last_time),
            "frames": int(t.frames),
            "best_score": round(float(t.best_score), 4),
            "snapshot_url": SNAPSHOT_URL + snap.name if served and snap else None,
            "frame_url": (
                SNAPSHOT_URL + snap.frame_name
                if served and snap and snap.frame_name is not None
                else None
            ),
        }


def snapshot_file(root: Path, name: str) -> Path | None:
    """The file `root/name` when `name` is a snapshot's name (`<camera>/<file>.jpg`) and
    the file is inside `root`; else None."""
    if not is_snapshot_name(name):
        return None
    path = root / name
    try:
        resolved = path.resolve(strict=True)
        inside = resolved.is_relative_to(root.resolve(strict=True))
    except OSError:  # missing, or a loop of links
        return None
    return resolved if inside and resolved.is_file() else None
