"""Serving the app with uvicorn: in a thread beside a run, or in the foreground (`serve`)."""

from __future__ import annotations

import logging
import socket
import threading

import uvicorn
from fastapi import FastAPI

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0


class ServerError(RuntimeError):
    """The HTTP server cannot start (its port taken, say); the message is one line."""


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; ServerError naming them when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(address)
            sock.listen(128)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise ServerError(
            f"http server: cannot listen on {host}:{port}: {exc.strerror or exc}"
        ) from exc
    return sock


class HttpServer:
    """`app` served on `sock` by uvicorn in a daemon thread until `close`."""

    def __init__(self, app: FastAPI, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        host = sock.getsockname()[0]
        self.url = f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._run, name="http-server", daemon=True)

    def start(self) -> HttpServer:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._server.run(sockets=[self.sock])
        except Exception:
            log.exception("http server stopped")

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(STOP_TIMEOUT_S)
        self.sock.close()


def serve_forever(app: FastAPI, sock: socket.socket) -> None:
    """Serves until Ctrl-C (uvicorn's own signal handling)."""
    config = uvicorn.Config(app, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
