"""A paho client for the broker of `BrokerSettings`, its socket opened, and the one line
that says why the login failed; `probe_broker` logs in and out (for `validate`)."""

from __future__ import annotations

import socket
import ssl
import threading
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from sinks.base import SinkError
from sinks.mqtt.settings import BrokerSettings
from sinks.mqtt.sockets import Cancelled, connect_tcp, tls_handshake


def _never() -> bool:
    return False


class CancellableClient(mqtt.Client):
    """paho's client, whose TCP connections (the first and each reconnection) are
    `connect_tcp`'s and whose TLS handshakes are `tls_handshake`'s: the connection and
    its handshake given up within its `connect_timeout`, together, and at once when
    `cancelled()`. paho has no call for it: `_create_socket_connection` and
    `_ssl_wrap_socket` are where every paho 2.x makes them; through a SOCKS or HTTP proxy
    the TCP connection is paho's own."""

    cancelled: Callable[[], bool] = staticmethod(_never)
    _connect_deadline = 0.0
    """When the connection under way is given up (`connect_timeout` after it began)."""

    def _create_socket_connection(self) -> socket.socket:
        self._connect_deadline = time.monotonic() + self._connect_timeout
        if self._get_proxy():
            return super()._create_socket_connection()
        source = (self._bind_address, self._bind_port)
        return connect_tcp(
            self._host,
            self._port,
            self._connect_timeout,
            self.cancelled,
            source,
            self._connect_deadline,
        )

    def _ssl_wrap_socket(self, tcp_sock: socket.socket) -> ssl.SSLSocket:
        context = self._ssl_context
        if context is None or not context.check_hostname:  # paho checks the name itself
            return super()._ssl_wrap_socket(tcp_sock)
        tls = context.wrap_socket(
            tcp_sock, server_hostname=self._host, do_handshake_on_connect=False
        )
        try:
            tls_handshake(tls, self._connect_deadline, self._connect_timeout, self.cancelled)
        except BaseException:
            tls.close()
            raise
        return tls


def probe_broker(settings: BrokerSettings) -> None:
    """Log in to the broker and out again, publishing nothing; SinkError as
    `MqttConnection` raises it when that fails. Uses its own client id, so that a run
    using `settings.client_id` is not disconnected."""
    client = new_client(settings, f"{settings.client_id[:100]}-check")
    answered = threading.Event()
    refusals: list[str] = []

    def on_connect(
        client: mqtt.Client, userdata: object, flags: object, reason: ReasonCode, props: object
    ) -> None:
        if reason.is_failure:
            refusals.append(str(reason))
        answered.set()

    client.on_connect = on_connect
    deadline = time.monotonic() + settings.connect_timeout_s  # the connection and the login
    open_socket(client, settings)
    client.loop_start()
    try:
        if not answered.wait(max(0.0, deadline - time.monotonic())) or refusals:
            raise login_failure(settings, refusals[0] if refusals else None)
    finally:
        client.disconnect()
        client.loop_stop()


def new_client(
    settings: BrokerSettings, client_id: str, cancelled: Callable[[], bool] = _never
) -> CancellableClient:
    """A paho client with the credentials and TLS of `settings`, not connected; a connection
    under way (TCP) ends when `cancelled()`."""
    client = CancellableClient(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=mqtt.MQTTv311,
    )
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.address.tls:
        try:
            client.tls_set(ca_certs=None if settings.ca_file is None else str(settings.ca_file))
        except (OSError, ValueError) as exc:
            raise SinkError(f"mqtt sink: TLS for {settings.address}: {exc}") from exc
    client.connect_timeout = settings.connect_timeout_s
    client.cancelled = cancelled
    return client


def open_socket(client: mqtt.Client, settings: BrokerSettings) -> None:
    """Open the connection's socket (TCP, TLS); the login's answer comes to on_connect.
    Cancelled, as it is, when the client's wait was to end."""
    address = settings.address
    try:
        client.connect(address.host, address.port, keepalive=settings.keepalive_s)
    except Cancelled:
        raise
    except OSError as exc:  # refused, unknown host, no answer, TLS handshake (ssl.SSLError)
        why = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise SinkError(f"mqtt sink: cannot reach the broker at {settings.who()}: {why}") from exc


def login_failure(settings: BrokerSettings, refusal: str | None) -> SinkError:
    """The one-line error of a login refused (`refusal`: the broker's reason) or unanswered."""
    if refusal is None:
        return SinkError(
            f"mqtt sink: the broker at {settings.who()} did not accept the connection within "
            f"{settings.connect_timeout_s:g} s"
        )
    hint = "; check `username` and the password in `password_env`" if settings.username else ""
    return SinkError(
        f"mqtt sink: the broker at {settings.who()} refused the login: {refusal}{hint}"
    )
