"""A PostgreSQL server that takes the connection and never answers, for tests of a stop
while the sql sink waits for it."""

from __future__ import annotations

import socket
import threading


class SilentPostgres:
    """Listens on a free 127.0.0.1 port, takes connections and sends nothing; `connected` is
    set once it took one. `close` ends them: a connect still waiting fails at once."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._taken: list[socket.socket] = []
        self.connected = threading.Event()
        port = self._listener.getsockname()[1]
        self.url = f"postgresql://test@127.0.0.1:{port}/test?connect_timeout=600"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        try:
            while True:
                self._taken.append(self._listener.accept()[0])
                self.connected.set()
        except OSError:
            pass  # closed

    def close(self) -> None:
        for conn in self._taken:
            conn.close()
        self._listener.close()
