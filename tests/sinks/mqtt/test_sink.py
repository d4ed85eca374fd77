"""The mqtt sink on the machine's Mosquitto: events, retained state, discovery, last will."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import replace
from typing import TypeVar

import cv2
import numpy as np
import pytest
import zmq

from pipeline.types import (
    FrameResult,
    HeldTrackEvents,
    LabelMap,
    LineCrossing,
    LineShape,
    SceneLayout,
    Snapshot,
    StreamEnd,
    StreamInfo,
    TrackEvent,
    ZoneOccupancy,
    ZoneShape,
)
from sinks.base import SinkError
from sinks.event_bus.publisher import EventPublisher
from sinks.event_bus.schema import parse_event
from sinks.event_stream import EventStream, encode
from sinks.mqtt.sink import MqttSink
from tests.conftest import free_port
from tests.pipeline.cli_runs import ROOT
from tests.sinks.event_bus.conftest import T0, track
from tests.sinks.mqtt.brokers import WAIT_S, Listener, Received, listening, machine_broker
from tests.sinks.mqtt.conftest import (
    LABELS,
    Input,
    broker_settings,
    camera_inputs,
    feed,
    frames,
)

Broker = tuple[str, int]
T = TypeVar("T")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with machine_broker(tmp_path_factory.mktemp("mosquitto")) as address:
        yield address


def url(broker: Broker) -> str:
    return f"mqtt://{broker[0]}:{broker[1]}"


def known(kind: type[T], item: Input) -> T:
    """`item` of `camera_inputs`, which the test knows is a `kind`."""
    assert isinstance(item, kind)
    return item


def everything(prefix: str) -> list[str]:
    return [f"{prefix}/#"]


def expected_events(prefix: str, cameras: list[str]) -> list[tuple[str, bytes]]:
    """(topic, body) of every event, built by the event stream both event sinks use."""
    stream = EventStream(LABELS)
    out = []
    for camera in cameras:
        for item in camera_inputs(camera):
            kind = type(item).__name__
            built = (
                stream.frame(item)  # type: ignore[arg-type]
                if kind == "FrameResult"
                else stream.status(item)  # type: ignore[arg-type]
                if kind == "CameraStatus"
                else stream.end(item)  # type: ignore[arg-type]
                if kind == "StreamEnd"
                else []
            )
            out += [(f"{prefix}/{e.camera}/{e.type}", encode(e)) for e in built]
    return out


def event_messages(prefix: str, received: list) -> list[tuple[str, bytes]]:
    state = ("/status", "/count/")
    return [
        (m.topic, m.payload)
        for m in received
        if m.topic.startswith(prefix + "/")
        and not any(s in m.topic for s in state)
        and m.topic != f"{prefix}/status"
    ]


def test_every_event_arrives_once_on_its_camera_and_type_topic(broker: Broker) -> None:
    with listening(broker, everything) as (prefix, listener):
        sink = MqttSink(broker_settings(url(broker)), LABELS, prefix=prefix)
        for camera in ("lobby", "gate"):
            feed(sink, camera_inputs(camera))
        sink.close()
        expected = expected_events(prefix, ["lobby", "gate"])
        got = listener.wait_for(lambda m: len(event_messages(prefix, m)) >= len(expected))
        assert event_messages(prefix, got) == expected
        assert sink.events_sent == len(expected)
        assert "0 dropped" in sink.describe()
        for _, body in expected:
            parse_event(body)  # every body is a valid event of the bus's contract


def test_bodies_are_those_of_the_zeromq_bus(broker: Broker) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    publisher = EventPublisher(endpoint, LABELS, wait_for_subscribers=1)
    try:
        with listening(broker, everything) as (prefix, listener):
            sink = MqttSink(broker_settings(url(broker)), LABELS, prefix=prefix)
            inputs = camera_inputs("lobby")
            feed(sink, inputs)
            feed(publisher, inputs)
            sink.close()
            zmq_bodies: list[bytes] = []
            while len(zmq_bodies) < publisher.sent:
                assert sub.poll(int(WAIT_S * 1000))
                zmq_bodies.append(sub.recv_multipart()[1])
            got = listener.wait_for(lambda m: len(event_messages(prefix, m)) >= len(zmq_bodies))
            assert [body for _, body in event_messages(prefix, got)] == zmq_bodies
    finally:
        publisher.close()
        sub.close(0)
        context.term()


def test_status_and_counts_are_retained_and_follow_the_camera(broker: Broker) -> None:
    with listening(broker, everything) as (prefix, listener):
        sink = MqttSink(broker_settings(url(broker)), LABELS, prefix=prefix)
        inputs = camera_inputs("lobby")
        feed(sink, inputs[:7])  # up to frame 3: two people and a car
        status, people, cars = (
            f"{prefix}/lobby/status",
            f"{prefix}/lobby/count/person",
            f"{prefix}/lobby/count/car",
        )
        # each label's count is published in turn, in no fixed order: wait for both
        listener.wait_for(
            lambda m: (
                [x.text for x in m if x.topic == people][-1:] == ["2"]
                and [x.text for x in m if x.topic == cars][-1:] == ["1"]
            )
        )
        assert listener.latest(f"{prefix}/status") == "online"
        assert (listener.latest(status), listener.latest(people), listener.latest(cars)) == (
            "online",
            "2",
            "1",
        )
        feed(sink, inputs[7:8])  # frame 4: the car has gone
        listener.wait_for(lambda m: [x.text for x in m if x.topic == cars][-1:] == ["0"])
        assert listener.latest(cars) == "0"
        feed(sink, inputs[8:])
        sink.close()
        # a client connecting later is told the state by the broker
        late = Listener(*broker, everything(prefix))
        try:
            kept = late.wait_for(lambda m: len(m) >= 4)
            retained = {m.topic: m.text for m in kept if m.retain}
            assert retained == {
                f"{prefix}/status": "offline",
                status: "offline",
                people: "0",
                cars: "0",
            }
        finally:
            late.close()


def test_chosen_event_types_are_sent_and_retained(broker: Broker) -> None:
    with listening(broker, everything) as (prefix, listener):
        sink = MqttSink(
            broker_settings(url(broker)),
            LABELS,
            prefix=prefix,
            events=("track.started", "stream.ended"),
            retain_events=("track.started",),
        )
        feed(sink, camera_inputs("lobby"))
        sink.close()
        got = listener.wait_for(lambda m: len(event_messages(prefix, m)) >= 2)
        assert [t for t, _ in event_messages(prefix, got)] == [
            f"{prefix}/lobby/track.started",
            f"{prefix}/lobby/stream.ended",
        ]
        late = Listener(*broker, [f"{prefix}/lobby/+"])
        try:
            kept = late.wait_for(lambda m: any(x.topic.endswith("track.started") for x in m))
            assert {m.topic for m in kept if m.retain} >= {f"{prefix}/lobby/track.started"}
            assert f"{prefix}/lobby/stream.ended" not in {m.topic for m in kept}
        finally:
            late.close()


def test_home_assistant_discovers_a_status_and_a_count_sensor_per_camera(broker: Broker) -> None:
    def topics(prefix: str) -> list[str]:
        return [f"{prefix}/#", f"{prefix}-ha/#"]

    with listening(broker, topics) as (prefix, listener):
        sink = MqttSink(
            broker_settings(url(broker)),
            LABELS,
            prefix=prefix,
            count_labels=("Person",),
            discovery_prefix=f"{prefix}-ha",
        )
        feed(sink, camera_inputs("lobby")[:2])  # announced as the camera starts
        # the node id is the prefix: letters, digits, `-` and `_` are kept as they are
        status_topic = f"{prefix}-ha/sensor/{prefix}/lobby_status/config"
        count_topic = f"{prefix}-ha/sensor/{prefix}/lobby_person_count/config"
        states = {f"{prefix}/lobby/count/person", f"{prefix}/lobby/status"}  # published last
        wanted = {status_topic, count_topic, *states}
        got = listener.wait_for(lambda m: wanted <= {x.topic for x in m})
        configs = {m.topic: json.loads(m.payload) for m in got if "-ha/" in m.topic}
        assert set(configs) == {status_topic, count_topic}
        status, count = configs[status_topic], configs[count_topic]
        assert status["state_topic"] == f"{prefix}/lobby/status"
        assert status["options"] == ["online", "offline"]
        assert status["availability_topic"] == f"{prefix}/status"
        assert count["state_topic"] == f"{prefix}/lobby/count/person"
        assert count["state_class"] == "measurement"
        assert [a["topic"] for a in count["availability"]] == [
            f"{prefix}/status",
            f"{prefix}/lobby/status",
        ]
        assert status["device"] == count["device"]
        assert status["device"]["name"] == "lobby"
        assert status["unique_id"] != count["unique_id"]
        # the states the sensors read exist from the start
        assert listener.latest(f"{prefix}/lobby/count/person") == "0"
        assert listener.latest(f"{prefix}/lobby/status") == "online"
        sink.close()


def test_without_count_labels_a_label_is_counted_from_its_first_box(broker: Broker) -> None:
    with listening(broker, everything) as (prefix, listener):
        sink = MqttSink(broker_settings(url(broker)), LABELS, prefix=prefix)
        feed(sink, camera_inputs("lobby")[:4])  # frame 0: nothing seen
        feed(sink, frames("lobby", 1, first=1))
        sink.close()
        gone = f"{prefix}/status"
        got = listener.wait_for(lambda m: any(x.topic == gone and x.text == "offline" for x in m))
        counted = sorted({m.topic.rsplit("/", 1)[1] for m in got if "/count/" in m.topic})
        assert counted == ["person"]


def test_an_unknown_count_label_is_refused_naming_the_classes() -> None:
    # refused before connecting: no broker listens on port 1 of this machine
    with pytest.raises(SinkError, match=r"count_labels: the model has no class 'dog'.*person"):
        MqttSink(broker_settings("mqtt://127.0.0.1:1"), LABELS, count_labels=("dog",))


def test_a_count_label_names_the_models_class_by_unicode_case_folding(broker: Broker) -> None:
    with listening(broker, everything) as (prefix, listener):
        sink = MqttSink(
            broker_settings(url(broker)),
            LabelMap(("Straße",)),
            prefix=prefix,
            count_labels=(" STRASSE",),
        )
        feed(sink, camera_inputs("lobby")[:2])  # announced at 0 as the camera starts
        counted = f"{prefix}/lobby/count/Stra_e"  # the model's spelling, as a topic level
        listener.wait_for(lambda m: any(x.topic == counted for x in m))
        sink.close()
        assert listener.latest(counted) == "0"


WILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pipeline.types import LabelMap
    from sinks.mqtt.settings import BrokerAddress, BrokerSettings
    from sinks.mqtt.sink import MqttSink
    settings = BrokerSettings(BrokerAddress.parse(sys.argv[1]), client_id=sys.argv[3])
    sink = MqttSink(settings, LabelMap(("person",)), prefix=sys.argv[2])
    print("ready", flush=True)
    time.sleep(60)
    """
)


def test_the_last_will_says_offline_when_the_process_is_killed(broker: Broker) -> None:
    with listening(broker, everything) as (prefix, listener):
        process = subprocess.Popen(
            [sys.executable, "-c", WILL_SCRIPT, url(broker), prefix, f"will-{prefix}"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None and process.stdout.readline() == "ready\n"
            listener.wait_for(lambda m: any(x.topic == f"{prefix}/status" for x in m))
            assert listener.latest(f"{prefix}/status") == "online"
        finally:
            process.kill()
            process.wait(WAIT_S)
        listener.wait_for(lambda m: m[-1].text == "offline")
        assert listener.latest(f"{prefix}/status") == "offline"


def test_zone_occupancy_is_kept_per_zone_and_label_and_announced(broker: Broker) -> None:
    def topics(prefix: str) -> list[str]:
        return [f"{prefix}/#", f"{prefix}-ha/#"]

    with listening(broker, topics) as (prefix, listener):
        sink = MqttSink(
            broker_settings(url(broker)), LABELS, prefix=prefix, discovery_prefix=f"{prefix}-ha"
        )
        inputs = camera_inputs("lobby")
        feed(sink, inputs[:3])
        at_door = ZoneOccupancy("lobby", "door", ((1, 2), (2, 1)), 0, T0)
        feed(sink, [replace(known(FrameResult, inputs[3]), analytics=(at_door,))])
        zone = f"{prefix}/lobby/zone/door/count"

        def counts_once(total: str, person: str, car: str) -> tuple[str | None, ...]:
            """The latest total, person and car counts, once they are these (or the wait is
            over): the total is published first, then each label's, so none alone says that
            the others have come."""
            expected = {zone: total, f"{zone}/person": person, f"{zone}/car": car}

            def arrived(messages: list[Received]) -> bool:
                latest = {x.topic: x.text for x in messages if x.topic in expected}
                return latest == expected

            listener.wait_for(arrived)
            return tuple(listener.latest(topic) for topic in expected)

        assert counts_once("3", "2", "1") == ("3", "2", "1")
        car_left = ZoneOccupancy("lobby", "door", ((1, 2),), 1, T0)
        feed(sink, [replace(known(FrameResult, inputs[4]), analytics=(car_left,))])
        assert counts_once("2", "2", "0") == ("2", "2", "0")
        feed(sink, inputs[5:])  # the end: nobody is counted inside any more
        sink.close()
        assert counts_once("0", "0", "0") == ("0", "0", "0")
        config_topic = f"{prefix}-ha/sensor/{prefix}/lobby_zone_door_count/config"
        config = json.loads(next(m.payload for m in listener.messages if m.topic == config_topic))
        assert config["state_topic"] == zone and config["name"] == "Zone door occupancy"


def picture(shade: int) -> np.ndarray:
    """A 40x30 RGB crop: a left-to-right ramp tinted by `shade`."""
    ramp = np.linspace(0, 200, 40, dtype=np.uint8)
    image = np.zeros((30, 40, 3), np.uint8)
    image[:, :, 0], image[:, :, 1], image[:, :, 2] = ramp, shade, 255 - ramp
    return image


def ended_with_snapshot(camera: str, track_id: int, crop: np.ndarray) -> TrackEvent:
    shot = Snapshot(3, (1.0, 2.0, 41.0, 32.0), crop, "out/snapshots", f"{camera}/{track_id}.jpg")
    return TrackEvent("ended", track(camera, track_id, 1, 3), shot)


def decoded(payload: bytes) -> np.ndarray:
    bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    assert bgr is not None, "not a JPEG"
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def test_the_latest_snapshot_is_a_retained_jpeg_and_a_home_assistant_image(
    broker: Broker,
) -> None:
    def topics(prefix: str) -> list[str]:
        return [f"{prefix}/#", f"{prefix}-ha/#"]

    with listening(broker, topics) as (prefix, listener):
        sink = MqttSink(
            broker_settings(url(broker)),
            LABELS,
            prefix=prefix,
            discovery_prefix=f"{prefix}-ha",
            snapshots=True,
        )
        inputs = camera_inputs("lobby")
        feed(sink, inputs[:3])
        first, held, second = picture(40), picture(100), picture(160)
        ended = (ended_with_snapshot("lobby", 1, first),)
        feed(sink, [replace(known(FrameResult, inputs[3]), track_events=ended)])
        feed(sink, [HeldTrackEvents("lobby", (ended_with_snapshot("lobby", 3, held),))])
        feed(sink, [StreamEnd("lobby", 6, (ended_with_snapshot("lobby", 2, second),))])
        topic = f"{prefix}/lobby/snapshot"
        got = listener.wait_for(lambda m: len([x for x in m if x.topic == topic]) == 3)
        shots = [decoded(m.payload) for m in got if m.topic == topic]
        assert [s.shape for s in shots] == [first.shape, held.shape, second.shape]
        # JPEG is lossy: each picture close to its crop, and the last one is the second
        for shot, crop in zip(shots, (first, held, second), strict=True):
            assert np.abs(shot.astype(int) - crop).mean() < 4
        config_topic = f"{prefix}-ha/image/{prefix}/lobby_snapshot/config"
        config = json.loads(next(m.payload for m in got if m.topic == config_topic))
        assert config["image_topic"] == topic and config["content_type"] == "image/jpeg"
        assert config["device"]["name"] == "lobby"
        sink.close()
        later = Listener(*broker, [topic])  # a client that connects later gets the last one
        try:
            (kept,) = later.wait_for(lambda m: len(m) == 1)
            assert kept.retain and np.abs(decoded(kept.payload).astype(int) - second).mean() < 4
        finally:
            later.close()


def test_without_the_snapshots_setting_no_picture_is_sent(broker: Broker) -> None:
    with listening(broker, everything) as (prefix, listener):
        sink = MqttSink(broker_settings(url(broker)), LABELS, prefix=prefix)
        feed(sink, camera_inputs("lobby")[:3])
        feed(sink, [StreamEnd("lobby", 6, (ended_with_snapshot("lobby", 1, picture(9)),))])
        sink.close()
        got = listener.wait_for(lambda m: listener.latest(f"{prefix}/status") == "offline")
        assert listener.latest(f"{prefix}/status") == "offline"
        assert not [m for m in got if m.topic.endswith("/snapshot")]


def test_line_crossings_are_counted_per_direction_and_announced(broker: Broker) -> None:
    def topics(prefix: str) -> list[str]:
        return [f"{prefix}/#", f"{prefix}-ha/#"]

    def crossed(track_id: int, direction: str, frame: int) -> LineCrossing:
        return LineCrossing("lobby", "door", track_id, 1, direction, "left", "right", frame, T0)

    with listening(broker, topics) as (prefix, listener):
        sink = MqttSink(
            broker_settings(url(broker)), LABELS, prefix=prefix, discovery_prefix=f"{prefix}-ha"
        )
        inputs = camera_inputs("lobby")
        feed(sink, inputs[:3])
        both_in = (crossed(1, "in", 3), crossed(2, "in", 3))
        feed(sink, [replace(known(FrameResult, inputs[3]), analytics=both_in)])
        feed(sink, [replace(known(FrameResult, inputs[4]), analytics=(crossed(1, "out", 4),))])
        feed(sink, [replace(known(FrameResult, inputs[5]), analytics=(crossed(3, "in", 5),))])
        base = f"{prefix}/lobby/line/door/count"
        listener.wait_for(lambda m: [x.text for x in m if x.topic == f"{base}/in"][-1:] == ["3"])
        assert [m.text for m in listener.messages if m.topic == f"{base}/in"] == ["1", "2", "3"]
        assert listener.latest(f"{base}/out") == "1"
        config_topic = f"{prefix}-ha/sensor/{prefix}/lobby_line_door_in_count/config"
        config = json.loads(next(m.payload for m in listener.messages if m.topic == config_topic))
        assert config["state_topic"] == f"{base}/in"
        assert config["state_class"] == "total_increasing"
        sink.close()


def test_zones_and_both_directions_of_each_line_are_announced_at_0_as_the_stream_starts(
    broker: Broker,
) -> None:
    def topics(prefix: str) -> list[str]:
        return [f"{prefix}/#", f"{prefix}-ha/#"]

    def crossed(direction: str, frame: int) -> LineCrossing:
        return LineCrossing("lobby", "gate", 1, 1, direction, "left", "right", frame, T0)

    scene = SceneLayout(
        zones=(ZoneShape("door", ((0.0, 0.0), (10.0, 0.0), (10.0, 10.0))),),
        lines=(LineShape("gate", (0.0, 5.0), (10.0, 5.0), "in", "out"),),
    )
    with listening(broker, topics) as (prefix, listener):
        sink = MqttSink(
            broker_settings(url(broker)), LABELS, prefix=prefix, discovery_prefix=f"{prefix}-ha"
        )
        inputs = camera_inputs("lobby")
        opened = replace(known(StreamInfo, inputs[1]), scene=scene)
        assert isinstance(opened, StreamInfo)
        sink.start(opened)
        zone, line = f"{prefix}/lobby/zone/door/count", f"{prefix}/lobby/line/gate/count"
        states = [zone, f"{line}/in", f"{line}/out"]
        configs = [
            f"{prefix}-ha/sensor/{prefix}/lobby_{object_id}_count/config"
            for object_id in ("zone_door", "line_gate_in", "line_gate_out")
        ]
        listener.wait_for(lambda m: set(states + configs) <= {x.topic for x in m})
        # before any frame, a client connecting now (Home Assistant) is told them all
        late = Listener(*broker, topics(prefix))
        try:
            kept = late.wait_for(lambda m: set(states + configs) <= {x.topic for x in m})
            retained = {m.topic: m for m in kept if m.retain}
            assert {t: retained[t].text for t in states} == dict.fromkeys(states, "0")
            assert [json.loads(retained[t].payload)["state_topic"] for t in configs] == states
        finally:
            late.close()
        assert isinstance(inputs[3], FrameResult) and isinstance(inputs[4], FrameResult)
        sink.write(replace(inputs[3], analytics=(crossed("in", 0),)))
        sink.start(opened)  # the stream opened again (a reconnection): its counts go on
        sink.write(replace(inputs[4], analytics=(crossed("in", 1),)))
        listener.wait_for(lambda m: [x.text for x in m if x.topic == f"{line}/in"][-1:] == ["2"])
        sink.close()
        assert [m.text for m in listener.messages if m.topic == f"{line}/in"] == ["0", "1", "2"]
        assert [m.text for m in listener.messages if m.topic == f"{line}/out"] == ["0"]
        assert [m.text for m in listener.messages if m.topic == zone] == ["0"]
        announced = [m.topic for m in listener.messages if m.topic in configs]
        assert sorted(announced) == sorted(configs)  # once each
