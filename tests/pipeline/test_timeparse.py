"""Times and durations as typed on the command line."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from pipeline.timeparse import parse_duration, parse_time

NOW = datetime(2026, 11, 21, 10, 30, 15, tzinfo=timezone.utc)


def local_midnight(days_back: int) -> datetime:
    day = NOW.astimezone().date() - timedelta(days=days_back)
    return datetime(day.year, day.month, day.day).astimezone().astimezone(timezone.utc)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10 minutes ago", NOW - timedelta(minutes=10)),
        ("10min ago", NOW - timedelta(minutes=10)),
        ("2h", NOW - timedelta(hours=2)),
        ("2h30m ago", NOW - timedelta(hours=2, minutes=30)),
        ("1.5 days ago", NOW - timedelta(days=1.5)),
        ("3 weeks", NOW - timedelta(weeks=3)),
        ("now", NOW),
        ("Now", NOW),
        ("2026-11-21T09:00:00Z", datetime(2026, 11, 21, 9, tzinfo=timezone.utc)),
        ("2026-11-21T11:00+02:00", datetime(2026, 11, 21, 9, tzinfo=timezone.utc)),
    ],
)
def test_relative_and_zoned_times(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


def test_day_words_and_zoneless_iso_are_local_time() -> None:
    assert parse_time("today", now=NOW) == local_midnight(0)
    assert parse_time("yesterday", now=NOW) == local_midnight(1)
    assert parse_time("yesterday 18:30", now=NOW) == local_midnight(1) + timedelta(
        hours=18, minutes=30
    )
    naive = datetime(2026, 11, 20, 8, 15)
    assert parse_time("2026-11-20T08:15", now=NOW) == naive.astimezone().astimezone(timezone.utc)
    assert parse_time("2026-11-20", now=NOW) == datetime(2026, 11, 20).astimezone().astimezone(
        timezone.utc
    )


@pytest.mark.parametrize(
    "text", ["tomorrow", "10 parsecs ago", "", "2026-13-01", "today 25:00", "ago"]
)
def test_unreadable_times_are_refused_with_examples(text: str) -> None:
    with pytest.raises(ValueError, match="10 minutes ago"):
        parse_time(text, now=NOW)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30d", timedelta(days=30)),
        ("12 hours", timedelta(hours=12)),
        ("2 weeks", timedelta(weeks=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0d", "10", "-3d", "5 parsecs", "d", "3d 4"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
