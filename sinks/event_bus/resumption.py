"""Where a camera's event stream resumes on another publisher (a cluster shard that took
the camera over from one that died), by the events' own keys.

The new publisher processes the camera again from its start and so builds the same events
in the same order; `Published` says which of them subscribers already have, so that it
sends each event once: nothing lost, nothing repeated, `seq` going on without a gap.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sinks.event_bus.schema import CAMERA_STATUS, DETECTIONS

EventKey = tuple[Any, ...]
"""What tells an event from every other one of its camera's stream (`event_key`)."""


def event_key(event: Mapping[str, Any]) -> EventKey:
    """The key of an event, from its fields (a JSON body, or `dict(model)`): its type and
    frame with its track, zone, line and entering frame (those it has), or for a
    `camera.status`, the reader state it reports."""
    if event["type"] == CAMERA_STATUS:
        return (CAMERA_STATUS, event.get("state"))
    return (
        event["type"],
        event.get("frame"),
        event.get("track_id"),
        event.get("zone"),
        event.get("line"),
        event.get("entered_frame"),
    )


@dataclass(frozen=True)
class Published:
    """What subscribers have of a camera's stream, as a publisher resuming it must know.

    A frame's events are its `detections` event and those sent after it, up to the next
    frame's (the stream's end events belong to its last frame). `frame`: the last frame
    whose `detections` event was passed on (-1: none); `keys`: the keys of that frame's
    events passed on (a shard may die between two of them); `states`: the reader states
    the camera's `camera.status` events reported (a resumed reader's are not repeated).
    """

    frame: int = -1
    keys: frozenset[EventKey] = frozenset()
    states: frozenset[EventKey] = frozenset()

    def after(self, event: Mapping[str, Any]) -> Published:
        """What subscribers have once `event` (a body) is passed on too."""
        key = event_key(event)
        if key[0] == CAMERA_STATUS:
            return dataclasses.replace(self, states=self.states | {key})
        if key[0] == DETECTIONS:
            return dataclasses.replace(self, frame=int(event["frame"]), keys=frozenset({key}))
        return dataclasses.replace(self, keys=self.keys | {key})

    def has(self, event: Mapping[str, Any]) -> bool:
        """Whether subscribers have `event` (its fields), an event of the frame `frame` (or
        a status)."""
        key = event_key(event)
        return key in (self.states if key[0] == CAMERA_STATUS else self.keys)
