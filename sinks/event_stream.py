"""The events a run produces, camera by camera, as the bodies every event sink sends.

`EventStream` turns what a sink is given (frame results, held track events, camera
status changes, stream ends) into `BusEvent`s, the fields of the models of
`sinks.event_bus.schema`, numbering each camera's events with `seq`. The ZeroMQ bus and the
MQTT sink both send these bodies (`encode`), so a consumer reads the same JSON whichever
transport it listens to.

Every frame's `detections` event is built as its fields directly (`detections_fields`):
checking and serialising its model took longer than building the fields (docs/performance.md,
"The ZeroMQ sink's CPU time per frame"). Its bytes are the model's: the same pydantic
serializer writes them, and tests compare the two on random detections.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import pydantic_core

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
    detections_fields,
    stream_ended_event,
    track_event,
)
from sinks.event_bus.resumption import Published
from sinks.event_bus.scene_events import analytics_event
from sinks.event_bus.schema import Event


@dataclass(frozen=True, eq=False)
class BusEvent:
    """One event as the event sinks send it: the fields of its JSON object, in the order
    and with the values its model (`sinks.event_bus.schema`) gives them."""

    fields: Mapping[str, Any]

    @classmethod
    def of(cls, model: Event) -> BusEvent:
        return cls(model.model_dump())

    @property
    def type(self) -> str:
        return str(self.fields["type"])

    @property
    def camera(self) -> str:
        return str(self.fields["camera"])

    def renumbered(self, seq: int) -> BusEvent:
        return BusEvent({**self.fields, "seq": seq})


@runtime_checkable
class ResumesCameras(Protocol):
    """A sink sending `EventStream` events, which a camera moved to it from another
    publisher (a cluster shard that died) can resume on (`EventStream.resume_camera`)."""

    def resume_camera(self, camera_id: str, next_seq: int, published: Published) -> None: ...


@dataclass
class _CameraState:
    """Per-camera sequence counter and the last frame seen (for stream-end events)."""

    next_seq: int = 0
    last_frame: int | None = None
    last_time: float | None = None
    published: Published | None = None
    """What subscribers have of a camera resumed here (`EventStream.resume_camera`)."""

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

    def frame(self, result: FrameResult) -> list[BusEvent]:
        """The `detections` event of a frame, then its track events, then what its zones
        and lines saw."""
        frame = result.frame
        state = self._camera(frame.camera_id)
        state.last_frame = frame.index
        state.last_time = frame.wall_time
        if state.published is not None and frame.index < state.published.frame:
            return []  # a resumed camera's frame its subscribers have whole
        first = state.next_seq
        detections = BusEvent(
            detections_fields(frame, result.detections, self._labels, state.take_seq())
        )
        tracks = self._tracks(state, result.track_events, frame.index, frame.wall_time)
        events = [detections, *tracks, *self._analytics(state, result.analytics)]
        return self._unseen(state, first, events, frame.index)

    def held(self, held: HeldTrackEvents) -> list[BusEvent]:
        """The `track.ended` events let out between frames, at the camera's last frame
        (as those a stream's end closes); for a resumed camera, those its subscribers lack."""
        state = self._camera(held.camera_id)
        wall_time = state.last_time if state.last_time is not None else time.time()
        last = -1 if state.last_frame is None else state.last_frame
        if state.published is not None and last < state.published.frame:
            return []  # held after a frame before the last one its subscribers have whole
        first = state.next_seq
        events = self._tracks(state, held.track_events, state.last_frame, wall_time)
        return self._unseen(state, first, events, last)

    def resume_camera(self, camera_id: str, next_seq: int, published: Published) -> None:
        """Builds `camera_id`'s events as if from its start but gives only those its
        subscribers lack (`published`), numbered from `next_seq`: a camera moved here from
        another publisher (a cluster shard that died) goes on without a loss, a repeat or
        a gap in `seq`."""
        state = self._camera(camera_id)
        state.next_seq = next_seq
        state.published = published

    def status(self, status: CameraStatus) -> list[BusEvent]:
        """The `camera.status` event of a reader's state change (none for a resumed
        camera's state its subscribers were told already)."""
        state = self._camera(status.camera_id)
        first = state.next_seq
        event = BusEvent.of(camera_status_event(status, state.take_seq(), state.last_frame))
        return self._unseen(state, first, [event], None)

    def end(self, stream_end: StreamEnd) -> list[BusEvent]:
        """The track events of the tracks closed by the end, the zone visits it closed, then
        `stream.ended`."""
        state = self._camera(stream_end.camera_id)
        wall_time = state.last_time if state.last_time is not None else time.time()
        first = state.next_seq
        tracks = self._tracks(state, stream_end.track_events, state.last_frame, wall_time)
        analytics = self._analytics(state, stream_end.analytics)
        ended = BusEvent.of(
            stream_ended_event(stream_end, state.take_seq(), state.last_frame, wall_time)
        )
        last = -1 if state.last_frame is None else state.last_frame
        return self._unseen(state, first, [*tracks, *analytics, ended], last)

    def _unseen(
        self, state: _CameraState, first: int, events: list[BusEvent], frame: int | None
    ) -> list[BusEvent]:
        """`events` (numbered from `first`) less those the subscribers of a resumed camera
        have, renumbered from `first`. `frame`: the frame they belong to (None: statuses,
        which are told once per state); a later frame than the last one subscribers got
        is sent whole."""
        published = state.published
        if published is None or (frame is not None and frame > published.frame):
            return events
        kept = [e for e in events if not published.has(e.fields)]
        if len(kept) == len(events):
            return events
        state.next_seq = first
        return [e.renumbered(state.take_seq()) for e in kept]

    def _tracks(
        self,
        state: _CameraState,
        events: Sequence[TrackEvent],
        frame_index: int | None,
        wall_time: float,
    ) -> list[BusEvent]:
        return [
            BusEvent.of(
                track_event(
                    event.kind,
                    event.track,
                    self._labels,
                    state.take_seq(),
                    frame_index,
                    wall_time,
                    event.snapshot,
                )
            )
            for event in events
        ]

    def _analytics(self, state: _CameraState, events: Sequence[AnalyticsEvent]) -> list[BusEvent]:
        return [
            BusEvent.of(analytics_event(event, self._labels, state.take_seq())) for event in events
        ]

    def _camera(self, camera: str) -> _CameraState:
        state = self._cameras.get(camera)
        if state is None:
            state = self._cameras[camera] = _CameraState()
        return state


def encode(event: BusEvent) -> bytes:
    """The JSON body of an event, as every event sink sends it (UTF-8): what its model's
    `model_dump_json` writes (non-finite numbers as null, as the models' default)."""
    return pydantic_core.to_json(event.fields, inf_nan_mode="null")
