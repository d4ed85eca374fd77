"""The events a run produces, camera by camera, as the bodies every event sink sends.

`EventStream` turns what a sink is given (frame results, held track events, camera
status changes, stream ends) into the models of `sinks.event_bus.schema`, numbering each
camera's events with `seq`. The ZeroMQ bus and the MQTT sink both send these bodies
(`encode`), so a consumer reads the same JSON whichever transport it listens to.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from pipeline.types import (
    AnalyticsEvent,
    CameraStatus,
    FrameResult,
    HeldTrackEvents,
    LabelMap,
    StreamEnd,
    TrackEvent,
)
from sinks.event_bus.bodies import (
    camera_status_event,
    detections_event,
    stream_ended_event,
    track_event,
)
from sinks.event_bus.scene_events import analytics_event
from sinks.event_bus.schema import Event


@dataclass
class _CameraState:
    """Per-camera sequence counter and the last frame seen (for stream-end events)."""

    next_seq: int = 0
    last_frame: int | None = None
    last_time: float | None = None

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq


class EventStream:
    """Builds each camera's events in order, `seq` counting from 0 per camera.

    A sink that drops an event after it was built leaves a gap in `seq`: that is how
    consumers see losses.
    """

    def __init__(self, labels: LabelMap) -> None:
        self._labels = labels
        self._cameras: dict[str, _CameraState] = {}

    def frame(self, result: FrameResult) -> list[Event]:
        """The `detections` event of a frame, then its track events, then what its zones
        and lines saw."""
        frame = result.frame
        state = self._camera(frame.camera_id)
        state.last_frame = frame.index
        state.last_time = frame.wall_time
        detections = detections_event(frame, result.detections, self._labels, state.take_seq())
        tracks = self._tracks(state, result.track_events, frame.index, frame.wall_time)
        return [detections, *tracks, *self._analytics(state, result.analytics)]

    def held(self, held: HeldTrackEvents) -> list[Event]:
        """The `track.ended` events let out between frames, at the camera's last frame
        (as those a stream's end closes)."""
        state = self._camera(held.camera_id)
        wall_time = state.last_time if state.last_time is not None else time.time()
        return self._tracks(state, held.track_events, state.last_frame, wall_time)

    def continue_camera(self, camera_id: str, next_seq: int) -> None:
        """Numbers `camera_id`'s next event `next_seq`: a camera that moved here from
        another publisher (a cluster shard that died) keeps a gap-free `seq`."""
        self._camera(camera_id).next_seq = next_seq

    def status(self, status: CameraStatus) -> Event:
        """The `camera.status` event of a reader's state change."""
        state = self._camera(status.camera_id)
        return camera_status_event(status, state.take_seq(), state.last_frame)

    def end(self, stream_end: StreamEnd) -> list[Event]:
        """The track events of the tracks closed by the end, the zone visits it closed, then
        `stream.ended`."""
        state = self._camera(stream_end.camera_id)
        wall_time = state.last_time if state.last_time is not None else time.time()
        tracks = self._tracks(state, stream_end.track_events, state.last_frame, wall_time)
        analytics = self._analytics(state, stream_end.analytics)
        ended = stream_ended_event(stream_end, state.take_seq(), state.last_frame, wall_time)
        return [*tracks, *analytics, ended]

    def _tracks(
        self,
        state: _CameraState,
        events: Sequence[TrackEvent],
        frame_index: int | None,
        wall_time: float,
    ) -> list[Event]:
        return [
            track_event(
                event.kind,
                event.track,
                self._labels,
                state.take_seq(),
                frame_index,
                wall_time,
                event.snapshot,
            )
            for event in events
        ]

    def _analytics(self, state: _CameraState, events: Sequence[AnalyticsEvent]) -> list[Event]:
        return [analytics_event(event, self._labels, state.take_seq()) for event in events]

    def _camera(self, camera: str) -> _CameraState:
        state = self._cameras.get(camera)
        if state is None:
            state = self._cameras[camera] = _CameraState()
        return state


def encode(event: Event) -> bytes:
    """The JSON body of an event, as every event sink sends it (UTF-8)."""
    return event.model_dump_json().encode()
