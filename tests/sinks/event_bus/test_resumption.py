"""A camera's events resumed on another publisher (a cluster shard that took it over from
one that died): whatever event the first publisher died after, subscribers get the stream
one publisher would have sent, each event once, `seq` without a gap."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from pipeline.types import (
    CameraState,
    CameraStatus,
    Detections,
    Frame,
    FrameResult,
    HeldTrackEvents,
    LineCrossing,
    StreamEnd,
    TrackEvent,
    TrackSummary,
    ZoneEvent,
    ZoneOccupancy,
)
from sinks.event_bus.resumption import Published, event_key
from sinks.event_stream import BusEvent, EventStream, encode
from tests.sinks.event_bus.conftest import LABELS, T0

CAMERA = "gate"
Message = FrameResult | CameraStatus | StreamEnd | HeldTrackEvents


def frame(index: int, tracks: Sequence[TrackEvent] = (), scene: Sequence[Any] = ()) -> FrameResult:
    image = np.zeros((4, 4, 3), np.uint8)
    picture = Frame(CAMERA, index, index / 10, T0 + index, image)
    return FrameResult(picture, Detections.empty(), tuple(tracks), analytics=tuple(scene))


def track(kind: str, track_id: int, first: int, last: int) -> TrackEvent:
    summary = TrackSummary(
        CAMERA,
        track_id,
        1,
        first,
        last,
        T0 + first,
        T0 + last,
        last - first + 1,
        0.9,
        (1.0, 2.0, 3.0, 4.0),
        (1.0, 2.0, 3.0, 4.0),
    )
    return TrackEvent("started" if kind == "started" else "ended", summary)


def zone(kind: str, track_id: int, at: int, entered: int, *, at_end: bool = False) -> ZoneEvent:
    return ZoneEvent(
        "entered" if kind == "entered" else "left" if kind == "left" else "dwell",
        CAMERA,
        "door",
        track_id,
        1,
        at,
        T0 + at,
        entered,
        T0 + entered,
        at_stream_end=at_end,
    )


def occupancy(at: int | None, count: int) -> ZoneOccupancy:
    return ZoneOccupancy(CAMERA, "door", ((1, count),) if count else (), at, T0)


def crossing(track_id: int, at: int) -> LineCrossing:
    return LineCrossing(CAMERA, "line", track_id, 1, "in", "left", "right", at, T0 + at)


def status(state: CameraState, frames: int) -> CameraStatus:
    return CameraStatus(CAMERA, state, T0, frames=frames)


# What a pipeline hands a camera's event sink, as the shard that died and the one resuming
# build it alike: several events per frame, a reader's states, tracks and visits the end closes.
MESSAGES: list[Message] = [
    status("connecting", 0),
    status("streaming", 0),
    frame(0, [track("started", 1, 0, 0)], [occupancy(0, 0)]),
    frame(1, [track("started", 2, 1, 1)], [zone("entered", 1, 1, 1), crossing(2, 1)]),
    frame(2, [track("ended", 1, 0, 1)], [zone("left", 1, 2, 1), occupancy(2, 0)]),
    status("stopped", 5),
    frame(3, [track("started", 3, 3, 3)], [zone("entered", 2, 3, 3), zone("dwell", 2, 3, 3)]),
    HeldTrackEvents(CAMERA, (track("ended", 3, 3, 3),)),  # let out after its snapshot
    frame(4),
    StreamEnd(
        CAMERA,
        5,
        (track("ended", 2, 1, 4),),
        analytics=(zone("left", 2, 4, 3, at_end=True), occupancy(None, 0)),
    ),
]


def built_events(stream: EventStream, messages: Sequence[Message]) -> list[BusEvent]:
    """The events `stream` builds of `messages`, in order."""
    built: list[BusEvent] = []
    for message in messages:
        if isinstance(message, FrameResult):
            built += stream.frame(message)
        elif isinstance(message, StreamEnd):
            built += stream.end(message)
        elif isinstance(message, HeldTrackEvents):
            built += stream.held(message)
        else:
            built += stream.status(message)
    return built


def events(stream: EventStream, messages: Sequence[Message]) -> list[dict[str, Any]]:
    """The bodies `stream` builds of `messages`, as subscribers receive them."""
    return [json.loads(encode(event)) for event in built_events(stream, messages)]


def resumed(passed_on: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a publisher resuming the camera after `passed_on` sends."""
    published = Published()
    for body in passed_on:
        published = published.after(body)
    stream = EventStream(LABELS)
    stream.resume_camera(CAMERA, passed_on[-1]["seq"] + 1 if passed_on else 0, published)
    return events(stream, MESSAGES)


def keys(bodies: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [event_key(body) for body in bodies]


ONE_PUBLISHER = events(EventStream(LABELS), MESSAGES)


def test_the_script_has_events_a_death_can_fall_between() -> None:
    kinds = {body["type"] for body in ONE_PUBLISHER}
    assert len(set(keys(ONE_PUBLISHER))) == len(ONE_PUBLISHER)  # no two alike
    assert kinds >= {"track.started", "track.ended", "zone.entered", "zone.left", "zone.dwell"}
    assert kinds >= {"zone.occupancy", "line.crossed", "camera.status", "stream.ended"}


def test_subscribers_get_each_event_once_whatever_event_the_publisher_died_after() -> None:
    for cut in range(len(ONE_PUBLISHER) + 1):
        seen = ONE_PUBLISHER[:cut] + resumed(ONE_PUBLISHER[:cut])
        assert keys(seen) == keys(ONE_PUBLISHER), f"died after {cut} events"
        assert [body["seq"] for body in seen] == list(range(len(ONE_PUBLISHER)))
        assert [body["frame"] for body in seen] == [body["frame"] for body in ONE_PUBLISHER]


def test_a_camera_moved_twice_is_still_sent_each_event_once() -> None:
    for first in range(len(ONE_PUBLISHER) + 1):
        before = ONE_PUBLISHER[:first]
        second = resumed(before)
        for cut in range(len(second) + 1):
            passed_on = before + second[:cut]
            seen = passed_on + resumed(passed_on)
            assert keys(seen) == keys(ONE_PUBLISHER), f"died after {first}, then {cut} events"
            assert [body["seq"] for body in seen] == list(range(len(ONE_PUBLISHER)))


def test_a_resumed_stream_repeats_no_state_of_the_reader_but_tells_a_new_one() -> None:
    published = Published().after({"type": "camera.status", "state": "streaming"})
    stream = EventStream(LABELS)
    stream.resume_camera(CAMERA, 7, published)
    sent = events(stream, [status("connecting", 0), status("streaming", 0), status("failed", 0)])
    assert [(body["state"], body["seq"]) for body in sent] == [("connecting", 7), ("failed", 8)]


def test_a_camera_not_resumed_is_sent_whole_from_seq_0() -> None:
    stream = EventStream(LABELS)
    stream.resume_camera("other", 5, Published())  # another camera's resumption
    assert events(stream, MESSAGES) == ONE_PUBLISHER
