"""Times and durations as people type them: "10 minutes ago", "yesterday", "2h", ISO-8601.

Used by the `query` (`--since`, `--until`) and `retention` (`--older-than`) commands.
Times without a zone are local time; results are timezone-aware UTC. Durations are at most
`MAX_DURATION` and times within years 1 to 9999, so that every result is one a datetime
and the database hold.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from datetime import time as dtime

_UNITS = {
    "s": 1, "sec": 1, "secs": 1, "second": 1, "seconds": 1,
    "m": 60, "min": 60, "mins": 60, "minute": 60, "minutes": 60,
    "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600, "hours": 3600,
    "d": 86400, "day": 86400, "days": 86400,
    "w": 604800, "week": 604800, "weeks": 604800,
}  # fmt: skip
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]+)\s*$")
_PARTS = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)")

MAX_DURATION = timedelta(days=36525)
"""The longest duration: 100 years (an age, or a time back from now)."""

EXAMPLES = "e.g. '10 minutes ago', '2h', 'yesterday', 'today 08:00', '2026-11-21T10:00'"


class OutOfRange(ValueError):
    """A duration or time of the right form, but too long, too short or too far away."""


def parse_duration(text: str) -> timedelta:
    """'90s', '10 minutes', '2h30m', '1.5 days', '2 weeks' as a timedelta (> 0).

    Raises ValueError naming the accepted forms; OutOfRange beyond `MAX_DURATION` or under a
    microsecond.
    """
    cleaned = text.strip().lower()
    pos, seconds = 0, 0.0
    for match in _PARTS.finditer(cleaned):
        if cleaned[pos : match.start()].strip(" ,") or match.group(2) not in _UNITS:
            break
        seconds += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    else:
        if pos and not cleaned[pos:].strip() and seconds > 0:
            if seconds > MAX_DURATION.total_seconds():  # also inf, from 400 digits
                raise OutOfRange(
                    f"duration too long: {_quote(text)} (at most 36525 days: 100 years)"
                )
            if not timedelta(seconds=seconds):
                raise OutOfRange(f"duration too short: {_quote(text)} (under a microsecond)")
            return timedelta(seconds=seconds)
    raise ValueError(f"not a duration: {_quote(text)} (e.g. 30s, 10 minutes, 2h, 7d, 2 weeks)")


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """A point in time as typed on the command line, as an aware UTC datetime.

    Accepts ISO-8601 ('2026-11-21', '2026-11-21T10:00', '...Z', '...+02:00'; without a
    zone: local time), 'now', 'today', 'yesterday' (local midnight, optionally followed by
    a time of day: 'yesterday 18:30'), and durations back from now: '10 minutes ago',
    '2h ago', or just '2h'. `now` (aware) is for tests. Raises ValueError with examples;
    OutOfRange for a duration over `MAX_DURATION` or a time outside years 1 to 9999.
    """
    now = (now or datetime.now(timezone.utc)).astimezone()
    cleaned = " ".join(text.strip().lower().split())
    if cleaned == "now":
        return now.astimezone(timezone.utc)
    day_match = re.fullmatch(r"(today|yesterday)(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?", cleaned)
    if day_match:
        day = now.date() - timedelta(days=1 if day_match.group(1) == "yesterday" else 0)
        hour, minute, second = (int(g or 0) for g in day_match.groups()[1:])
        if hour > 23 or minute > 59 or second > 59:
            raise ValueError(f"not a time of day in {_quote(text)} ({EXAMPLES})")
        local = datetime.combine(day, dtime(hour, minute, second))  # naive: local time
        return local.astimezone().astimezone(timezone.utc)
    ago = cleaned.removesuffix(" ago").removesuffix("ago").strip()
    if ago and ago[0].isdigit():
        try:
            return (now - parse_duration(ago)).astimezone(timezone.utc)
        except OutOfRange:
            raise
        except ValueError:
            pass  # not a duration: an ISO date also starts with a digit (2026-11-21), tried next
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"not a time: {_quote(text)} ({EXAMPLES})") from None
    try:
        if value.tzinfo is None:
            value = value.astimezone()  # local time, as the user typed it
        return value.astimezone(timezone.utc)
    except (ValueError, OverflowError):  # 0001-01-01 west of UTC, 9999-12-31 east of it
        raise OutOfRange(f"time out of range: {_quote(text)} (years 1 to 9999 in UTC)") from None


def _quote(text: str) -> str:
    """`text` quoted in a message: its start, when it is long."""
    return repr(text if len(text) <= 60 else f"{text[:60]}...")
