"""argparse types with bounds, for the commands: a value out of them is refused by argparse
(exit 2, one line naming the option) before any command runs with it."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel

from pipeline.folders import folder_problem
from pipeline.timeparse import parse_duration, parse_time
from pipeline.types import MAX_FRAME_PIXELS

INT_MAX = 2**63 - 1
"""The largest count any command takes: what a C long, SQLite and PostgreSQL's bigint hold."""


MAX_SIDE = 16384
"""`frame_size`: the widest and highest frame (what H.264 encodes)."""


def frame_size(text: str) -> tuple[int, int]:
    """An argparse type: a frame size "WxH", both even (H.264 4:2:0), from 2 to `MAX_SIDE`,
    of at most `MAX_FRAME_PIXELS` pixels (the largest a camera may have)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected WxH such as 1920x1080, got {text[:40]!r}"
        ) from None
    if not (2 <= width <= MAX_SIDE and 2 <= height <= MAX_SIDE) or width % 2 or height % 2:
        raise argparse.ArgumentTypeError(
            f"width and height must be even, from 2 to {MAX_SIDE}, got {text[:40]!r}"
        )
    if width * height > MAX_FRAME_PIXELS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_FRAME_PIXELS:,} pixels, as a camera's frames, got {text[:40]!r}"
        )
    return width, height


def whole(low: int, high: int = INT_MAX) -> Callable[[str], int]:
    """An argparse type: an integer from `low` to `high`."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {_quote(text)}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {_quote(text)}")
        return value

    return parse


def whole_like(model: type[BaseModel], name: str) -> Callable[[str], int]:
    """An argparse type: an integer within the bounds of the config's field `name`."""
    low, high = None, None
    for bound in model.model_fields[name].metadata:
        low = getattr(bound, "ge", None) if low is None else low
        high = getattr(bound, "le", None) if high is None else high
    if low is None or high is None:
        raise TypeError(f"{model.__name__}.{name} has no ge and le bounds")
    return whole(int(low), int(high))


def number(low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """An argparse type: a finite number from `low` to `high`; `unit` follows the bounds in
    its message (" seconds (1 hour)")."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {_quote(text)}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(
                f"must be from {plain(low)} to {plain(high)}{unit}, got {_quote(text)}"
            )
        return value

    return parse


def seconds(low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a finite number of seconds from `low` to `high`, its upper bound
    also said in the largest unit it is a whole number of ("3600 seconds (1 hour)")."""
    return number(low, high, f" seconds{_in_words(high)}")


def moment(text: str) -> datetime:
    """An argparse type: a time as users type it ('10 minutes ago', 'yesterday', ISO),
    aware, in UTC (`pipeline.timeparse.parse_time`)."""
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def duration(text: str) -> timedelta:
    """An argparse type: a length of time ('30d', '12h', '2 weeks';
    `pipeline.timeparse.parse_duration`)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def plain(value: float) -> str:
    """`value` as a person writes it: 31536000, 0.5, 0.00000001, never 3.1536e+07."""
    value = float(value)  # an int bound too
    if value.is_integer():
        return str(int(value))
    return format(Decimal(repr(value)), "f")


TIME_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))
"""The units `seconds` restates a bound in, largest first."""


def _in_words(value: float) -> str:
    for unit, size in TIME_UNITS:
        if value >= size and value % size == 0:
            count = int(value // size)
            return f" ({count} {unit}{'' if count == 1 else 's'})"
    return ""


def name(value: str) -> str:
    """An argparse type: a file name stem of letters, digits, '_', '-' and '.'."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
        raise argparse.ArgumentTypeError(
            f"use letters, digits, '_', '-' and '.' (a file name), got {_quote(value)}"
        )
    return value


def nonempty(value: str) -> str:
    """An argparse type: a string that is not empty (a path, a name, a URL)."""
    if not value.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return value


def out_file(value: str) -> str:
    """An argparse type: a file to write, in a folder that exists or can be made."""
    path = Path(nonempty(value)).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a folder; name a file to write")
    if (problem := folder_problem(path.parent)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether paths `a` and `b` name one file, by any path or link to it (False when either
    is missing or cannot be looked up)."""
    try:
        return os.path.samefile(Path(a).expanduser(), Path(b).expanduser())
    except (OSError, ValueError):  # missing, a name too long, a NUL in it
        return False


def overwrites(out: str, inputs: Mapping[str, str | Path]) -> str | None:
    """Why `--out` may not be written: one line naming the input (by what it is, the key of
    `inputs`) that writing it would destroy; None when it is none of them."""
    for what, path in inputs.items():
        if same_file(out, path):
            return f"--out: {out} is {what}; name another file to write"
    return None


def out_folder(value: str) -> str:
    """An argparse type: a folder to write in, that exists or can be made."""
    if (problem := folder_problem(Path(nonempty(value)))) is not None:
        raise argparse.ArgumentTypeError(problem)
    return value


def in_folder(value: str) -> str:
    """An argparse type: a folder that exists, to read or clean (not one to make)."""
    path = Path(nonempty(value)).expanduser()
    try:
        if path.is_dir():
            return value
        why = "not a folder" if path.exists() else "no such folder"
    except OSError as exc:  # a name too long to look up
        why = f"cannot look it up ({exc.strerror or exc})"
    raise argparse.ArgumentTypeError(f"{why}: {_quote(value, PATH_SHOWN)}")


PATH_SHOWN = 300
"""The longest path a message shows whole (a name, a number: the first 40 characters)."""


def _quote(value: str, limit: int = 40) -> str:
    return repr(value if len(value) <= limit else f"{value[:limit]}...")
