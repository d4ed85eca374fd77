"""A broker host that never answers (a firewall dropping the connection, a host down): the
sink gives up within `connect_timeout_s`, at once on the run's stop, and its end is not held
up by a reconnection to it or by a broker that stopped reading."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sinks.base import SinkError
from sinks.mqtt.connection import MqttConnection
from sinks.mqtt.login import probe_broker
from sinks.mqtt.sink import MqttSink
from sinks.mqtt.sockets import Cancelled, NoAnswer, connect_tcp
from tests.sinks.mqtt.brokers import WAIT_S, BlackHole, PrivateMosquitto, SilentBroker
from tests.sinks.mqtt.conftest import LABELS, broker_settings

LONG_S = 60.0
"""A timeout none of these tests may wait out."""


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.close()


def test_connect_tcp_gives_up_on_a_host_that_never_answers_within_its_timeout(
    black_hole: BlackHole,
) -> None:
    started = time.monotonic()
    with pytest.raises(NoAnswer, match=r"no answer within 0\.3 s"):
        connect_tcp("127.0.0.1", black_hole.port, 0.3, lambda: False)
    assert time.monotonic() - started < 0.3 + 2


def test_connect_tcp_ends_at_once_when_cancelled(black_hole: BlackHole) -> None:
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    with pytest.raises(Cancelled):
        connect_tcp("127.0.0.1", black_hole.port, LONG_S, stop.is_set)
    assert time.monotonic() - started < 2


def test_a_broker_that_never_answers_is_given_up_within_connect_timeout_s_in_one_line(
    black_hole: BlackHole,
) -> None:
    settings = broker_settings(black_hole.url, connect_timeout_s=0.5)
    started = time.monotonic()
    with pytest.raises(SinkError) as raised:
        MqttSink(settings, LABELS)
    assert time.monotonic() - started < 0.5 + 2
    message = str(raised.value)
    assert message == (
        f"mqtt sink: cannot reach the broker at mqtt://127.0.0.1:{black_hole.port}: no answer "
        "within 0.5 s (connect_timeout_s): a firewall dropping the connection, or the host "
        "down?"
    )


def test_a_stop_while_connecting_to_a_broker_that_never_answers_ends_the_wait_at_once(
    black_hole: BlackHole,
) -> None:
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    sink = MqttSink(broker_settings(black_hole.url, connect_timeout_s=LONG_S), LABELS, stop=stop)
    assert time.monotonic() - started < 3
    assert sink.connection.stopped_waiting
    sink.close()
    assert "never connected: the run stopped while waiting for the broker" in sink.describe()


@pytest.fixture
def silent_tls() -> Iterator[SilentBroker]:
    """A port that takes the TCP connection and never answers the TLS handshake."""
    broker = SilentBroker()
    yield broker
    broker.close()


def tls_url(broker: SilentBroker) -> str:
    return broker.url.replace("mqtt://", "mqtts://")


def test_a_tls_handshake_never_answered_is_given_up_within_connect_timeout_s_in_one_line(
    silent_tls: SilentBroker,
) -> None:
    started = time.monotonic()
    with pytest.raises(SinkError) as raised:
        MqttSink(broker_settings(tls_url(silent_tls), connect_timeout_s=0.5), LABELS)
    assert time.monotonic() - started < 0.5 + 2
    assert silent_tls.connected.is_set()  # the TCP connection was made: the handshake waited
    assert str(raised.value) == (
        f"mqtt sink: cannot reach the broker at {tls_url(silent_tls)}: the TLS handshake not "
        "answered within 0.5 s (connect_timeout_s): a port that does not serve TLS?"
    )


def test_a_stop_during_a_tls_handshake_never_answered_ends_the_wait_at_once(
    silent_tls: SilentBroker,
) -> None:
    stop = threading.Event()

    def stop_in_the_handshake() -> None:
        if silent_tls.connected.wait(WAIT_S):  # the TCP connection is made
            time.sleep(0.2)
            stop.set()

    threading.Thread(target=stop_in_the_handshake, daemon=True).start()
    started = time.monotonic()
    sink = MqttSink(
        broker_settings(tls_url(silent_tls), connect_timeout_s=LONG_S), LABELS, stop=stop
    )
    assert time.monotonic() - started < 3
    assert silent_tls.connected.is_set()
    assert sink.connection.stopped_waiting
    sink.close()
    assert "never connected: the run stopped while waiting for the broker" in sink.describe()


def test_a_reconnection_to_a_broker_host_gone_silent_does_not_hold_up_the_run_s_end(
    broker: PrivateMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker dies and its host then drops connections: paho's network thread is in a
    reconnection of `connect_timeout_s` when the run ends; the end waits `close_timeout_s`,
    then counts what is buffered in one line."""
    caplog.set_level(logging.WARNING, "sinks.mqtt.connection")
    settings = broker_settings(broker.url, connect_timeout_s=LONG_S)
    connection = MqttConnection(settings, None, qos=1, buffer_size=10)
    client = connection._client
    attempting = threading.Event()
    give_up = client.cancelled

    def cancelled() -> bool:  # asked only while a TCP connection is under way
        attempting.set()
        return give_up()

    client.cancelled = cancelled
    broker.kill()
    hole = BlackHole(broker.port)
    try:
        assert attempting.wait(WAIT_S), "no reconnection was attempted"
        for i in range(3):
            connection.publish(f"t/{i}", b"x")
        started = time.monotonic()
        connection.close(0.2)
        assert time.monotonic() - started < 0.2 + 3
    finally:
        hole.close()
    assert connection.undelivered == 3
    ends = [r.getMessage() for r in caplog.records if "when the run ended" in r.getMessage()]
    assert ends == [
        f"mqtt sink: 3 messages never reached the broker at {settings.who()} when the run "
        "ended: 3 still buffered, the broker away"
    ]


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_a_broker_that_stopped_reading_does_not_hold_up_the_run_s_end_until_its_keep_alive(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, tls: bool
) -> None:
    """A frozen broker (SIGSTOP) reads nothing: the socket's buffers fill and the DISCONNECT
    cannot go out; paho would wait for the keep-alive (60 s here) to give up."""
    caplog.set_level(logging.WARNING, "sinks.mqtt.connection")
    broker = PrivateMosquitto(tmp_path, tls=tls)
    broker.start()
    try:
        settings = broker_settings(
            broker.url, keepalive_s=60, ca_file=broker.ca_file if tls else None
        )
        connection = MqttConnection(settings, None, qos=1, buffer_size=10)
        assert broker._process is not None
        broker._process.send_signal(signal.SIGSTOP)
        for _ in range(200):  # more than the socket buffers hold
            connection.publish("t/big", b"x" * 65536)
        started = time.monotonic()
        connection.close(0.2)
        assert time.monotonic() - started < 0.2 + 0.1 + 3
    finally:
        broker.kill()
    assert connection.lost == 200
    ends = [r.getMessage() for r in caplog.records if "when the run ended" in r.getMessage()]
    assert ends == [
        f"mqtt sink: 200 messages never reached the broker at {settings.who()} when the run "
        "ended: 200 handed to the connection and not acknowledged"
    ]


@pytest.fixture
def silent_dns(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Name look-ups that do not answer until the event is set (at the test's end)."""
    answer = threading.Event()
    look_up = socket.getaddrinfo

    def silent(*args: Any, **kwargs: Any) -> Any:
        answer.wait(WAIT_S)
        return look_up(*args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", silent)
    yield answer
    answer.set()


def test_connect_tcp_gives_up_on_a_name_the_dns_does_not_answer_within_its_timeout(
    silent_dns: threading.Event,
) -> None:
    with pytest.raises(NoAnswer, match=r"its name not found within 0\.3 s"):
        connect_tcp("broker.example", 1883, 0.3, lambda: False)


def test_connect_tcp_looking_up_a_name_ends_at_once_when_cancelled(
    silent_dns: threading.Event,
) -> None:
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    with pytest.raises(Cancelled):
        connect_tcp("broker.example", 1883, LONG_S, stop.is_set)


def test_validate_s_check_of_a_broker_that_never_answers_says_no_answer(
    black_hole: BlackHole,
) -> None:
    with pytest.raises(SinkError, match=r"no answer within 0\.3 s \(connect_timeout_s\)"):
        probe_broker(broker_settings(black_hole.url, connect_timeout_s=0.3))
