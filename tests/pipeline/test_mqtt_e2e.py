"""The mqtt sink through the real command line, with real Mosquitto brokers: every event
once and as the ZeroMQ bus sends it; the broker killed and restarted mid-run; the last will
when the pipeline is killed."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq

from tests.conftest import VideoFactory, free_port
from tests.pipeline.cli_runs import run_cli
from tests.sinks.mqtt.brokers import (
    Listener,
    PrivateMosquitto,
    Received,
    listening,
    machine_broker,
)

RUN_TIMEOUT_S = 120
Broker = tuple[str, int]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with machine_broker(tmp_path_factory.mktemp("mosquitto")) as address:
        yield address


DETECTOR = (
    # the bundled model finds no people in rectangles: keep its 3 best boxes a frame, and
    # let their low-scoring tracks be confirmed, so that there are track events too
    "detector:\n  model: person_ssdlite\n  device: cpu\n"
    "  batch_size: 4\n  score_threshold: 0.0\n  max_detections: 3\n"
    "tracker:\n  sigma_h: 0.0\n  t_min: 2\n"
)


def write_config(tmp_path: Path, cameras: str, sinks: str) -> Path:
    config = tmp_path / "cams.yaml"
    config.write_text(f"cameras:\n{cameras}{DETECTOR}sinks:\n{sinks}")
    return config


def mqtt_events(prefix: str, messages: list[Received]) -> dict[str, list[tuple[str, bytes]]]:
    """Per camera, (type, body) of every event message, in arrival order."""
    events: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    for m in messages:
        levels = m.topic.split("/")
        if len(levels) == 3 and levels[0] == prefix and levels[2] not in ("status", "count"):
            events[levels[1]].append((levels[2], m.payload))
    return events


def test_a_run_publishes_every_event_once_with_the_zeromq_bodies(
    synthetic_video: VideoFactory, tmp_path: Path, broker: Broker
) -> None:
    port = free_port()
    context = zmq.Context()
    sub = context.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(f"tcp://127.0.0.1:{port}")
    cameras = "".join(
        f"  - id: {cid}\n    source: {synthetic_video(f'{cid}.mp4', frames=12)}\n"
        for cid in ("lobby", "gate")
    )
    try:
        with listening(broker, lambda prefix: [f"{prefix}/#"]) as (prefix, listener):
            config = write_config(
                tmp_path,
                cameras,
                f"  - type: zmq\n    endpoint: tcp://127.0.0.1:{port}\n"
                "    wait_for_subscribers: 1\n"
                f"  - type: mqtt\n    url: mqtt://{broker[0]}:{broker[1]}\n    prefix: {prefix}\n",
            )
            process = run_cli(config)
            out, err = process.communicate(timeout=RUN_TIMEOUT_S)
            assert process.returncode == 0, err
            bus: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
            while sub.poll(2000):
                topic, body = sub.recv_multipart()
                event = json.loads(body)
                assert topic.decode() == f"{event['type']}.{event['camera']}"
                bus[event["camera"]].append((event["type"], body))
            assert sum(len(v) for v in bus.values()) > 2 * 12  # every frame, and more
            got = listener.wait_for(lambda m: mqtt_events(prefix, m) == bus)
            assert mqtt_events(prefix, got) == bus
            total = sum(len(v) for v in bus.values())
            assert (
                f"mqtt mqtt://{broker[0]}:{broker[1]} under {prefix}/: {total} events, 0 dropped"
                in out
            )
            assert listener.latest(f"{prefix}/status") == "offline"  # said at the end
            assert listener.latest(f"{prefix}/lobby/status") == "offline"
    finally:
        sub.close(0)
        context.term()


def seqs(prefix: str, messages: list[Received]) -> set[int]:
    return {json.loads(body)["seq"] for _, body in mqtt_events(prefix, messages).get("lobby", [])}


def until(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_broker_restarted_mid_run_gets_the_buffered_events_and_drops_are_counted(
    synthetic_video: VideoFactory, tmp_path: Path
) -> None:
    (tmp_path / "broker").mkdir()
    broker = PrivateMosquitto(tmp_path / "broker")
    broker.start()
    listener = Listener("127.0.0.1", broker.port, ["e2e/#"], session="e2e-listener")
    clip = synthetic_video("lobby.mp4", frames=25, fps=10)  # 2.5 s, played in real time
    config = write_config(
        tmp_path,
        f"  - id: lobby\n    source: {{type: file, path: {clip}, realtime: true}}\n",
        f"  - type: mqtt\n    url: {broker.url}\n    prefix: e2e\n    buffer_size: 4\n"
        "    reconnect_max_delay_s: 1\n",
    )
    process = run_cli(config)
    try:
        until(lambda: len(seqs("e2e", listener.messages)) >= 3, timeout=60)
        database = broker.folder / "mosquitto.db"
        assert broker._process is not None
        broker._process.send_signal(signal.SIGUSR1)  # the listener's session kept on disk
        until(database.exists, timeout=10)
        broker.kill()
        time.sleep(1.5)  # some 15 frames while the broker is away: more than the buffer
        broker.start()
        out, err = process.communicate(timeout=RUN_TIMEOUT_S)
        assert process.returncode == 0, err
    finally:
        if process.poll() is None:
            process.kill()
        listener.close()
        broker.kill()
    (line,) = [x for x in out.splitlines() if x.startswith("  -> mqtt ")]
    dropped = int(line.split(" dropped while")[0].rsplit(" ", 1)[1])
    sent = int(line.split(" events, ")[0].rsplit(" ", 1)[1])
    assert "1 reconnection" in line and dropped > 0
    received = seqs("e2e", listener.messages)
    assert max(received) == sent - 1  # the last event (stream.ended) arrived
    assert len(set(range(sent)) - received) == dropped  # each event missing was counted


def test_the_last_will_says_offline_when_the_pipeline_is_killed(
    synthetic_video: VideoFactory, tmp_path: Path, broker: Broker
) -> None:
    clip = synthetic_video("lobby.mp4", frames=100, fps=10)
    with listening(broker, lambda prefix: [f"{prefix}/#"]) as (prefix, listener):
        config = write_config(
            tmp_path,
            f"  - id: lobby\n    source: {{type: file, path: {clip}, realtime: true}}\n",
            f"  - type: mqtt\n    url: mqtt://{broker[0]}:{broker[1]}\n    prefix: {prefix}\n",
        )
        process = run_cli(config)
        try:
            until(lambda: len(seqs(prefix, listener.messages)) >= 2, timeout=60)
            assert listener.latest(f"{prefix}/status") == "online"
            assert listener.latest(f"{prefix}/lobby/status") == "online"
        finally:
            process.kill()  # SIGKILL: no chance to say goodbye
            process.communicate(timeout=RUN_TIMEOUT_S)
        until(lambda: listener.latest(f"{prefix}/status") == "offline", timeout=10)


def test_a_refused_login_stops_the_run_in_one_line_without_the_password(
    synthetic_video: VideoFactory, tmp_path: Path
) -> None:
    (tmp_path / "broker").mkdir()
    broker = PrivateMosquitto(tmp_path / "broker", users={"cam": "the-right-one-42"})
    broker.start()
    wrong = "wrong-Pa55word-e2e"
    try:
        config = write_config(
            tmp_path,
            f"  - id: lobby\n    source: {synthetic_video('lobby.mp4', frames=4)}\n",
            f"  - type: mqtt\n    url: {broker.url}\n    username: cam\n"
            "    password_env: E2E_MQTT_PASSWORD\n",
        )
        process = run_cli(config, env={**os.environ, "E2E_MQTT_PASSWORD": wrong})
        out, err = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        broker.kill()
    assert process.returncode == 1
    assert err.splitlines()[-1] == (
        f"error: mqtt sink: the broker at {broker.url} as 'cam' refused the login: Not "
        "authorized; check `username` and the password in `password_env`"
    )
    assert wrong not in out + err
    assert "Traceback" not in err
