"""Snapshots and results that carry them, for the snapshots sink's tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipeline.types import Detections, Frame, FrameResult, Snapshot, TrackEvent, TrackSummary
from sinks.snapshot_files import frame_name, snapshot_name

T0 = 1_800_000_000.0
COLOUR = (200, 60, 10)
"""RGB of every snapshot crop."""


def summary(camera: str, track_id: int) -> TrackSummary:
    box = (10.0, 10.0, 40.0, 70.0)
    return TrackSummary(camera, track_id, 0, 1, 5, T0, T0 + 1, 5, 0.9, box, box, 3)


def snapshot(
    directory: Path, camera: str, track_id: int, *, full_frame: bool = False, size: int = 32
) -> Snapshot:
    crop = np.empty((size, size, 3), np.uint8)
    crop[:] = COLOUR  # one colour, distinct per channel: JPEG keeps it, and its order
    whole = np.zeros((96, 128, 3), np.uint8) if full_frame else None
    name = snapshot_name(camera, track_id, T0 + track_id)
    return Snapshot(
        3,
        (10.0, 10.0, 40.0, 70.0),
        crop,
        str(directory),
        name,
        whole,
        frame_name(name) if full_frame else None,
    )


def ended(snap: Snapshot | None, camera: str = "cam", track_id: int = 1) -> FrameResult:
    image = np.zeros((96, 128, 3), np.uint8)
    return FrameResult(
        Frame(camera, 7, 0.7, T0 + 2, image),
        Detections.empty(),
        (TrackEvent("ended", summary(camera, track_id), snap),),
    )
