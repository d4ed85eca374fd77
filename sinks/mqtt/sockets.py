"""The TCP connection to the broker, made in short steps: a host that never answers (a
firewall that drops the connection, a host that is down) is given up within the timeout,
all its addresses together, and at once when the wait is to end (the run stopped, the
connection closing). The system's own connect waits for its SYN retries (about 2 min on
Linux) and looks at nothing meanwhile."""

from __future__ import annotations

import errno
import os
import selectors
import socket
import time
from collections.abc import Callable

POLL_S = 0.05
"""How often a connection under way looks at whether to end (`cancelled`)."""
_UNDER_WAY = {0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY}


class NoAnswer(TimeoutError):
    """The host did not answer the connection within the timeout."""


class Cancelled(OSError):
    """The connection was given up before it was made: its wait was to end."""


def connect_tcp(
    host: str,
    port: int,
    timeout_s: float,
    cancelled: Callable[[], bool],
    source: tuple[str, int] | None = None,
) -> socket.socket:
    """A TCP connection to `host`:`port` (each of its addresses in turn), with `timeout_s`
    as its timeout, as `socket.create_connection` returns it. NoAnswer when none answered
    within `timeout_s`, all together; Cancelled as soon as `cancelled()`; OSError for the
    rest (refused, unknown host: the last address's error). Finding the addresses (DNS)
    is the system's and not bounded here."""
    deadline = time.monotonic() + timeout_s
    error: OSError | None = None
    for family, kind, proto, _, address in socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM):
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
        while True:
            if cancelled():
                raise Cancelled("the connection was given up")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NoAnswer(f"no answer within {timeout_s:g} s")
            if selector.select(min(POLL_S, remaining)):
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, os.strerror(code))
                return
