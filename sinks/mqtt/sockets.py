"""The TCP connection to the broker and its TLS handshake, made in short steps: a host that
never answers (a firewall that drops the connection, a host that is down), whose name is not
found in time (a DNS server that does not answer) or that takes the connection and never
answers the handshake is given up within the timeout, the name, all its addresses and the
handshake together, and at once when the wait is to end (the run stopped, the connection
closing). The system's own calls wait for their retries (about 2 min for a connection on
Linux), and a blocking handshake for its socket's timeout, and look at nothing meanwhile."""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

_AddressInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]
"""One of `socket.getaddrinfo`'s answers."""

POLL_S = 0.05
"""How often a wait for the broker (a connection under way, the login's answer) looks at
whether to end."""
_UNDER_WAY = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY}


class NoAnswer(TimeoutError):
    """The host did not answer the connection, or the DNS its name, within the timeout;
    in words for the user (`connect_timeout_s`)."""


class Cancelled(OSError):
    """The connection was given up before it was made: its wait was to end."""


def connect_tcp(
    host: str,
    port: int,
    timeout_s: float,
    cancelled: Callable[[], bool],
    source: tuple[str, int] | None = None,
    deadline: float | None = None,
) -> socket.socket:
    """A TCP connection to `host`:`port` (each of its addresses in turn), with `timeout_s`
    as its timeout, as `socket.create_connection` returns it. NoAnswer when the name and
    the addresses were not answered within `timeout_s`, all together; Cancelled as soon as
    `cancelled()`; OSError for the rest (refused, unknown host: the last address's error).
    `deadline` (monotonic), when given, is when `timeout_s` ends: one shared with a TLS
    handshake that follows."""
    if deadline is None:
        deadline = time.monotonic() + timeout_s
    error: OSError | None = None
    for family, kind, proto, _, address in _addresses(host, port, deadline, timeout_s, cancelled):
        sock = socket.socket(family, kind, proto)
        try:
            if source is not None and (source[0] or source[1]):
                sock.bind(source)
            _connect(sock, address, deadline, timeout_s, cancelled)
        except (NoAnswer, Cancelled):
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            error = exc
            continue
        sock.settimeout(timeout_s)
        return sock
    raise error or OSError(f"no address for {host}")


def _addresses(
    host: str, port: int, deadline: float, timeout_s: float, cancelled: Callable[[], bool]
) -> Sequence[_AddressInfo]:
    """`host`'s addresses (`socket.getaddrinfo`), looked up in a thread of its own, which is
    left to end by itself when the wait ends first."""
    found: list[Sequence[_AddressInfo] | OSError] = []
    done = threading.Event()

    def look_up() -> None:
        try:
            found.append(socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM))
        except OSError as exc:
            found.append(exc)
        finally:
            done.set()

    threading.Thread(target=look_up, name=f"mqtt-dns-{host}", daemon=True).start()
    while not done.wait(max(0.0, min(POLL_S, deadline - time.monotonic()))):
        if cancelled():
            raise Cancelled("the connection was given up")
        if time.monotonic() >= deadline:
            raise NoAnswer(
                f"its name not found within {timeout_s:g} s (connect_timeout_s): a DNS server "
                "that does not answer?"
            )
    result = found[0]
    if isinstance(result, OSError):
        raise result
    return result


def _connect(
    sock: socket.socket,
    address: tuple[str, int] | tuple[str, int, int, int] | tuple[int, bytes],
    deadline: float,
    timeout_s: float,
    cancelled: Callable[[], bool],
) -> None:
    sock.setblocking(False)
    code = sock.connect_ex(address)
    if code not in _UNDER_WAY:
        raise OSError(code, os.strerror(code))
    if code == 0:
        return
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_WRITE)
        _ready(
            selector,
            deadline,
            cancelled,
            "the connection was given up",
            f"no answer within {timeout_s:g} s (connect_timeout_s): a firewall dropping the "
            "connection, or the host down?",
        )
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        raise OSError(code, os.strerror(code))


def tls_handshake(
    sock: ssl.SSLSocket, deadline: float, timeout_s: float, cancelled: Callable[[], bool]
) -> None:
    """`sock`'s TLS handshake (wrapped with `do_handshake_on_connect=False`), waited for in
    steps of POLL_S; `sock` is left non-blocking. NoAnswer when it is not done by `deadline`
    (the end of `timeout_s`, the connection's); Cancelled as soon as `cancelled()`;
    ssl.SSLError or OSError when it fails (a certificate refused, the connection closed)."""
    sock.setblocking(False)
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while True:
            try:
                sock.do_handshake()
                return
            except ssl.SSLWantReadError:
                selector.modify(sock, selectors.EVENT_READ)
            except ssl.SSLWantWriteError:
                selector.modify(sock, selectors.EVENT_WRITE)
            _ready(
                selector,
                deadline,
                cancelled,
                "the TLS handshake was given up",
                f"the TLS handshake not answered within {timeout_s:g} s (connect_timeout_s): "
                "a port that does not serve TLS?",
            )


def _ready(
    selector: selectors.BaseSelector,
    deadline: float,
    cancelled: Callable[[], bool],
    given_up: str,
    no_answer: str,
) -> None:
    """Returns once `selector`'s socket is ready, looking every POLL_S; Cancelled
    (`given_up`) as soon as `cancelled()`, NoAnswer (`no_answer`) at `deadline`."""
    while True:
        if cancelled():
            raise Cancelled(given_up)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise NoAnswer(no_answer)
        if selector.select(min(POLL_S, remaining)):
            return
