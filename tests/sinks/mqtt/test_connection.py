"""The connection's own locking against paho-mqtt's network thread."""

from __future__ import annotations

import threading

from paho.mqtt.client import DisconnectFlags
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from sinks.mqtt.connection import MqttConnection
from tests.sinks.mqtt.brokers import WAIT_S, PrivateMosquitto
from tests.sinks.mqtt.conftest import broker_settings


def test_a_publish_and_a_disconnect_paho_reports_holding_its_message_lock_do_not_deadlock(
    broker: PrivateMosquitto,
) -> None:
    """paho reports a lost connection holding its lock on outgoing messages when sending
    them again after a CONNACK fails (a broker that drops the client at once, e.g. for a
    packet over its max_packet_size); a publish of the sink's thread, holding the
    connection's lock, waits for that paho lock meanwhile."""
    connection = MqttConnection(broker_settings(broker.url), None, qos=1, buffer_size=10)
    client = connection._client
    held, go = threading.Event(), threading.Event()

    def network_thread() -> None:
        with client._out_message_mutex:  # as paho's `_handle_connack` holds it
            held.set()
            go.wait(WAIT_S)
            connection._on_disconnect(  # what paho calls
                client,
                None,
                DisconnectFlags(is_disconnect_packet_from_server=False),
                ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"),
                None,
            )

    network = threading.Thread(target=network_thread, daemon=True)
    network.start()
    assert held.wait(WAIT_S)
    publisher = threading.Thread(target=connection.publish, args=("t/x", b"1"), daemon=True)
    publisher.start()
    while publisher.is_alive() and not connection._lock.locked():
        publisher.join(0.01)
    go.set()
    network.join(WAIT_S)
    publisher.join(WAIT_S)
    assert not network.is_alive() and not publisher.is_alive(), "deadlocked"
    connection.close(1.0)
