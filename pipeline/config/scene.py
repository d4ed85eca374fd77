"""A camera's `zones:` and `lines:`, and the `analytics:` rules they are judged by.

Coordinates are fractions of the frame (0 to 1, so that a config survives a change of
resolution) unless the zone or line says `units: pixel`. docs/analytics.md states the rules.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal, Protocol

import numpy as np
from annotated_types import Len
from pydantic import Field, field_validator, model_validator

from analytics import LEFT_TO_RIGHT, RIGHT_TO_LEFT
from pipeline.boxes import polygon_area, polygon_is_simple
from pipeline.config.base import Strict
from pipeline.types import SCENE_NAME_MAX, LabelMap
from sinks.mqtt.discovery import hass_id
from sinks.mqtt.topics import segment

Point = Annotated[
    tuple[
        Annotated[float, Field(ge=0, le=100_000)],
        Annotated[float, Field(ge=0, le=100_000)],
    ],
    Field(description="[x, y] from the frame's top-left corner."),
]
Units = Literal["fraction", "pixel"]

ANCHORS: dict[str, tuple[float, float]] = {
    "bottom_center": (0.5, 1.0),
    "center": (0.5, 0.5),
    "top_center": (0.5, 0.0),
    "bottom_left": (0.0, 1.0),
    "bottom_right": (1.0, 1.0),
}
"""Where an object is, as fractions of its box's width and height from its top left."""

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _plain_id(value: str, what: str) -> str:
    if not _ID.fullmatch(value):
        raise ValueError(
            f"invalid {what} id {value!r}: use letters, digits, '_', '-' and '.' "
            "(it names events and database rows)"
        )
    return value


def _check_units(points: list[tuple[float, float]], units: Units) -> None:
    """Fractions must lie in the frame: a coordinate above 1 is a pixel one given by mistake."""
    if units == "fraction":
        worst = max(max(x, y) for x, y in points)
        if worst > 1:
            raise ValueError(
                f"coordinate {worst:g} is above 1: coordinates are fractions of the frame "
                "(0 to 1) unless `units: pixel` says they are pixels"
            )


class ZoneConfig(Strict):
    id: str = Field(
        min_length=1, max_length=SCENE_NAME_MAX, description="Zone id, unique in the camera."
    )
    polygon: list[Point] = Field(
        min_length=3,
        max_length=1000,
        description="Corners of the zone, in order, e.g. [[0.1, 0.5], [0.4, 0.5], [0.4, 0.9]].",
    )
    units: Units = Field(
        "fraction", description="fraction: 0 to 1 of the frame's width and height; pixel."
    )
    labels: list[str] | None = Field(
        None, min_length=1, description="Only objects of these class names; all when absent."
    )
    dwell_alert_s: float | None = Field(
        None,
        gt=0,
        le=31_536_000,
        description="A zone.dwell event, once per visit, when a track stays longer than this.",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _plain_id(value, "zone")

    @model_validator(mode="after")
    def _a_real_polygon(self) -> ZoneConfig:
        _check_units(self.polygon, self.units)
        poly = np.array(self.polygon, np.float64)
        if not polygon_is_simple(poly):
            raise ValueError(
                "polygon crosses or touches itself: list its corners in order around it"
            )
        extent = np.ptp(poly, axis=0)
        if polygon_area(poly) <= 1e-9 * float(extent[0] * extent[1]) or not extent.all():
            raise ValueError("polygon has no area: its corners lie on one line")
        return self


class LineDirections(Strict):
    left_to_right: str = Field(
        LEFT_TO_RIGHT,
        min_length=1,
        max_length=SCENE_NAME_MAX,
        description="Name of a crossing from the left side to the right side (e.g. in).",
    )
    right_to_left: str = Field(
        RIGHT_TO_LEFT,
        min_length=1,
        max_length=SCENE_NAME_MAX,
        description="Name of a crossing from the right side to the left side (e.g. out).",
    )

    @model_validator(mode="after")
    def _distinct(self) -> LineDirections:
        if self.left_to_right == self.right_to_left:
            raise ValueError(f"both directions are named {self.left_to_right!r}")
        for as_id in (segment, hass_id):  # a direction's count is published under this name
            if as_id(self.left_to_right) == as_id(self.right_to_left):
                raise ValueError(
                    f"both directions are {as_id(self.left_to_right)!r} in MQTT topics and "
                    f"Home Assistant ids ({self.left_to_right!r}, {self.right_to_left!r}), "
                    "where anything but letters, digits, '_' and '-' is '_': name them "
                    "apart by those"
                )
        return self


class LineConfig(Strict):
    id: str = Field(
        min_length=1, max_length=SCENE_NAME_MAX, description="Line id, unique in the camera."
    )
    points: Annotated[list[Point], Len(2, 2)] = Field(
        description=(
            "The line's two ends. Left and right are as seen on the screen walking from the "
            "first to the second: for a line drawn left to right across the picture, left is "
            "above it."
        ),
    )
    units: Units = Field(
        "fraction", description="fraction: 0 to 1 of the frame's width and height; pixel."
    )
    labels: list[str] | None = Field(
        None, min_length=1, description="Only objects of these class names; all when absent."
    )
    directions: LineDirections = Field(
        default_factory=LineDirections,
        description="The names crossings get, e.g. {left_to_right: out, right_to_left: in}.",
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        return _plain_id(value, "line")

    @model_validator(mode="after")
    def _a_real_line(self) -> LineConfig:
        _check_units(self.points, self.units)
        if self.points[0] == self.points[1]:
            raise ValueError("the line's two points are the same")
        return self


class AnalyticsConfig(Strict):
    """The rules zones and lines are judged by (docs/analytics.md)."""

    anchor: Literal["bottom_center", "center", "top_center", "bottom_left", "bottom_right"] = Field(
        "bottom_center",
        description=(
            "The point of a box that says where its object is: bottom_center (the feet "
            "of a person, the wheels of a car), center, top_center, bottom_left, "
            "bottom_right."
        ),
    )
    line_hysteresis: float = Field(
        0.015,
        ge=0,
        le=0.5,
        description=(
            "A crossing counts once the anchor is more than this past the line, as a "
            "fraction of the frame's diagonal (0.015: 14 px at 768x576): jitter within that "
            "band of the line never counts."
        ),
    )
    min_frames: int = Field(
        3,
        ge=1,
        le=10_000,
        description=(
            "Detected frames a track must be seen inside a zone before it has entered. A "
            "frame seen outside starts the count again, as do leave_frames detected frames "
            "in a row not seen inside; fewer frames on which it was not detected do not."
        ),
    )
    leave_frames: int = Field(
        5,
        ge=1,
        le=10_000,
        description=(
            "Detected frames in a row a track must not be seen inside a zone (outside, or "
            "not detected) before its visit ends (zone.left); occupancy counts the open "
            "visits. Higher bridges longer gaps in detection, while entering too; a track "
            "seen inside again after its visit ended starts a new one."
        ),
    )
    occupancy_period_s: float | None = Field(
        None,
        gt=0,
        le=86_400,
        description=(
            "zone.occupancy is sent on every change; with this, also every so many seconds "
            "of stream time."
        ),
    )

    @property
    def anchor_fractions(self) -> tuple[float, float]:
        return ANCHORS[self.anchor]


def check_scene_ids(zones: list[ZoneConfig], lines: list[LineConfig]) -> None:
    """Zones and lines of a camera share one namespace: each id once."""
    seen: set[str] = set()
    for item_id in [*(z.id for z in zones), *(li.id for li in lines)]:
        if item_id in seen:
            raise ValueError(f"zone/line id {item_id!r} is used twice in this camera")
        seen.add(item_id)


def kept_classes(
    names: Sequence[str], keep: Sequence[str] | None, background: int | None = None
) -> dict[str, frozenset[int]]:
    """The class indices of each class name the detector reports (all of the model's, or
    those of `detector.labels`), by the name's `LabelMap.key`: labels match as
    `detector.labels` does."""
    columns: dict[str, set[int]] = {}
    for index in LabelMap(tuple(names)).classes(background):
        columns.setdefault(LabelMap.key(names[index]), set()).add(index)
    if keep:
        wanted = {LabelMap.key(name) for name in keep}
        columns = {name: idx for name, idx in columns.items() if name in wanted}
    return {name: frozenset(idx) for name, idx in columns.items()}


def scene_label_problems(
    cameras: Sequence[CameraLike], classes: dict[str, frozenset[int]]
) -> list[str]:
    """One line, at its YAML path, per zone or line label that names no class the detector
    reports (such a zone or line would never see anything)."""
    problems = []
    for c, camera in enumerate(cameras):
        wanted: list[tuple[str, list[list[str] | None]]] = [
            ("zones", [z.labels for z in camera.zones]),
            ("lines", [li.labels for li in camera.lines]),
        ]
        for kind, label_lists in wanted:
            for index, item_labels in enumerate(label_lists):
                for label in item_labels or ():
                    if (problem := unknown_label(label, classes)) is not None:
                        problems.append(
                            f"cameras[{c}].{kind}[{index}].labels (camera {camera.id}): {problem}"
                        )
    return problems


def unknown_label(label: str, classes: dict[str, frozenset[int]]) -> str | None:
    """Why `label` names no class of `classes` (`kept_classes`), or None when it names one,
    without regard to case."""
    if LabelMap.key(label) in classes:
        return None
    shown = sorted(classes)
    kept = ", ".join(shown[:8]) + (f", ... ({len(shown)} in all)" if len(shown) > 8 else "")
    return f"{label!r} is not a class the detector reports ({kept or 'none'})"


class CameraLike(Protocol):
    """What `scene_label_problems` reads of a camera's config (read-only: configs are frozen)."""

    @property
    def id(self) -> str: ...

    @property
    def zones(self) -> Sequence[ZoneConfig]: ...

    @property
    def lines(self) -> Sequence[LineConfig]: ...
