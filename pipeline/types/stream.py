"""What a camera's stream tells the sinks: its opening, each frame's result, held-back
track events, its reader's state, its end; and the run's outcome and sinks' counts."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from pipeline.types.detections import Detections
from pipeline.types.frames import Frame
from pipeline.types.scene import AnalyticsEvent, SceneLayout
from pipeline.types.tracks import TrackEvent


@dataclass(frozen=True)
class StreamInfo:
    """A camera's stream as opened by its reader; sent to sinks before its first frame.

    `scene`: the camera's zones and lines in pixels of `width` x `height`, for sinks that
    draw them (None: not known, nothing is drawn beyond boxes). `live`: a stream or a device,
    whose frames may stop while the run goes on (reconnecting); a file's frames stop only
    at its end. For the sinks that draw every frame, when frames are left out of them:
    `frame_gap_s`, the wait, in seconds of the stream, between two of its frames that reach
    them, always, as frame-rate limiting (`max_fps`, `detect_every`) leaves the others out
    (None: 1 / `frame_rate`); `still_gap_s`, the longest such wait while motion gating finds
    the scene still (None: no gating), its frames coming `frame_gap_s` apart while things move.
    """

    camera_id: str
    width: int
    height: int
    frame_rate: Fraction
    source: str
    scene: SceneLayout | None = None
    live: bool = False
    frame_gap_s: float | None = None
    still_gap_s: float | None = None


@dataclass(frozen=True)
class FrameResult:
    """Everything the pipeline knows about one frame after detection and tracking.

    `detected` is False for a frame skipped by frame-rate limiting (`max_fps`,
    `detect_every`) or motion gating (`motion`): it carries the camera's last tracked boxes
    and reaches only the sinks that draw every frame (`Sink.wants_every_frame`).
    `analytics`: what the camera's zones and lines saw on this frame (always empty for a
    camera without any).
    """

    frame: Frame
    detections: Detections
    track_events: tuple[TrackEvent, ...] = ()
    detected: bool = True
    analytics: tuple[AnalyticsEvent, ...] = ()


@dataclass(frozen=True)
class HeldTrackEvents:
    """A camera's "ended" track events that were held back until their snapshot's files
    were written (or lost), going out between its frames: after the frame results already
    handed out, before its next one (or its `StreamEnd`). Held events settled while no
    frame of the camera is being processed go out so, so that a camera whose frames stop
    (reconnecting, a still scene under motion gating) still tells that its tracks ended."""

    camera_id: str
    track_events: tuple[TrackEvent, ...]


CameraState = Literal["connecting", "streaming", "reconnecting", "stopped", "failed"]


@dataclass(frozen=True)
class CameraStatus:
    """A camera's reader changed state; `message` says why (credentials masked).

    Attributes:
        time: Unix time of the change.
        frames: frames decoded so far; `dropped`: frames the queue dropped to keep latency
            bounded (live sources); `decode_errors`: corrupt packets or images skipped.
        retry_in_s: with "reconnecting", the wait before the next attempt.
    """

    camera_id: str
    state: CameraState
    time: float
    message: str | None = None
    frames: int = 0
    dropped: int = 0
    decode_errors: int = 0
    retry_in_s: float | None = None


@dataclass(frozen=True)
class StreamEnd:
    """A camera's stream is over: tracks still open are closed in `track_events`, and
    visits of zones still open are closed in `analytics` (`ZoneEvent.at_stream_end`).

    `error` is None when the stream ended normally, or a one-line reason when it failed.
    """

    camera_id: str
    frames: int
    track_events: tuple[TrackEvent, ...] = ()
    error: str | None = None
    analytics: tuple[AnalyticsEvent, ...] = ()


RunOutcome = Literal["finished", "failed", "interrupted"]
"""How a run ended: every camera done; a camera or sink failed; stopped (Ctrl-C, SIGTERM)."""


@dataclass(frozen=True)
class SinkMetric:
    """A count a sink keeps of itself (rows spooled, messages dropped...), read at each
    scrape of the run's metrics (`Sink.metrics`); exposed as `ssd_sink_<name>` with the
    sink's label."""

    name: str
    """snake_case, the kind of sink first: `sql_rows_spooled`."""
    help: str
    value: float
    kind: Literal["counter", "gauge"] = "counter"
    """counter: only grows during a run; gauge: goes up and down (what waits now)."""
