"""A shard's MQTT sink, without Ray: a file camera moved off a dead shard is published on
MQTT from where its subscribers were cut off, as on the event bus; the machine's
Mosquitto (or a private one) on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

import pipeline.build
from pipeline.cluster.mqtt_status import PipelineStatus
from pipeline.cluster.resume import Resume
from pipeline.cluster.shard import Shard
from pipeline.config import DetectorConfig, MqttSinkConfig, PipelineConfig, parse_config
from sinks.event_bus.resumption import Published, event_key
from sinks.event_bus.schema import EVENT_TYPES
from sinks.mqtt.settings import BrokerSettings
from tests.conftest import free_port, write_video
from tests.pipeline.cluster.test_shard import OneBox
from tests.sinks.mqtt.brokers import (
    BlackHole,
    Listener,
    Received,
    listening,
    machine_broker,
)
from tests.test_docs import PYTHON_BLOCK, ROOT

if TYPE_CHECKING:
    from sinks.mqtt.connection import MqttConnection

FRAMES = 8

Broker = tuple[str, int]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with machine_broker(tmp_path_factory.mktemp("mosquitto")) as address:
        yield address


@pytest.fixture(autouse=True)
def one_box(monkeypatch: pytest.MonkeyPatch) -> None:
    def build(config: DetectorConfig, announce: Any = None, sharing: int = 1) -> OneBox:
        return OneBox()

    monkeypatch.setattr(pipeline.build, "build_run_detector", build)


def cluster_config(tmp_path: Path, broker: Broker, prefix: str) -> PipelineConfig:
    video = write_video(tmp_path / "gate.mp4", frames=FRAMES)
    return parse_config(
        f"cameras:\n  - {{id: gate, source: '{video}'}}\n"
        "detector: {model: person_ssdlite}\n"
        "sinks:\n"
        f"  - {{type: zmq, endpoint: 'tcp://127.0.0.1:{free_port()}'}}\n"
        f"  - {{type: mqtt, url: 'mqtt://{broker[0]}:{broker[1]}', prefix: {prefix},"
        " count_labels: [person]}\n"
        "cluster: {engine: ray}\n"
    )


def events(prefix: str, messages: list[Received]) -> list[dict[str, Any]]:
    """The event bodies among `messages`, in arrival order."""
    return [
        json.loads(m.payload)
        for m in messages
        if m.topic.removeprefix(f"{prefix}/gate/") in EVENT_TYPES
    ]


def run_on(shard: Shard, config: PipelineConfig, run: int, resume: dict[str, Resume]) -> None:
    summary = shard.run(
        config, ["gate"], f"c (cluster abc run {run} on {shard.name})", None, resume
    )
    assert summary.cameras["gate"].frames == FRAMES


def ended(prefix: str, listener: Listener, since: int = 0) -> list[Received]:
    """What the listener got after its first `since` messages, once the camera's
    `stream.ended` and then its counts at 0 came (its sink's last message)."""

    def over(got: list[Received]) -> bool:
        topics = [m.topic for m in got[since:]]
        end = f"{prefix}/gate/stream.ended"
        return end in topics and f"{prefix}/gate/count/person" in topics[topics.index(end) :]

    return listener.wait_for(over)[since:]


def cut_at(whole: list[dict[str, Any]], where: str) -> int:
    """How many of the camera's events its subscribers got when its shard died `where`."""
    types = [e["type"] for e in whole]
    return {
        "after its first event": 1,
        "within a frame": types.index("track.started"),  # its frame's detections out
        "between frames": types.index("detections", types.index("track.started")) + 2,
        "before its stream ended": len(whole) - 1,
    }[where]


@pytest.mark.parametrize(
    "where",
    ["after its first event", "within a frame", "between frames", "before its stream ended"],
)
def test_a_moved_file_camera_goes_on_on_mqtt_from_where_its_subscribers_were_cut_off(
    tmp_path: Path, broker: Broker, where: str
) -> None:
    with listening(broker, lambda p: [f"{p}/#"]) as (prefix, listener):
        config = cluster_config(tmp_path, broker, prefix)
        run_on(Shard("shard-0"), config, 1, {})
        whole = events(prefix, ended(prefix, listener))
        assert [e["seq"] for e in whole] == list(range(len(whole)))
        cut = cut_at(whole, where)

        # shard-0 died once subscribers had its first `cut` events (the forwarder's record)
        published = Published()
        for event in whole[:cut]:
            published = published.after(event)
        before = len(listener.messages)
        resume = {"gate": Resume(published=published, next_seq=whole[cut - 1]["seq"] + 1)}
        run_on(Shard("shard-1"), config, 2, resume)

        got = events(prefix, ended(prefix, listener, before))
        # each event once (a reader's state may be told between other frames than before:
        # it is not in step with the frames), `seq` going on without a gap or a repeat
        assert Counter(map(event_key, got)) == Counter(map(event_key, whole[cut:]))
        assert [e["seq"] for e in got] == list(range(cut, len(whole)))
        # MQTT had them all (ahead of the bus): each of them again is the same event again
        assert taken_once(whole + got) == whole
        assert listener.latest(f"{prefix}/gate/status") == "offline"
        assert listener.latest(f"{prefix}/gate/count/person") == "0"


def taken_once(got: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """What a subscriber takes of a camera's events with docs/integrations.md's `is_new`."""
    text = (ROOT / "docs" / "integrations.md").read_text("utf-8")
    (code,) = [block for block in PYTHON_BLOCK.findall(text) if "def is_new" in block]
    namespace: dict[str, Any] = {}
    exec(compile(code, "docs/integrations.md", "exec"), namespace)
    return [event for event in got if namespace["is_new"](event)]


def test_a_moved_live_camera_s_new_stream_on_mqtt_reuses_the_seq_mqtt_was_ahead_by(
    tmp_path: Path, broker: Broker
) -> None:
    """A live camera starts a new stream on the survivor, numbered on from the bus's last
    `seq` (`Resume` with nothing published: what the coordinator gives a live camera). Where
    MQTT was ahead of the bus at the cut, the new stream's first events come with the `seq`
    of MQTT's last ones: the first of them a `camera.status` `connecting`, its frames from
    0, by which docs/integrations.md's `is_new` takes each event once, old and new."""
    with listening(broker, lambda p: [f"{p}/#"]) as (prefix, listener):
        config = cluster_config(tmp_path, broker, prefix)
        run_on(Shard("shard-0"), config, 1, {})
        old = events(prefix, ended(prefix, listener))
        ahead = 3  # MQTT had 3 events more than the bus when shard-0 died
        bus_had = len(old) - ahead
        before = len(listener.messages)
        run_on(Shard("shard-1"), config, 2, {"gate": Resume(next_seq=bus_had)})
        new = events(prefix, ended(prefix, listener, before))

    assert [e["seq"] for e in new] == list(range(bus_had, bus_had + len(new)))
    assert (new[0]["type"], new[0]["state"]) == ("camera.status", "connecting")
    assert [e["seq"] for e in old[bus_had:]] == [e["seq"] for e in new[:ahead]]
    assert min(e["frame"] for e in new if e["type"] == "detections") == 0
    assert taken_once(old + new) == old + new  # and not the first 3 by their `seq` alone


def test_each_run_of_each_shard_logs_in_to_the_broker_under_a_client_id_of_its_own(
    tmp_path: Path, broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker disconnects a client when another logs in under its id: shards sharing
    the config's one id would throw each other off, over and over."""
    import sinks.mqtt.sink  # paho-mqtt: after `brokers` skipped the test without it

    client_ids: list[str] = []
    connection = sinks.mqtt.sink.MqttConnection

    def recorded(settings: BrokerSettings, *args: Any, **kwargs: Any) -> MqttConnection:
        client_ids.append(settings.client_id)
        return connection(settings, *args, **kwargs)

    monkeypatch.setattr(sinks.mqtt.sink, "MqttConnection", recorded)
    with listening(broker, lambda p: [f"{p}/#"]) as (prefix, _):
        config = cluster_config(tmp_path, broker, prefix)
        first, second = Shard("shard-0"), Shard("shard-1")
        run_on(first, config, 1, {})
        run_on(second, config, 2, {})
        run_on(first, config, 3, {})  # cameras added, or taken over

    assert len(set(client_ids)) == 3
    (mqtt,) = [s for s in config.sinks if isinstance(s, MqttSinkConfig)]
    assert all(c.startswith(f"{mqtt.client_id}-") for c in client_ids)


def test_the_runs_status_is_the_drivers_and_a_shard_done_or_dead_leaves_it_online(
    tmp_path: Path, broker: Broker
) -> None:
    with listening(broker, lambda p: [f"{p}/#"]) as (prefix, listener):
        config = cluster_config(tmp_path, broker, prefix)
        status = PipelineStatus(config)
        try:
            run_on(Shard("shard-0"), config, 1, {})  # its cameras done: its sink closed
            ended(prefix, listener)
            status.camera_offline("yard")  # lost with its shard, which had said it online
        finally:
            status.close()
        said = listener.wait_for(lambda got: len(statuses(prefix, got)) == 2)

    assert statuses(prefix, said) == ["online", "offline"]
    assert listener.latest(f"{prefix}/yard/status") == "offline"


def statuses(prefix: str, messages: list[Received]) -> list[str]:
    return [m.text for m in messages if m.topic == f"{prefix}/status"]


def test_the_driver_s_wait_for_a_broker_that_never_answers_ends_at_once_on_the_run_s_stop(
    tmp_path: Path,
) -> None:
    hole = BlackHole()
    stop = threading.Event()
    stop.set()  # Ctrl-C while the driver connects
    try:
        config = cluster_config(tmp_path, ("127.0.0.1", hole.port), "stopped")
        status = PipelineStatus(config, stop)
    finally:
        hole.close()
    ((connection, _, _),) = status._open
    assert connection.stopped_waiting
    status.close()
