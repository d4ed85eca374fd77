"""Serving the app with uvicorn: in a thread beside a run, or in the foreground (`serve`).

Every connection is bounded in time (`BoundedH11`): a client must send a whole request
within `HEADER_TIMEOUT_S` and take what it is sent within `SEND_TIMEOUT_S`, or it is
disconnected; uvicorn itself bounds neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from pipeline.web import ServerError

__all__ = ["HttpServer", "ServerError", "bind", "serve_forever", "url_of"]

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0
"""How long `close` waits for the server's thread."""
START_TIMEOUT_S = 10.0
"""How long `HttpServer.start` waits for uvicorn to serve before it gives up."""
CLOSE_GRACE_S = 1.0
"""When the server stops, a response still being sent after this long (a stream to a
client that reads nothing, say) is cut off, so that stopping never waits on a client."""
HEADER_TIMEOUT_S = 10.0
"""A client must send a whole request (line and headers) within this long of connecting,
or of the end of its previous response; else it is disconnected."""
SEND_TIMEOUT_S = 10.0
"""A client that takes none of the data sent to it for this long is disconnected."""
LISTEN_BACKLOG = 128
"""Connections the system queues for the server to accept."""
MAX_CONNECTIONS = 512
"""Connections (and requests in progress) served at once; uvicorn answers more with 503."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; ServerError naming them when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            # SO_REUSEADDR lets a new run listen while old connections linger in
            # TIME_WAIT; on Linux it never lets two servers listen on one port.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        hint = (
            "another program (or pipeline) uses that port; set another `port`"
            if exc.errno == errno.EADDRINUSE
            else "check the `host` (an address of this machine, e.g. 127.0.0.1)"
        )
        raise ServerError(
            f"http server: cannot listen on {host}:{port}: {exc.strerror or exc}; {hint}"
        ) from exc
    return sock


def url_of(sock: socket.socket) -> str:
    """The http:// address of a listening socket, with the port actually bound."""
    host, port = sock.getsockname()[:2]
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/"


class BoundedH11(H11Protocol):
    """uvicorn's HTTP/1.1 connection with deadlines: on the request's head while one is
    awaited, on each send the client does not take, and on the response in progress once
    the server stops. A client gone is one line at info level, never a traceback."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._start_clock(HEADER_TIMEOUT_S, "sent no whole request")

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_clock()
        if exc is not None:
            who = self.client[0] if self.client else "a client"
            log.info("http server: %s: connection reset or lost: %s", who, exc)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:  # the request's head is in
            self._stop_clock()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._start_clock(HEADER_TIMEOUT_S, "sent no whole request")

    def pause_writing(self) -> None:
        super().pause_writing()
        self._start_clock(SEND_TIMEOUT_S, "took nothing sent to it")

    def resume_writing(self) -> None:
        super().resume_writing()
        self._stop_clock()

    def shutdown(self) -> None:
        super().shutdown()
        if not self.transport.is_closing():
            self._start_clock(CLOSE_GRACE_S, "was still being answered when the server stopped")

    def _start_clock(self, seconds: float, why: str) -> None:
        self._stop_clock()
        self._deadline = self.loop.call_later(seconds, self._overdue, seconds, why)

    def _stop_clock(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _overdue(self, seconds: float, why: str) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            who = self.client[0] if self.client else "a client"
            log.info("http server: %s %s within %.0f s: disconnected", who, why, seconds)
            self.transport.abort()


_CANNOT_SERVE = "http server: cannot serve on the bound socket: "


def _reason(exc: BaseException) -> str:
    """What went wrong, in one line: an OSError's own words, else its kind too."""
    text = str(exc).replace("\n", " ")
    return text if isinstance(exc, OSError) else f"{type(exc).__name__}: {text}"


def _config(app: ASGIApp, **options: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        http=BoundedH11,
        log_level="warning",
        access_log=False,  # a request's `?token=`: only AccessMiddleware logs it, masked
        lifespan="off",
        limit_concurrency=MAX_CONNECTIONS,
        **options,
    )


class HttpServer:
    """`app` served on `sock` by uvicorn in a daemon thread until `close`."""

    def __init__(self, app: ASGIApp, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.url = url_of(sock)
        self.error: str | None = None
        """Why the server stopped serving before `close` (one line, logged when it did)."""
        self._server = uvicorn.Server(_config(app))
        self._thread = threading.Thread(target=self._run, name="http-server", daemon=True)
        self._closing = False

    def start(self) -> HttpServer:
        """Returns once uvicorn serves; ServerError (the socket closed) when it cannot."""
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.close()
                raise ServerError(
                    self.error or f"http server: not serving after {START_TIMEOUT_S:.0f} s"
                )
            self._thread.join(0.01)
        return self

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self.sock])
            why = "uvicorn stopped"
        except (Exception, SystemExit) as exc:  # SystemExit: uvicorn's own way to give up
            why = _reason(exc)
        if self._closing:
            return
        if self._server.started:
            self.error = f"http server failed: {why}; it serves nothing more in this run"
            log.error("%s", self.error)
        else:
            self.error = _CANNOT_SERVE + why

    def close(self) -> None:
        self._closing = True
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        self.sock.close()


class _StoppedByEvent(uvicorn.Server):
    """uvicorn's server in the foreground, stopping when `stop` is set; signals are left to
    the command's own handlers (`pipeline.cli.run.stop_on_signals`), which set it."""

    def __init__(self, config: uvicorn.Config, stop: threading.Event) -> None:
        super().__init__(config)
        self._stop = stop

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def on_tick(self, counter: int) -> bool:
        return await super().on_tick(counter) or self._stop.is_set()


def serve_forever(app: ASGIApp, sock: socket.socket, stop: threading.Event) -> None:
    """Serves on `sock` until `stop` is set (checked ten times a second), then closes;
    ServerError when uvicorn cannot start serving on it."""
    server = _StoppedByEvent(_config(app), stop)
    try:
        server.run(sockets=[sock])
    except (OSError, ValueError) as exc:
        raise ServerError(_CANNOT_SERVE + _reason(exc)) from exc
    if not server.started:
        raise ServerError("http server: uvicorn stopped before it started serving")
