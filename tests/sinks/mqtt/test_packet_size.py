"""A message larger than the broker takes: dropped and counted, not sent again forever
(a broker drops a client that sends a packet over its max_packet_size, and paho sends
unacknowledged QoS 1 and 2 messages again on every reconnection)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sinks.mqtt.connection import MqttConnection
from sinks.mqtt.packets import packet_size
from sinks.mqtt.sink import MqttSink
from tests.sinks.mqtt.brokers import Listener, PrivateMosquitto, Relay
from tests.sinks.mqtt.conftest import LABELS, broker_settings, feed, frames
from tests.sinks.mqtt.test_outage import until
from tests.sinks.scrape import scrape_sink

BROKER_MAX_PACKET = 4096


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    mosquitto = PrivateMosquitto(tmp_path, options=(f"max_packet_size {BROKER_MAX_PACKET}",))
    mosquitto.start()
    yield mosquitto
    mosquitto.kill()


@pytest.fixture
def listener(broker: PrivateMosquitto) -> Iterator[Listener]:
    """A client of the broker receiving all under `big/`."""
    listening = Listener("127.0.0.1", broker.port, ["big/#"])
    yield listening
    listening.close()


@contextmanager
def connection_to(url: str, qos: int) -> Iterator[MqttConnection]:
    """A connection publishing to `url` with `qos`, closed (2 s for what waits) after."""
    connection = MqttConnection(broker_settings(url), None, qos=qos, buffer_size=10)
    try:
        yield connection
    finally:
        connection.close(2)


def assert_no_more_reconnections(connection: MqttConnection, at_most: int) -> None:
    """None over the reconnection delay, when a message given up on would have dropped the
    connection again, and at most `at_most` in all."""
    reconnections = connection.reconnections
    time.sleep(1.5)
    assert connection.reconnections == reconnections <= at_most


def test_packet_size_counts_the_topic_the_headers_and_the_packet_id_of_qos_1_and_2() -> None:
    # fixed header 1 + remaining length (1 byte up to 127), topic length 2 + topic, id 2
    assert packet_size("a/b", b"x" * 10, qos=0) == 1 + 1 + 2 + 3 + 10
    assert packet_size("a/b", b"x" * 10, qos=1) == 1 + 1 + 2 + 3 + 2 + 10
    assert packet_size("t", b"x" * 200, qos=1) == 1 + 2 + 2 + 1 + 2 + 200


@pytest.mark.parametrize("qos", [1, 2])
def test_a_message_over_the_broker_s_max_packet_size_is_dropped_and_counted_not_resent_forever(
    broker: PrivateMosquitto, listener: Listener, caplog: pytest.LogCaptureFixture, qos: int
) -> None:
    caplog.set_level(logging.WARNING, "sinks.mqtt.outbox")
    settings = broker_settings(broker.url, max_packet_bytes=BROKER_MAX_PACKET)
    sink = MqttSink(settings, LABELS, prefix="big", qos=qos, close_timeout_s=2)
    try:
        feed(sink, frames("lobby", 1))
        sink.connection.publish("big/lobby/huge", b"x" * 10_000)
        feed(sink, frames("lobby", 1, first=1))
        got = listener.wait_for(lambda m: sum(x.topic == "big/lobby/detections" for x in m) == 2)
        time.sleep(0.3)  # a dropped connection would show by now
        assert sum(x.topic == "big/lobby/detections" for x in got) == 2
        assert not [x for x in got if x.topic == "big/lobby/huge"]
        assert sink.connection.reconnections == 0
        assert sink.connection.oversized == 1
        assert scrape_sink(sink)["ssd_sink_mqtt_oversized_total"] == 1
        assert "1 too large for the broker (max_packet_kb)" in sink.describe()
        (warning,) = [r.getMessage() for r in caplog.records if "dropped" in r.getMessage()]
        size = packet_size("big/lobby/huge", b"x" * 10_000, qos)
        assert f"a message of {size} bytes to big/lobby/huge is dropped" in warning
    finally:
        sink.close()


def test_a_message_the_broker_drops_the_client_for_twice_is_given_up_without_max_packet_kb(
    broker: PrivateMosquitto, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    """The broker's limit below `max_packet_kb` (it cannot be learnt in MQTT 3.1.1): the
    broker closes the connection as the message comes, and again right after the
    reconnection sends it again; then the sink gives up on it."""
    caplog.set_level(logging.WARNING, "sinks.mqtt.connection")
    with connection_to(broker.url, qos=1) as connection:
        connection.publish("big/small/1", b"1")
        connection.publish("big/huge", b"x" * 10_000)
        connection.publish("big/small/2", b"2")
        got = listener.wait_for(lambda m: {"big/small/1", "big/small/2"} <= {x.topic for x in m})
        assert {"big/small/1", "big/small/2"} <= {x.topic for x in got}, broker.log()
        assert connection.oversized == 1
        assert_no_more_reconnections(connection, at_most=2)
    assert not [x for x in got if x.topic == "big/huge"]
    assert connection.lost == 0
    (warning,) = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    size = packet_size("big/huge", b"x" * 10_000, 1)
    assert f"gave up on a message of {size} bytes to big/huge" in warning


def test_a_retained_state_over_the_broker_s_limit_is_given_up_not_sent_again_at_reconnections(
    broker: PrivateMosquitto, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    """A state (a snapshot, say) is sent again on every reconnection, as a new message, ahead
    of what waited: once given up, it must not be, nor its copies paho holds, or the broker
    drops every connection at it and nothing behind it ever arrives."""
    caplog.set_level(logging.WARNING, "sinks.mqtt.connection")
    with connection_to(broker.url, qos=1) as connection:
        connection.set_state("big/snapshot", b"x" * 10_000)
        connection.publish("big/small", b"1")
        got = listener.wait_for(lambda m: "big/small" in {x.topic for x in m})
        assert "big/small" in {x.topic for x in got}, broker.log()
        assert connection.oversized == 1
        assert_no_more_reconnections(connection, at_most=2)
    assert not [x for x in got if x.topic == "big/snapshot"]
    assert connection.lost == 0
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1 and "to big/snapshot" in gave_up[0]


def test_a_message_no_larger_than_one_the_broker_took_is_not_given_up_on_two_other_drops(
    broker: PrivateMosquitto, listener: Listener
) -> None:
    """The connection dropped twice in a row, the second right after the reconnection, with
    the same message unacknowledged both times, for another reason than its size (a network
    that stalls and resets connections, a broker restarting): a message no larger than one
    the broker acknowledged is within its limit, and is delivered once the network is back."""
    relay = Relay(broker.port)
    try:
        with connection_to(relay.url, qos=1) as connection:
            connection.publish("big/taken", b"t" * 3000)
            assert listener.wait_for(lambda m: "big/taken" in {x.topic for x in m})
            relay.holding = True
            connection.publish("big/innocent", b"i" * 2000)
            for drop in (1, 2):
                relay.cut()
                assert until(lambda: connection.reconnections == drop), broker.log()  # noqa: B023
            relay.holding = False
            relay.cut()
            got = listener.wait_for(lambda m: "big/innocent" in {x.topic for x in m})
            assert "big/innocent" in {x.topic for x in got}
            assert connection.oversized == 0
    finally:
        relay.close()


def test_with_qos_0_a_retained_state_over_the_broker_s_limit_is_given_up_not_sent_forever(
    broker: PrivateMosquitto, listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    """QoS 0: paho sends nothing again, but the sink sends the states again at every
    reconnection, the one too large first among them."""
    caplog.set_level(logging.WARNING, "sinks.mqtt.connection")
    with connection_to(broker.url, qos=0) as connection:
        connection.set_state("big/count", b"1")
        assert listener.wait_for(lambda m: "big/count" in {x.topic for x in m})
        connection.set_state("big/snapshot", b"x" * 10_000)
        assert until(lambda: connection.oversized == 1), broker.log()
        assert until(lambda: connection.connected)
        connection.publish("big/small", b"1")
        got = listener.wait_for(lambda m: "big/small" in {x.topic for x in m})
        assert "big/small" in {x.topic for x in got}, broker.log()
        assert_no_more_reconnections(connection, at_most=3)
    assert not [x for x in got if x.topic == "big/snapshot"]
    gave_up = [r.getMessage() for r in caplog.records if "gave up" in r.getMessage()]
    assert len(gave_up) == 1 and "to big/snapshot" in gave_up[0]
