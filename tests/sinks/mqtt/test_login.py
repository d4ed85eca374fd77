"""Logging in to the broker: a password file on a private Mosquitto, an unreachable one."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from sinks.base import SinkError
from sinks.mqtt.login import probe_broker
from sinks.mqtt.sink import MqttSink
from tests.conftest import free_port
from tests.sinks.mqtt.brokers import PrivateMosquitto
from tests.sinks.mqtt.conftest import LABELS, broker_settings

RIGHT = "right-horse-battery-staple"
WRONG = "wrong-Xq7-password"


@pytest.fixture(scope="module")
def locked_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    broker = PrivateMosquitto(tmp_path_factory.mktemp("locked"), users={"pipeline": RIGHT})
    broker.start()
    yield broker
    broker.kill()


def test_a_wrong_password_is_one_line_without_the_password(
    locked_broker: PrivateMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = broker_settings(locked_broker.url, username="pipeline", password=WRONG)
    with pytest.raises(SinkError) as caught:
        MqttSink(settings, LABELS)
    message = str(caught.value)
    assert message.startswith(
        f"mqtt sink: the broker at {locked_broker.url} as 'pipeline' refused the login: "
    )
    assert "password_env" in message and "\n" not in message
    assert WRONG not in message and WRONG not in repr(settings)
    with pytest.raises(SinkError, match="refused the login"):
        probe_broker(settings)
    assert all(WRONG not in record.getMessage() for record in caplog.records)


def test_no_credentials_on_a_broker_that_needs_them_is_refused(
    locked_broker: PrivateMosquitto,
) -> None:
    with pytest.raises(SinkError, match=r"as .* refused|refused the login"):
        MqttSink(broker_settings(locked_broker.url), LABELS)


def test_the_right_password_logs_in(locked_broker: PrivateMosquitto) -> None:
    settings = broker_settings(locked_broker.url, username="pipeline", password=RIGHT)
    probe_broker(settings)
    sink = MqttSink(settings, LABELS)
    assert sink.connection.connected
    sink.close()
    assert RIGHT not in sink.describe()


def test_a_broker_nobody_runs_is_one_line() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    with pytest.raises(
        SinkError, match=rf"^mqtt sink: cannot reach the broker at {url}: .*refused"
    ):
        MqttSink(broker_settings(url), LABELS)


def test_tls_to_a_broker_without_tls_fails_in_one_line(locked_broker: PrivateMosquitto) -> None:
    url = locked_broker.url.replace("mqtt://", "mqtts://")
    with pytest.raises(SinkError, match=rf"^mqtt sink: .*{url}") as caught:
        MqttSink(broker_settings(url, connect_timeout_s=2.0), LABELS)
    assert "\n" not in str(caught.value)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateMosquitto]:
    broker = PrivateMosquitto(tmp_path_factory.mktemp("tls"), tls=True)
    broker.start()
    yield broker
    broker.kill()


def test_mqtts_checks_the_broker_against_the_given_ca(tls_broker: PrivateMosquitto) -> None:
    sink = MqttSink(broker_settings(tls_broker.url, ca_file=tls_broker.ca_file), LABELS)
    assert sink.connection.connected
    sink.close()


def test_mqtts_refuses_a_broker_its_cas_do_not_vouch_for(tls_broker: PrivateMosquitto) -> None:
    with pytest.raises(SinkError) as caught:
        MqttSink(broker_settings(tls_broker.url), LABELS)  # the system's CAs
    message = str(caught.value)
    assert message.startswith(f"mqtt sink: cannot reach the broker at {tls_broker.url}: ")
    assert "certificate verify failed" in message and "\n" not in message
