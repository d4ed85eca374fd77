"""Events as readable lines for `python -m pipeline subscribe`."""

from __future__ import annotations

from sinks.event_bus.display import format_event
from tests.sinks.event_bus.test_schema import every_kind_of_event


def test_pretty_lines_name_camera_seq_objects_and_track_events() -> None:
    lines = [format_event(e) for e in every_kind_of_event()]
    assert lines[0].endswith(
        "lobby #0 frame 7: 2 objects: person 0.90 #5 [2,3,31,41], person 0.90 [2,3,31,41]"
    )
    assert lines[1].endswith("lobby #1 frame 7: no objects")
    assert lines[2].endswith("track #5 started: person 0.91 [2,3,31,41]")
    assert lines[3].endswith("track #5 ended: person, 5 frames (3-7), best 0.91")
    assert lines[4].endswith("lobby #4 frame 7: stream FAILED after 8 frames: decoder gave up")
    assert lines[5].endswith("lobby #0 frame -: stream ended after 0 frames")
    assert lines[6].endswith(
        "lobby #5 frame 7: camera reconnecting: connection refused, retry in 0.5 s"
    )
    assert lines[7].endswith("lobby #0 frame -: camera connecting")
