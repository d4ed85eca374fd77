"""What waits in a connection for the broker, and what the broker would refuse.

While the broker is away, messages wait in a buffer of `buffer_size`; when it is full the
oldest is dropped and counted, so that what reaches the broker after an outage is the most
recent. State (retained messages: the pipeline's and each camera's status, counts, Home
Assistant's discovery) is not buffered but kept, the latest per topic, to be sent again on
every (re)connection: a broker that lost it (restarted without persistence) gets it back,
and none of it is ever dropped. A message whose packet is larger than the broker takes
(`BrokerSettings.max_packet_bytes`) is neither: it would get the connection closed, and is
dropped unsent and counted.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Iterator
from dataclasses import dataclass

from sinks.mqtt.packets import packet_size

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Message:
    """A message for the broker."""

    topic: str
    payload: bytes
    retain: bool


class Outbox:
    """The buffer and the state of one connection, and their counts. It has no lock of
    its own: its connection's guards it."""

    def __init__(self, *, qos: int, buffer_size: int, max_packet_bytes: int) -> None:
        self.dropped = 0
        """Messages dropped because the buffer was full while the broker was away."""
        self.undelivered = 0
        """Messages still buffered when the connection closed (the broker still away)."""
        self.oversized = 0
        """Messages dropped unsent: their packet is larger than the broker takes, and would
        get the connection closed; and those given up (`given_up`)."""
        self._qos = qos
        self._buffer_size = buffer_size
        self._max_packet_bytes = max_packet_bytes
        self._oversized_topics: set[str] = set()
        self._buffer: collections.deque[Message] = collections.deque()
        self._state: dict[str, bytes] = {}

    @property
    def buffered(self) -> int:
        """Messages waiting for the broker to come back."""
        return len(self._buffer)

    def fits(self, message: Message) -> bool:
        """Whether the broker takes `message`'s packet; if not, it is counted in
        `oversized`, with a warning the first time for its topic."""
        size = packet_size(message.topic, message.payload, self._qos)
        if size <= self._max_packet_bytes:
            return True
        self.oversized += 1
        if message.topic not in self._oversized_topics:
            self._oversized_topics.add(message.topic)
            log.warning(
                "mqtt sink: a message of %d bytes to %s is dropped: larger than the %d bytes "
                "the broker takes (max_packet_kb); later ones there too are only counted",
                size,
                message.topic,
                self._max_packet_bytes,
            )
        return False

    def wait(self, message: Message) -> None:
        """Buffer `message` until the broker is back, dropping the oldest when full."""
        if len(self._buffer) >= self._buffer_size:
            self._buffer.popleft()
            self.dropped += 1
        self._buffer.append(message)

    def keep(self, topic: str, payload: bytes) -> Message | None:
        """Keep `payload` as the state of `topic`: the retained message to send, or None
        when it is unchanged or does not fit (`fits`), and not to be sent."""
        message = Message(topic, payload, True)
        if self._state.get(topic) == payload or not self.fits(message):
            return None
        self._state[topic] = payload
        return message

    def given_up(self, topic: str, payload: bytes) -> None:
        """A message sent that the broker keeps closing the connection for was given up
        (`sinks.mqtt.refused`): counted in `oversized`, and no longer the state of its
        topic, if it was."""
        if self._state.get(topic) == payload:
            del self._state[topic]
        self.oversized += 1

    def states(self) -> Iterator[Message]:
        """Every topic's state, as a retained message."""
        for topic, payload in self._state.items():
            yield Message(topic, payload, True)

    def drain(self) -> Iterator[Message]:
        """The buffered messages, oldest first, each taken out of the buffer."""
        while self._buffer:
            yield self._buffer.popleft()

    def end(self) -> None:
        """The connection closes: what is still buffered is counted in `undelivered`, and
        dropped."""
        self.undelivered = len(self._buffer)
        self._buffer.clear()
