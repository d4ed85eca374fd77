"""The bodies the sinks send are byte for byte what the event models serialise to: the
`detections` event built as fields without its model, the others through their models."""

from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import pytest

from pipeline.types import (
    UNTRACKED,
    Detections,
    Frame,
    FrameResult,
    LabelMap,
    TrackSummary,
)
from sinks.event_bus.bodies import detections_fields, iso_time, track_event
from sinks.event_bus.schema import EVENT_TYPES, DetectionsEvent, parse_event
from sinks.event_stream import BusEvent, EventStream, encode
from tests.sinks.event_bus.conftest import T0
from tests.sinks.event_bus.test_resumption import MESSAGES, built_events

# Unicode, JSON's escapes, control characters, a line separator, and unnamed classes.
ODD_LABELS = LabelMap(
    (
        "background",
        "persön",
        "自転車",
        "🚲",
        'a "quoted" \\ name',
        "tab\tnew\nline",
        "\x01",
        "",
        "\u2028",
        " ",
    )
)


def reference_body(frame: Frame, detections: Detections, labels: LabelMap, seq: int) -> bytes:
    """The detections event as the model builds it: one dict per box, Python's `round`,
    checked by `DetectionsEvent` and written by its `model_dump_json`."""
    objects = []
    for xyxy, score, label, track_id in zip(
        detections.xyxy.tolist(),
        detections.score.tolist(),
        detections.label.tolist(),
        detections.track_id.tolist(),
        strict=True,
    ):
        objects.append(
            {
                "label": labels.name(label),
                "label_id": label,
                "score": round(score, 4),
                "box": [round(v, 1) for v in xyxy],
                "track_id": None if track_id == UNTRACKED else track_id,
            }
        )
    moment = datetime.fromtimestamp(frame.wall_time, tz=timezone.utc)
    body = {
        "type": "detections",
        "camera": frame.camera_id,
        "seq": seq,
        "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "frame": frame.index,
        "pts": frame.pts,
        "width": frame.width,
        "height": frame.height,
        "objects": objects,
    }
    return DetectionsEvent.model_validate(body).model_dump_json().encode()


def random_column(rng: np.random.Generator, shape: tuple[int, ...], scale: float) -> np.ndarray:
    """float32 values of all sizes, with ties of the rounding (k/20, k/20000) and a few
    extreme ones (a `Detections` holds no NaN or infinity)."""
    values = rng.uniform(-0.1, 1.1, shape) * scale * 10.0 ** rng.integers(-6, 6, shape)
    ties = rng.integers(-40000, 40000, shape) / rng.choice([20, 20000], shape)
    values = np.where(rng.random(shape) < 0.3, ties, values)
    odd = rng.choice([3.4e38, -3.4e38, 1e-30, -0.0], shape)
    return np.where(rng.random(shape) < 0.05, odd, values).astype(np.float32)


def random_detections(rng: np.random.Generator) -> Detections:
    n = int(rng.choice([0, 1, 4, 16, 40]))
    xyxy = random_column(rng, (n, 4), 1000.0)
    track_id = rng.integers(0, 2**40, n)
    track_id[rng.random(n) < 0.3] = UNTRACKED
    return Detections(
        xyxy=xyxy,
        score=random_column(rng, (n,), 1.0),
        label=rng.integers(0, len(ODD_LABELS.names) + 3, n),
        track_id=track_id,
    )


def random_frame(rng: np.random.Generator) -> Frame:
    camera = str(rng.choice(["lobby", "entrée", "门口", "cam 7/ü"]))
    index = int(rng.integers(0, 10**9))
    pts = float(rng.choice([index / 25, index, 1e-7, 1e17])) if rng.random() < 0.5 else index
    whole = T0 + int(rng.integers(-(10**6), 10**6))
    wall_time = whole + float(rng.choice([rng.random(), 0.9995, 0.9999995, 0.0004999]))
    image = np.zeros((int(rng.integers(1, 9)), int(rng.integers(1, 9)), 3), np.uint8)
    return Frame(camera, index, pts, wall_time, image)


def test_detections_bytes_equal_the_models_on_random_detections() -> None:
    rng = np.random.default_rng(20261204)
    for case in range(600):
        frame, detections = random_frame(rng), random_detections(rng)
        seq = int(rng.integers(0, 2**40))
        expected = reference_body(frame, detections, ODD_LABELS, seq)
        sent = encode(BusEvent(detections_fields(frame, detections, ODD_LABELS, seq)))
        assert sent == expected, f"case {case}"
        parse_event(sent)  # a valid event


@pytest.mark.parametrize(
    "unix_seconds",
    [
        T0,
        T0 + 0.123,
        T0 + 0.9994999,
        T0 + 0.9995,
        T0 + 0.9999994,
        T0 + 0.9999995,
        T0 + 0.9999996,
        T0 + 0.0000005,
        0.0,
        0.0000005,
        -0.5,
        -1.9999996,
        253402300799.9999,  # 9999-12-31T23:59:59.999
    ],
)
def test_iso_time_is_the_datetime_text_also_at_second_boundaries(unix_seconds: float) -> None:
    moment = datetime.fromtimestamp(unix_seconds, tz=timezone.utc)
    assert iso_time(unix_seconds) == moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def test_iso_time_is_the_datetime_text_on_random_times() -> None:
    rng = np.random.default_rng(7)
    for unix_seconds in rng.uniform(-1e9, 4e9, 20000).tolist():
        moment = datetime.fromtimestamp(unix_seconds, tz=timezone.utc)
        assert iso_time(unix_seconds) == moment.isoformat(timespec="milliseconds")[:-6] + "Z"


def test_every_event_a_stream_builds_is_its_models_json() -> None:
    rng = np.random.default_rng(3)
    stream = EventStream(ODD_LABELS)
    built = [
        event
        for _ in range(20)
        for event in stream.frame(FrameResult(random_frame(rng), random_detections(rng)))
    ]
    built += built_events(EventStream(ODD_LABELS), MESSAGES)  # every type: resumption's
    assert {event.type for event in built} == set(EVENT_TYPES)
    for event in built:
        body = encode(event)
        assert parse_event(body).model_dump_json().encode() == body


def test_track_events_with_non_finite_numbers_are_their_models_json() -> None:
    box = (1.05, math.inf, -math.inf, math.nan)
    summary = TrackSummary("cam", 3, 2, 0, 9, T0, T0 + 0.9999995, 10, math.nan, box, box)
    for kind in ("started", "ended"):
        model = track_event(kind, summary, ODD_LABELS, 4, 9, T0)
        assert encode(BusEvent.of(model)) == model.model_dump_json().encode()
