"""Events as readable lines for `python -m pipeline subscribe`."""

from __future__ import annotations

import time

import pytest

from sinks.event_bus.display import format_event
from tests.sinks.event_bus.test_schema import analytics_events, every_kind_of_event


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


def test_zone_and_line_events_read_as_what_happened() -> None:
    lines = [format_event(e) for e in analytics_events()]
    assert [line.split(" ", 1)[1] for line in lines] == [
        "lobby #10 frame 9: person #5 entered zone door",
        "lobby #11 frame 9: person #5 in zone door for 120.0 s",
        "lobby #12 frame 9: person #5 left zone door after 130.0 s, last inside at frame 6",
        "lobby #13 frame 9: person #5 left zone door after 131.5 s (stream ended)",
        "lobby #14 frame 9: person #5 crossed line entrance: in (left side to right side)",
        "lobby #15 frame 9: zone door: 3 inside (1 car, 2 person)",
    ]


def test_a_track_ended_line_names_its_snapshot_or_says_it_was_lost() -> None:
    ended = every_kind_of_event()[3]
    with_file = ended.model_copy(update={"snapshot_path": "out/snapshots/lobby/t_5.jpg"})
    lost = ended.model_copy(update={"snapshot_lost": True})
    assert format_event(with_file).endswith("best 0.91, snapshot out/snapshots/lobby/t_5.jpg")
    assert format_event(lost).endswith("best 0.91, snapshot lost")


def test_control_characters_from_a_publisher_are_shown_escaped_never_sent_to_the_terminal() -> None:
    # a newline would split the line; ESC starts a terminal escape sequence (clear the
    # screen, retitle the window, write the clipboard)
    status = every_kind_of_event()[6]
    hostile = status.model_copy(
        update={"camera": "lob\nby", "message": "\x1b[2J\x1b]0;owned\x07refused\x9b"}
    )
    line = format_event(hostile)
    assert "\n" not in line and "\x1b" not in line and "\x07" not in line
    assert line.split(" ", 1)[1] == (
        "lob\\nby #5 frame 7: camera reconnecting: "
        "\\x1b[2J\\x1b]0;owned\\x07refused\\x9b, retry in 0.5 s"
    )


def test_the_last_millisecond_of_year_9999_shows_in_utc_where_local_time_is_in_10000(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "Asia/Tokyo")
    time.tzset()
    try:
        ended = every_kind_of_event()[5].model_copy(update={"time": "9999-12-31T23:59:59.999Z"})
        assert format_event(ended) == "23:59:59.999 lobby #0 frame -: stream ended after 0 frames"
    finally:
        monkeypatch.undo()
        time.tzset()
