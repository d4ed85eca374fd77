"""The query parameters of the stored-data endpoints (docs/api.md), with their bounds, and
the FastAPI dependencies that gather them into one query."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, Query
from fastapi import Path as PathParam
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from pipeline.timeparse import (
    DURATION_PATTERN,
    EXAMPLES,
    TIME_PATTERN,
    parse_duration,
    parse_time,
)
from pipeline.types import CLASS_NAME_MAX
from sinks.sql.bounds import CAMERA_MAX, ID_MAX, TEXT_PATTERN
from sinks.sql.reading import DetectionQuery

PAGE_MAX = 1000
"""The most rows one request returns."""


def _time(text: str | None) -> str | None:
    """Checks a time as `query` takes it; `_query` parses it again when used."""
    if text is not None:
        parse_time(text)
    return text


def _every(text: str | None) -> str | None:
    """Checks a period as `query --every` takes it (15m, 1h, 1 day); parsed again when used."""
    if text is not None:
        parse_duration(text)
    return text


def _stored_text(name: str) -> AfterValidator:
    """The rule of the text parameters the tables' string columns are searched by: no NUL
    (`TEXT_PATTERN`, which the OpenAPI description states), refused in those words, with
    the parameter named, rather than in pydantic's words of a regular expression."""

    def check(text: str | None) -> str | None:
        if text is not None and re.fullmatch(TEXT_PATTERN, text) is None:
            raise PydanticCustomError("nul_character", f"{name} must not contain a NUL character")
        return text

    return AfterValidator(check)


_NO_NUL = {"pattern": TEXT_PATTERN}
"""`_stored_text`'s rule, as the OpenAPI description states it."""
_CAMERA = "Camera id (no NUL character)."
Camera = Annotated[
    str | None,
    Query(min_length=1, max_length=CAMERA_MAX, json_schema_extra=_NO_NUL, description=_CAMERA),
    _stored_text("camera"),
]
Label = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=CLASS_NAME_MAX,
        json_schema_extra=_NO_NUL,
        description="Class name (no NUL).",
    ),
    _stored_text("label"),
]
RunId = Annotated[int | None, Query(ge=1, le=ID_MAX, description="runs.id")]
TrackId = Annotated[int | None, Query(ge=1, le=ID_MAX, description="Track id.")]
MinScore = Annotated[float | None, Query(ge=0, le=1, description="Lowest score.")]
Limit = Annotated[int, Query(ge=1, le=PAGE_MAX, description="Rows to return, newest first.")]
_WHEN = f"{EXAMPLES} (the server's local time unless it ends in Z or +HH:MM), as `query` takes"


def _parsed_query(pattern: str, description: str) -> Any:
    """The bounds of a time or period parameter, with its `description`. The `pattern` is
    stated, not checked by pydantic: the parser checks it, and refuses in its own words."""
    return Query(
        min_length=1,
        max_length=100,
        json_schema_extra={"pattern": pattern},
        description=description,
    )


Since = Annotated[
    str | None,
    _parsed_query(TIME_PATTERN, f"From this time (inclusive): {_WHEN}."),
    AfterValidator(_time),
]
Until = Annotated[
    str | None,
    _parsed_query(TIME_PATTERN, f"Before this time: {_WHEN}."),
    AfterValidator(_time),
]
Every = Annotated[
    str | None,
    _parsed_query(
        DURATION_PATTERN,
        "Per period, e.g. 15m, 1h, 1d, aligned on UTC multiples of it (as `query --every`); "
        "each period from the first counted to the last, also empty ones.",
    ),
    AfterValidator(_every),
]
PathId = Annotated[int, PathParam(ge=1, le=ID_MAX)]
PathCamera = Annotated[
    str,
    PathParam(min_length=1, max_length=CAMERA_MAX, json_schema_extra=_NO_NUL, description=_CAMERA),
    _stored_text("camera"),
]


_FILTERS: dict[str, tuple[Any, Any]] = {
    "camera": (Camera, None),
    "label": (Label, None),
    "run": (RunId, None),
    "track": (TrackId, None),
    "since": (Since, None),
    "until": (Until, None),
    "min_score": (MinScore, None),
    "limit": (Limit, 100),
}
"""The filters of the stored rows (`DetectionQuery`'s fields): each one's parameter and
default, in the order the endpoints list them."""


def _query(**given: Any) -> DetectionQuery:
    """The query of the filters `given`, their times parsed."""
    for name in ("since", "until"):
        if given.get(name) is not None:
            given[name] = parse_time(given[name])
    return DetectionQuery(**given)


def filters(*names: str) -> Any:
    """A dependency that takes the query parameters `names` (of `_FILTERS`, in its order)
    and gives them as one `DetectionQuery`; the others are None (any)."""
    unknown = set(names) - _FILTERS.keys()
    if unknown:
        raise ValueError(f"no such filter: {', '.join(sorted(unknown))}")

    def query(**given: Any) -> DetectionQuery:
        return _query(**given)

    # FastAPI reads the parameters from the signature: `names` with their types and defaults
    query.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind
            )
            for name, (kind, default) in _FILTERS.items()
            if name in names
        ]
    )
    return Depends(query)


@dataclass(frozen=True)
class SceneCounting:
    """The filters of a line or zone count, and its period (None: one row per key)."""

    query: DetectionQuery
    every: timedelta | None


def _scene_counting(
    camera: Camera = None,
    label: Label = None,
    run: RunId = None,
    since: Since = None,
    until: Until = None,
    every: Every = None,
) -> SceneCounting:
    """The query parameters the line and zone counts share."""
    query = _query(camera=camera, label=label, run=run, since=since, until=until)
    return SceneCounting(query, None if every is None else parse_duration(every))


Counting = Annotated[SceneCounting, Depends(_scene_counting)]
