"""Which message the broker keeps closing the connection for: one larger than its limit
(Mosquitto's `max_packet_size`), which MQTT 3.1.1 does not tell the client, and which is
sent again on every reconnection, to be dropped at again: by paho (QoS 1, 2: every message
the broker had not acknowledged), and by the sink (a state: the latest of each topic).

paho has no call for its table of outgoing messages: it is `_out_messages`, under
`_out_message_mutex`, in every paho 2.x."""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from sinks.mqtt.packets import packet_size

QUICK_LOSS_S = 5.0
"""A connection lost within this of its start was lost right after the reconnection sent
again what the broker had not acknowledged (and the states); a QoS 0 message that the
connection outlived by this was taken by the broker, which drops a connection at once at a
packet too large."""


@dataclass(frozen=True)
class Sent:
    """A message handed to paho: its topic and payload, and its packet's bytes."""

    topic: str
    payload: bytes
    size: int
    """Its packet's bytes."""


@dataclass(frozen=True)
class GivenUp(Sent):
    """A message given up, with the `infos` of every copy of it taken from paho."""

    infos: tuple[mqtt.MQTTMessageInfo, ...]


class TooLarge:
    """Tells, from the connection's losses, the message the broker refuses.

    It is the largest message it had not taken (QoS 1, 2: not acknowledged; QoS 0: sent
    within `QUICK_LOSS_S` of the loss), the same (topic and payload) at two losses in a row,
    the second right after the reconnection that sent it again: the largest, not the oldest,
    as the broker's acknowledgements of those before it may be cut off with the connection.
    And it is larger than every message the broker took: a broker that took a packet of some
    size takes any no larger, so a connection closed twice for another reason (a broker
    restarting, a network resetting connections) costs no such message.
    """

    def __init__(self, qos: int) -> None:
        self._qos = qos
        self._taken = 0
        """The largest packet the broker took."""
        self._recent: collections.deque[tuple[float, Sent]] = collections.deque()
        """QoS 0: what was sent on this connection within `QUICK_LOSS_S`, oldest first."""
        self._lock = threading.Lock()
        """Held for `_recent`: sent from the sink's thread, lost from paho's."""
        self._suspect: Sent | None = None
        """The message suspected at the last loss."""
        self._give_up: Sent | None = None

    def took(self, size: int) -> None:
        """paho says a message whose packet has `size` bytes went out: with QoS 1 and 2 the
        broker acknowledged it; with QoS 0 it was only written, which tells nothing."""
        if self._qos:
            self._taken = max(self._taken, size)

    def sent(self, topic: str, payload: bytes) -> None:
        """A message was handed to paho while connected."""
        if self._qos:  # the broker's acknowledgement says it took it (`took`)
            return
        now = time.monotonic()
        with self._lock:
            self._fold(now)
            self._recent.append((now, Sent(topic, payload, packet_size(topic, payload, 0))))

    def lost(self, client: mqtt.Client, connected_for_s: float) -> None:
        """The connection was lost `connected_for_s` after it was made."""
        largest = self._largest_unacknowledged(client) if self._qos else self._largest_recent()
        if largest is None or largest.size <= self._taken:
            self._suspect = None
            return
        if largest == self._suspect and connected_for_s < QUICK_LOSS_S:
            self._give_up = largest
        self._suspect = largest

    def take(self, client: mqtt.Client) -> GivenUp | None:
        """The message to give up, if any, at the reconnection, taken from paho (QoS 1, 2)
        with every copy (a state sent again) before paho sends them again."""
        message, self._give_up = self._give_up, None
        if message is None:
            return None
        infos: list[mqtt.MQTTMessageInfo] = []
        if self._qos:
            with client._out_message_mutex:
                copies = [m for m in client._out_messages.values() if self._same(m, message)]
                for copy in copies:
                    del client._out_messages[copy.mid]
                    infos.append(copy.info)
            if not infos:  # acknowledged meanwhile
                return None
        self._suspect = None
        return GivenUp(message.topic, message.payload, message.size, tuple(infos))

    def _largest_unacknowledged(self, client: mqtt.Client) -> Sent | None:
        with client._out_message_mutex:  # paho may hold it here: it is re-entrant
            largest = max(
                client._out_messages.values(),
                key=lambda m: packet_size(m.topic, m.payload, self._qos),
                default=None,
            )
        if largest is None:
            return None
        payload = bytes(largest.payload)
        return Sent(largest.topic, payload, packet_size(largest.topic, payload, self._qos))

    def _largest_recent(self) -> Sent | None:
        with self._lock:
            self._fold(time.monotonic())
            largest = max((sent for _, sent in self._recent), key=lambda s: s.size, default=None)
            self._recent.clear()
        return largest

    def _fold(self, now: float) -> None:
        """Counts as taken what the connection outlived by `QUICK_LOSS_S`. Holding `_lock`."""
        while self._recent and now - self._recent[0][0] >= QUICK_LOSS_S:
            self._taken = max(self._taken, self._recent.popleft()[1].size)

    @staticmethod
    def _same(message: mqtt.MQTTMessage, sent: Sent) -> bool:
        return message.topic == sent.topic and message.payload == sent.payload
