"""What the MQTT sink tests share: sink settings, a camera's life to feed a sink, and a
private broker (`broker`; a module needing another one defines its own)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from pipeline.types import (
    CameraStatus,
    Detections,
    FrameResult,
    HeldTrackEvents,
    StreamEnd,
    StreamInfo,
    TrackEvent,
)
from sinks.base import Sink
from sinks.mqtt.settings import BrokerAddress, BrokerSettings
from tests.sinks.event_bus.conftest import LABELS, T0, result, track
from tests.sinks.mqtt.brokers import PrivateMosquitto

__all__ = ["LABELS", "Input", "broker_settings", "camera_inputs", "feed"]

PERSON, CAR = 1, 2
Input = StreamInfo | FrameResult | HeldTrackEvents | CameraStatus | StreamEnd


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    """A Mosquitto of the test's own, killed after it."""
    mosquitto = PrivateMosquitto(tmp_path)
    mosquitto.start()
    yield mosquitto
    mosquitto.kill()


def broker_settings(url: str, **kwargs: object) -> BrokerSettings:
    """Settings for a test's sink: fast reconnection, a client id of its own."""
    options: dict[str, object] = {
        "client_id": f"test-sink-{uuid.uuid4().hex[:8]}",
        "connect_timeout_s": 5.0,
        "reconnect_max_delay_s": 1.0,
    }
    options.update(kwargs)
    return BrokerSettings(BrokerAddress.parse(url), **options)  # type: ignore[arg-type]


def detections(labels: list[int], tracks: list[int] | None = None) -> Detections:
    n = len(labels)
    return Detections(
        xyxy=np.array([[1 + i, 2, 30 + i, 40] for i in range(n)], np.float32).reshape(n, 4),
        score=np.linspace(0.9, 0.5, n).astype(np.float32),
        label=np.array(labels, np.int64),
        track_id=np.array(tracks if tracks is not None else [-1] * n, np.int64),
    )


def frames(camera: str, count: int, first: int = 0) -> list[Input]:
    """`count` frames of one person each (no track events)."""
    return [result(camera, i, detections([PERSON])) for i in range(first, first + count)]


def camera_inputs(camera: str, count: int = 6) -> list[Input]:
    """A camera's whole life as a sink sees it: connecting, opened, streaming, frames with
    boxes (none in frame 0, two people after, a car too in frame 3) and a track started and
    ended, then the end of its stream."""
    person = track(camera, 1, 1, count - 1)
    inputs: list[Input] = [
        CameraStatus(camera, "connecting", T0),
        StreamInfo(camera, 64, 48, Fraction(25), "test"),
        CameraStatus(camera, "streaming", T0, frames=1),
    ]
    for i in range(count):
        labels = [] if i == 0 else [PERSON, PERSON, CAR] if i == 3 else [PERSON, PERSON]
        found = detections(labels, [1] + [-1] * (len(labels) - 1) if labels else [])
        events = (TrackEvent("started", person),) if i == 1 else ()
        inputs.append(result(camera, i, found, events))
    inputs.append(StreamEnd(camera, count, (TrackEvent("ended", person),)))
    return inputs


def feed(sink: Sink, inputs: list[Input]) -> None:
    """Hand `inputs` to `sink` as the sink worker does."""
    for item in inputs:
        if isinstance(item, StreamInfo):
            sink.start(item)
        elif isinstance(item, FrameResult):
            sink.write(item)
        elif isinstance(item, HeldTrackEvents):
            sink.held_events(item)
        elif isinstance(item, CameraStatus):
            sink.status(item)
        else:
            sink.end(item)
