"""One connection to the broker that outlives the broker's absences.

paho-mqtt's network thread reconnects with exponential backoff (`reconnect_min_delay_s`
doubling up to `reconnect_max_delay_s`). While the broker is away, messages wait in a
bounded buffer, and state (the latest retained message per topic) is kept to be sent again
on every (re)connection (`sinks.mqtt.outbox`).

With QoS 0, messages handed to paho in the moment the broker goes away, before the
connection is known to be lost, are lost: those paho had not yet written to the socket
are counted (`lost`: paho drops them when the connection breaks, and marks their
`MQTTMessageInfo` with MQTT_ERR_CONN_LOST on reconnecting); those it had written, but the
broker never read (the system's socket buffers), cannot be told apart from delivered ones,
as QoS 0 has no acknowledgement. With QoS 1 and 2 paho keeps them until the broker
acknowledges them and sends them again after reconnecting (QoS 1 may then deliver one
twice; each camera's `seq` tells); those still unacknowledged when the connection closes
are counted in `lost` too.

Each connection (the first, each reconnection) is given `connect_timeout_s`, its TLS
handshake included, also by a host that never answers it (`sinks.mqtt.sockets`); the first
ends at once on the run's stop, a reconnection when the connection closes.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from sinks.mqtt.disconnects import SOCKET_ERROR, why_lost
from sinks.mqtt.handed import Handed
from sinks.mqtt.login import CancellableClient, login_failure, new_client, open_socket
from sinks.mqtt.outbox import Message, Outbox
from sinks.mqtt.packets import packet_size
from sinks.mqtt.refused import TooLarge
from sinks.mqtt.settings import BrokerSettings
from sinks.mqtt.sockets import POLL_S, Cancelled
from sinks.mqtt.topics import OFFLINE, ONLINE

log = logging.getLogger(__name__)

_DISCONNECT_GRACE_S = 1.0
"""At the end, how long the broker gets to take the DISCONNECT after `close`'s timeout."""


class MqttConnection:
    """A connected paho client; the constructor returns once the broker accepted it.

    `will_topic` gets `online` (retained) on every connection and `offline` when the
    connection ends, cleanly (`close`) or not (the broker sends the last will); None: no
    will, and nothing said there (another connection says it).

    Raises SinkError, in one line without the password, when the broker cannot be reached,
    does not answer within `connect_timeout_s`, or refuses the login. `stop` (the run's)
    ends that wait at once: the connection is then given up (`stopped_waiting`), keeps
    what it is given without sending it, and closes at once.
    """

    def __init__(
        self,
        settings: BrokerSettings,
        will_topic: str | None,
        *,
        qos: int,
        buffer_size: int,
        stop: threading.Event | None = None,
    ) -> None:
        self.settings = settings
        self.qos = qos
        self.buffer_size = buffer_size
        self.published = 0
        """Messages handed to the broker (or, QoS 1 and 2, to paho until it acknowledges)."""
        self._outbox = Outbox(
            qos=qos, buffer_size=buffer_size, max_packet_bytes=settings.max_packet_bytes
        )
        self._connected_at = 0.0
        self._too_large = TooLarge(qos)
        self._handed = Handed(self._too_large)
        self.reconnections = 0
        self.stopped_waiting = False
        """The run stopped before the broker accepted the connection: it was given up."""
        self._stop = stop
        self._will_topic = will_topic
        self._lock = threading.Lock()
        """Guards `_outbox`, which has no lock of its own, and what is handed to paho."""
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        """Set while paho has no connection open (from its report of the loss or end)."""
        self._answered = threading.Event()
        self._refusal: str | None = None
        self._ever_connected = False
        self._closing = False
        self._socket_error: str | None = None
        """The socket's error that paho last reported (ECONNRESET, say), this connection."""
        self._client = self._make_client()
        self._connect()

    @property
    def lost(self) -> int:
        """Messages handed to paho that never reached the broker as far as it can tell: QoS 0
        ones it had not written to the socket when the connection broke or closed, QoS 1
        and 2 ones the broker had not acknowledged when it closed."""
        return self._handed.lost

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def buffered(self) -> int:
        """Messages waiting for the broker to come back."""
        return self._outbox.buffered

    @property
    def dropped(self) -> int:
        """Messages dropped because the buffer was full while the broker was away."""
        return self._outbox.dropped

    @property
    def undelivered(self) -> int:
        """Messages still buffered when the connection closed (the broker still away)."""
        return self._outbox.undelivered

    @property
    def oversized(self) -> int:
        """Messages dropped unsent: their packet is larger than the broker takes
        (`BrokerSettings.max_packet_bytes`), and would get the connection closed."""
        return self._outbox.oversized

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        """Send a message now, or buffer it while the broker is away."""
        message = Message(topic, payload, retain)
        with self._lock:
            if not self._outbox.fits(message):
                return
            if self._connected.is_set() and self._send(message):
                return
            self._outbox.wait(message)

    def set_state(self, topic: str, payload: bytes) -> None:
        """Keep `payload` as the retained state of `topic`; sent now if connected, and
        again after every reconnection. An unchanged state is not sent again."""
        with self._lock:
            message = self._outbox.keep(topic, payload)
            if message is not None and self._connected.is_set():
                self._send(message)

    def close(self, timeout_s: float) -> None:
        """Deliver what is buffered (waiting up to `timeout_s` for a broker that is away),
        say `offline` on the will topic, and disconnect; what did not reach the broker is
        said in one warning line. A reconnection under way then ends at once, and a broker
        that stopped reading gets `_DISCONNECT_GRACE_S` more, not its keep-alive.
        Idempotent."""
        if self._closing:
            return
        if self.stopped_waiting:  # no connection: nothing can be delivered
            self._closing = True
            self._outbox.end()
            return
        deadline = time.monotonic() + timeout_s
        self._connected.wait(timeout_s)
        with self._lock:
            self._closing = True  # from here a reconnection under way ends (TCP)
            if self._connected.is_set() and self._will_topic is not None:
                self._send(Message(self._will_topic, OFFLINE.encode(), True))
            self._outbox.end()
            last = self._handed.last()
        if last is not None and self._connected.is_set():
            try:
                last.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError) as exc:  # lost again: paho cannot deliver it
                log.warning("mqtt sink: the last messages may not have reached the broker: %s", exc)
        self._client.disconnect()
        if not self._disconnected.wait(max(_DISCONNECT_GRACE_S, deadline - time.monotonic())):
            self._cut()
        self._client.loop_stop()
        with self._lock:
            lost = self._handed.settle(unsent_lost=True)
        self._say_undelivered(lost)

    def _cut(self) -> None:
        """Shut the socket of a connection that does not end: the broker stopped reading,
        and paho's DISCONNECT waits behind what it has not taken; paho's network thread then
        ends at once (rather than at the keep-alive's end)."""
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                # the plain socket's: TLS's own drops its state while paho's thread uses it
                socket.socket.shutdown(sock, socket.SHUT_RDWR)

    def _say_undelivered(self, lost: int) -> None:
        """The one warning line of what never reached the broker when the run ended:
        `undelivered` still buffered, `lost` handed to the connection."""
        if not self.undelivered and not lost:
            return
        parts = []
        if self.undelivered:
            parts.append(f"{self.undelivered} still buffered, the broker away")
        if lost:
            parts.append(
                f"{lost} handed to the connection "
                + ("and not yet sent" if self.qos == 0 else "and not acknowledged")
            )
        log.warning(
            "mqtt sink: %d messages never reached the broker at %s when the run ended: %s",
            self.undelivered + lost,
            self.settings.who(),
            "; ".join(parts),
        )

    def _make_client(self) -> CancellableClient:
        client = new_client(self.settings, self.settings.client_id, self._give_up_connecting)
        if self._will_topic is not None:
            client.will_set(self._will_topic, OFFLINE, qos=self.qos, retain=True)
        client.reconnect_delay_set(
            max(1, round(self.settings.reconnect_min_delay_s)),
            max(1, round(self.settings.reconnect_max_delay_s)),
        )
        # No cap on messages in flight or queued in paho: it then sends each at once (a
        # capped, queued one can wait after a reconnection until the next acknowledgement),
        # and never refuses the state and buffer sent again on reconnection. What paho holds
        # is what the broker has not acknowledged yet: a broker that stops answering is
        # dropped within 1.5 keep-alives, and from then on messages wait in the buffer.
        client.max_inflight_messages_set(0)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_log = self._on_log
        return client

    def _connect(self) -> None:
        deadline = time.monotonic() + self.settings.connect_timeout_s
        try:
            open_socket(self._client, self.settings)
        except Cancelled:
            self._stopped_waiting()
            return
        self._client.loop_start()
        answered = self._wait_for_answer(deadline)
        if answered and self._refusal is None:
            return
        self._client.disconnect()  # first: it ends a wait before the next attempt
        self._client.loop_stop()
        if not answered and self._stop is not None and self._stop.is_set():
            self._stopped_waiting()
            return
        raise login_failure(self.settings, self._refusal if answered else None)

    def _stopped_waiting(self) -> None:
        self.stopped_waiting = True
        log.warning(
            "mqtt sink: the run stopped while waiting for the broker at %s to accept the "
            "connection; nothing is sent to it",
            self.settings.who(),
        )

    def _wait_for_answer(self, deadline: float) -> bool:
        """Waits until `deadline` for the broker's answer to the login, or until the run's
        stop; whether it answered."""
        while True:
            remaining = deadline - time.monotonic()
            if self._answered.wait(max(0.0, min(POLL_S, remaining))):
                return True
            if remaining <= 0 or (self._stop is not None and self._stop.is_set()):
                return False

    def _give_up_connecting(self) -> bool:
        """Whether a TCP connection under way (paho's network thread's, or the first) is to
        end now: the connection is closing, or the run stopped before the broker first
        answered."""
        if self._closing:
            return True
        return not self._answered.is_set() and self._stop is not None and self._stop.is_set()

    def _send(self, message: Message) -> bool:
        """Hand a message to paho while connected; False when it must wait in the buffer
        (the connection was lost a moment ago). Called holding the lock."""
        info = self._client.publish(message.topic, message.payload, self.qos, message.retain)
        if info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN:
            if self.qos == 0:
                return False
            # paho keeps QoS 1 and 2 messages and sends them on reconnecting; this rc, which
            # it leaves as is, would have `is_published` raise even once they are delivered
            info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self.published += 1
        self._handed.add(info, packet_size(message.topic, message.payload, self.qos))
        self._too_large.sent(message.topic, message.payload)
        return True

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        if reason.is_failure:
            if not self._answered.is_set():
                self._refusal = str(reason)
                self._answered.set()
            else:
                log.warning("mqtt sink: %s refused the login: %s", self.settings.who(), reason)
            return
        self._socket_error = None
        self._disconnected.clear()
        self._connected_at = time.monotonic()
        with self._lock:
            self._drop_given_up(client)
            if self._closing:
                return
            # In this order: the pipeline online, the state, then what waited.
            if self._will_topic is not None:
                self._send(Message(self._will_topic, ONLINE.encode(), True))
            for message in self._outbox.states():
                self._send(message)
            for message in self._outbox.drain():
                self._send(message)
            self._connected.set()
            if self._ever_connected:
                self.reconnections += 1
                log.warning("mqtt sink: connected again to %s", self.settings.who())
            self._ever_connected = True
        self._answered.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: object,
    ) -> None:
        # Not holding `_lock`: paho may call this holding its lock on outgoing messages
        # (sending them again after a CONNACK), which a `_send` holding `_lock` waits for.
        was_connected = self._connected.is_set()
        self._connected.clear()
        self._disconnected.set()
        # paho closed the socket: a QoS 0 message it has not written is never sent
        # (paho sends again only QoS 1 and 2 ones)
        lost = self._handed.settle(unsent_lost=self.qos == 0)
        if was_connected and not self._closing:
            self._handed.note_taken()
            self._too_large.lost(client, time.monotonic() - self._connected_at)
            log.warning(
                "mqtt sink: lost the broker at %s (%s)%s; reconnecting, buffering up to %d "
                "messages meanwhile",
                self.settings.who(),
                why_lost(reason, self._socket_error, self.settings.keepalive_s),
                f", and with it {lost} messages not yet sent (QoS 0)" if lost else "",
                self.buffer_size,
            )

    def _drop_given_up(self, client: mqtt.Client) -> None:
        """Gives up the message the broker keeps dropping the connection for, if any
        (`TooLarge`), before paho sends it again, counting it in `oversized`: taken from
        paho with its copies, and no longer the state of its topic (sent again at every
        reconnection, ahead of what waited). Called holding `_lock`."""
        given_up = self._too_large.take(client)
        if given_up is None:
            return
        self._handed.forget(given_up.infos)
        self._outbox.given_up(given_up.topic, given_up.payload)
        log.warning(
            "mqtt sink: gave up on a message of %d bytes to %s: the broker closed the "
            "connection as it came, twice; larger than the broker takes? Set max_packet_kb "
            "to its limit",
            given_up.size,
            given_up.topic,
        )

    def _on_log(self, client: mqtt.Client, userdata: object, level: int, text: str) -> None:
        # paho tells a socket's error (the connection reset, a timeout) only in its log,
        # before it reports the connection lost
        if level == mqtt.MQTT_LOG_ERR and (match := SOCKET_ERROR.match(text)):
            self._socket_error = match["why"]
