"""The vocabulary every stage speaks: frames in, detections and track events out.

This package is a leaf: it imports nothing else from the project, so readers, the detector,
trackers and sinks can all depend on it without depending on each other. Every type is
immutable in spirit; stages build new objects instead of changing the ones they receive.
Stages import from here (`from pipeline.types import Frame`), never from its modules:

- `frames`: `Frame`, and `Region`, a rectangle of one; the largest frame a camera may
  have (`MAX_FRAME_PIXELS`, `frame_size_problem`);
- `detections`: `Detections`, a frame's boxes as checked columns, and `LabelMap`;
- `tracks`: `TrackSummary`, `TrackEvent` and a track's `Snapshot`;
- `scene`: what zones and lines see (`ZoneEvent`, `LineCrossing`, `ZoneOccupancy`) and
  their shapes as drawn;
- `stream`: what a camera's stream tells the sinks, from `StreamInfo` to `StreamEnd`.
"""

from pipeline.types.detections import CLASS_NAME_MAX, UNNAMED, UNTRACKED, Detections, LabelMap
from pipeline.types.frames import MAX_FRAME_PIXELS, Frame, Region, frame_size_problem
from pipeline.types.scene import (
    SCENE_NAME_MAX,
    AnalyticsEvent,
    LineCrossing,
    LineShape,
    Point,
    SceneLayout,
    Side,
    ZoneEvent,
    ZoneOccupancy,
    ZoneShape,
)
from pipeline.types.stream import (
    CameraState,
    CameraStatus,
    FrameResult,
    HeldTrackEvents,
    RunOutcome,
    SinkMetric,
    StreamEnd,
    StreamInfo,
)
from pipeline.types.tracks import Snapshot, SnapshotLoss, TrackEvent, TrackSummary

__all__ = [
    "CLASS_NAME_MAX",
    "MAX_FRAME_PIXELS",
    "SCENE_NAME_MAX",
    "UNNAMED",
    "UNTRACKED",
    "AnalyticsEvent",
    "CameraState",
    "CameraStatus",
    "Detections",
    "Frame",
    "FrameResult",
    "HeldTrackEvents",
    "LabelMap",
    "LineCrossing",
    "LineShape",
    "Point",
    "Region",
    "RunOutcome",
    "SceneLayout",
    "Side",
    "SinkMetric",
    "Snapshot",
    "SnapshotLoss",
    "StreamEnd",
    "StreamInfo",
    "TrackEvent",
    "TrackSummary",
    "ZoneEvent",
    "ZoneOccupancy",
    "ZoneShape",
    "frame_size_problem",
]
