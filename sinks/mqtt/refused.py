"""Which message the broker keeps closing the connection for: one larger than its limit
(Mosquitto's `max_packet_size`), which MQTT 3.1.1 does not tell the client, and which paho
sends again (QoS 1, 2) on every reconnection, to be dropped at again.

paho has no call for its table of outgoing messages: it is `_out_messages`, under
`_out_message_mutex`, in every paho 2.x."""

from __future__ import annotations

from dataclasses import dataclass

import paho.mqtt.client as mqtt

from sinks.mqtt.packets import packet_size

QUICK_LOSS_S = 5.0
"""A connection lost within this of its start was lost right after the reconnection sent
again what the broker had not acknowledged."""


@dataclass(frozen=True)
class GivenUp:
    """A message given up, taken from paho with its copies (`infos`: each one's)."""

    topic: str
    payload: bytes
    size: int
    """Its packet's bytes."""
    infos: tuple[mqtt.MQTTMessageInfo, ...]


class TooLarge:
    """Tells, from the connection's losses, the message the broker refuses (QoS 1 and 2).

    It is the largest the broker had not acknowledged, the same at two losses in a row, the
    second right after the reconnection that sent it again: the largest, not the oldest, as
    the broker's acknowledgements of those before it may be cut off with the connection.
    And it is larger than every message the broker acknowledged: a broker that took a packet
    of some size takes any no larger, so a connection closed twice for another reason (a
    broker restarting, a network resetting connections) costs no such message.
    """

    def __init__(self, qos: int) -> None:
        self._qos = qos
        self._taken = 0
        """The largest packet the broker acknowledged."""
        self._suspect: mqtt.MQTTMessageInfo | None = None
        """The message suspected at the last loss."""
        self._give_up: mqtt.MQTTMessageInfo | None = None

    def took(self, size: int) -> None:
        """The broker acknowledged a message whose packet has `size` bytes."""
        self._taken = max(self._taken, size)

    def lost(self, client: mqtt.Client, connected_for_s: float) -> None:
        """The connection was lost `connected_for_s` after it was made."""
        largest = None
        if self._qos:
            with client._out_message_mutex:  # paho may hold it here: it is re-entrant
                largest = max(client._out_messages.values(), key=self._size, default=None)
        if largest is None or self._size(largest) <= self._taken:
            self._suspect = None
            return
        if largest.info is self._suspect and connected_for_s < QUICK_LOSS_S:
            self._give_up = largest.info
        self._suspect = largest.info

    def take(self, client: mqtt.Client) -> GivenUp | None:
        """The message to give up, if any, taken from paho at the reconnection (before it
        sends again what the broker had not acknowledged), and with it every copy paho holds
        (the same topic and payload: a state sent again at the reconnection)."""
        info, self._give_up = self._give_up, None
        if info is None:
            return None
        with client._out_message_mutex:
            message = client._out_messages.pop(info.mid, None)
            if message is None:  # acknowledged meanwhile
                return None
            copies = [
                m
                for m in client._out_messages.values()
                if m.topic == message.topic and m.payload == message.payload
            ]
            for copy in copies:
                del client._out_messages[copy.mid]
        self._suspect = None
        return GivenUp(
            message.topic,
            bytes(message.payload),
            self._size(message),
            (info, *(m.info for m in copies)),
        )

    def _size(self, message: mqtt.MQTTMessage) -> int:
        return packet_size(message.topic, message.payload, self._qos)
