"""Times and durations as people type them: "10 minutes ago", "yesterday", "2h", ISO-8601.

Used by the `query` (`--since`, `--until`) and `retention` (`--older-than`) commands.
Times without a zone are local time; results are timezone-aware UTC. Durations are at most
`MAX_DURATION` and times within years 1 to 9999, so that every result is one a datetime
and the database hold. `TIME_PATTERN` and `DURATION_PATTERN` state the forms taken, for
the parsers here and the HTTP API's OpenAPI description alike; what they match is refused
only when out of range (`OutOfRange`).
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
_PARTS = re.compile(r"([0-9.]+) *([a-z]+)")  # of a text `DURATION_PATTERN` matched


def _any_case(word: str) -> str:
    """`word` as a regular expression in any case, without flags (which JSON Schema lacks)."""
    return "".join(f"[{c}{c.upper()}]" for c in word)


# ASCII classes rather than \d, \s or flags: the patterns are also JSON Schema's (ECMA 262)
_UNIT = "(?:" + "|".join(_any_case(u) for u in sorted(_UNITS, key=len, reverse=True)) + ")"
_NUMBER = r"(?:0*[1-9][0-9]*(?:\.[0-9]+)?|0+\.0*[1-9][0-9]*)"  # not zero
_PART = f"{_NUMBER} *{_UNIT}"
_SPAN = f"{_PART}(?:[ ,]*{_PART}){{0,4}}"  # up to 5 parts, e.g. 1w 2d 3h 4m 5s
_HOUR = "(?:[01][0-9]|2[0-3])"
_MINUTE = "[0-5][0-9]"
_YEAR = "(?:[0-9]{3}[1-9]|[0-9]{2}[1-9]0|[0-9][1-9]00|[1-9]000)"  # 0001 to 9999
_LEAP_YEAR = "(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_MONTH_DAY = (
    "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)"
    "|(?:0[13578]|1[02])-31)"
)
# what `datetime.fromisoformat` reads in Python 3.10 too (there: milli- or microseconds only)
_ISO = (
    f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
    rf"(?:[Tt ]{_HOUR}(?::{_MINUTE}(?::{_MINUTE}(?:\.[0-9]{{3}}(?:[0-9]{{3}})?)?)?)?"
    f"(?:[Zz]|[+-]{_HOUR}:{_MINUTE})?)?"
)
_DAY = (
    f"(?:{_any_case('today')}|{_any_case('yesterday')})"
    f"(?: +(?:[01]?[0-9]|2[0-3]):{_MINUTE}(?::{_MINUTE})?)?"
)

DURATION_PATTERN = f"^ *{_SPAN} *$"
"""The durations `parse_duration` takes: up to five numbers (none zero) with units, as a regular
expression (Python's and JSON Schema's)."""
TIME_PATTERN = f"^ *(?:{_any_case('now')}|{_DAY}|{_SPAN}(?: *{_any_case('ago')})?|{_ISO}) *$"
"""The times `parse_time` takes, as a regular expression (Python's and JSON Schema's):
calendar dates only, so that what it matches is a time unless out of range."""

MAX_DURATION = timedelta(days=36525)
"""The longest duration: 100 years (an age, or a time back from now)."""

_DURATIONS = "e.g. 30s, 10 minutes, 2h, 7d, 2 weeks"
EXAMPLES = "e.g. '10 minutes ago', '2h', 'yesterday', 'today 08:00', '2026-11-21T10:00'"


class OutOfRange(ValueError):
    """A duration or time of the right form, but too long, too short or too far away."""


def parse_duration(text: str) -> timedelta:
    """'90s', '10 minutes', '2h30m', '1.5 days', '2 weeks' as a timedelta (> 0).

    Raises ValueError naming the accepted forms; OutOfRange beyond `MAX_DURATION` or under a
    microsecond.
    """
    if re.fullmatch(DURATION_PATTERN, text) is None:
        raise ValueError(f"not a duration: {_quote(text)} ({_DURATIONS})")
    seconds = sum(float(n) * _UNITS[unit] for n, unit in _PARTS.findall(text.lower()))
    if seconds > MAX_DURATION.total_seconds():  # also inf, from 400 digits
        raise OutOfRange(f"duration too long: {_quote(text)} (at most 36525 days: 100 years)")
    if not timedelta(seconds=seconds):
        raise OutOfRange(f"duration too short: {_quote(text)} (under a microsecond)")
    return timedelta(seconds=seconds)


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """A point in time as typed on the command line, as an aware UTC datetime.

    Accepts ISO-8601 ('2026-11-21', '2026-11-21T10:00', '...Z', '...+02:00'; without a
    zone: local time), 'now', 'today', 'yesterday' (local midnight, optionally followed by
    a time of day: 'yesterday 18:30'), and durations back from now: '10 minutes ago',
    '2h ago', or just '2h'. `now` (aware) is for tests. Raises ValueError with examples;
    OutOfRange for a duration over `MAX_DURATION` or a time outside years 1 to 9999.
    """
    if re.fullmatch(TIME_PATTERN, text) is None:
        raise ValueError(f"not a time: {_quote(text)} ({EXAMPLES})")
    now = (now or datetime.now(timezone.utc)).astimezone()
    cleaned = " ".join(text.strip().lower().split())
    if cleaned == "now":
        return now.astimezone(timezone.utc)
    day_match = re.fullmatch(r"(today|yesterday)(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?", cleaned)
    if day_match:
        day = now.date() - timedelta(days=1 if day_match.group(1) == "yesterday" else 0)
        hour, minute, second = (int(g or 0) for g in day_match.groups()[1:])
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
