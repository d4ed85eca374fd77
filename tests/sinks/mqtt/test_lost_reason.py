"""What the warning of a lost broker says of why: what a user can act on, not paho's
"Unspecified error"."""

from __future__ import annotations

import logging
import time

import pytest

from sinks.mqtt.connection import MqttConnection
from tests.sinks.mqtt.brokers import WAIT_S, PrivateMosquitto, SilentBroker
from tests.sinks.mqtt.conftest import broker_settings


def lost_lines(caplog: pytest.LogCaptureFixture, connection: MqttConnection) -> list[str]:
    deadline = time.monotonic() + WAIT_S
    while connection.connected and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # the warning follows the flag
    return [r.getMessage() for r in caplog.records if "lost the broker" in r.getMessage()]


def test_a_broker_that_dies_is_said_to_have_closed_the_connection_not_unspecified_error(
    broker: PrivateMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "sinks.mqtt.connection")
    connection = MqttConnection(broker_settings(broker.url), None, qos=1, buffer_size=10)
    try:
        broker.kill()
        (line,) = lost_lines(caplog, connection)
    finally:
        connection.close(0)
    assert f"lost the broker at {broker.url} (the broker closed the connection: " in line
    assert "Unspecified error" not in line


def test_a_broker_gone_silent_is_said_to_have_not_answered_within_the_keepalive(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "sinks.mqtt.connection")
    silent = SilentBroker(accept_login=True)
    settings = broker_settings(silent.url, keepalive_s=1)
    connection = MqttConnection(settings, None, qos=1, buffer_size=10)
    try:
        (line,) = lost_lines(caplog, connection)
    finally:
        connection.close(0)
        silent.close()
    assert f"lost the broker at {silent.url} (no answer from it within the keep-alive" in line


def test_a_connection_reset_is_said_with_the_socket_s_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "sinks.mqtt.connection")
    resetting = SilentBroker(accept_login=True, reset_after_s=0.2)
    connection = MqttConnection(broker_settings(resetting.url), None, qos=1, buffer_size=10)
    try:
        line, *_ = lost_lines(caplog, connection)
    finally:
        connection.close(0)
        resetting.close()
    assert "(the connection broke: Connection reset by peer);" in line
