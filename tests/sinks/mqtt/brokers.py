"""Brokers for the MQTT tests: the machine's Mosquitto (or, where none runs, one of the
test session's own), a private one a test may kill and restart, and a client that records
what arrives."""

from __future__ import annotations

import contextlib
import getpass
import shutil
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port

paho = pytest.importorskip("paho.mqtt.client", reason="paho-mqtt is not installed")
from paho.mqtt.client import MQTTMessage  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

SHARED = ("127.0.0.1", 1883)
WAIT_S = 10.0


def reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def unique_prefix() -> str:
    """A topic prefix no other test (or run) uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


class PrivateMosquitto:
    """A `mosquitto` of the test's own on a free port, with persistence in `folder` (so a
    restart keeps retained messages and sessions, as a real deployment's does), anonymous
    or with a password file, and the configuration lines `options`. `kill()` is SIGKILL: the
    broker vanishes as in a crash."""

    def __init__(
        self,
        folder: Path,
        *,
        users: dict[str, str] | None = None,
        tls: bool = False,
        options: tuple[str, ...] = (),
    ) -> None:
        binary = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if binary is None:
            pytest.skip("mosquitto is not installed")
        self.binary = binary
        self.port = free_port()
        self.folder = folder
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {folder}/",
            "autosave_interval 1",
            *options,
        ]
        self.tls = tls
        if tls:
            self.ca_file = make_certificates(folder)
            lines += [
                f"cafile {self.ca_file}",
                f"certfile {folder / 'server.pem'}",
                f"keyfile {folder / 'server.key'}",
            ]
        if getpass.getuser() == "root":
            lines.append("user root")  # else it drops to `mosquitto`, who cannot write here
        if users:
            passwd = shutil.which("mosquitto_passwd")
            if passwd is None:
                pytest.skip("mosquitto_passwd is not installed")
            password_file = folder / "passwords"
            for user, password in users.items():
                create = ["-c"] if not password_file.exists() else []
                subprocess.run(
                    [passwd, "-b", *create, str(password_file), user, password],
                    check=True,
                    capture_output=True,
                    timeout=WAIT_S,
                )
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        self.config = folder / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = (self.folder / "mosquitto.log").open("ab")
        self._process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + WAIT_S
        while not reachable("127.0.0.1", self.port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private mosquitto did not start: {self.log()}")
            time.sleep(0.05)

    def kill(self) -> None:
        if self._process is not None:
            self._process.kill()
            self._process.wait(WAIT_S)
            self._process = None

    def log(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""


def make_certificates(folder: Path) -> Path:
    """A CA (`ca.pem`, returned) and a certificate it signed for 127.0.0.1 (`server.pem`,
    `server.key`) in `folder`, made with openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run(
            [openssl, *args], cwd=folder, check=True, capture_output=True, timeout=WAIT_S
        )

    run(
        "req",
        "-x509",
        *ec,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
    )
    run("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (folder / "san.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "san.cnf",
    )
    return folder / "ca.pem"


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool

    @property
    def text(self) -> str:
        return self.payload.decode()


class Listener:
    """A client subscribed to `topics` (QoS 1), recording every message in `messages`.

    With `session` it keeps a persistent session on the broker under that client id, so
    that what is published while it is reconnecting is kept for it. `disconnected` is set
    when it loses the broker: paho has then read every message the broker had sent it."""

    def __init__(
        self, host: str, port: int, topics: list[str], *, session: str | None = None
    ) -> None:
        self.messages: list[Received] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.disconnected = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=session or f"listener-{uuid.uuid4().hex[:10]}",
            clean_session=session is None,
        )
        self._client.reconnect_delay_set(1, 1)
        self._topics = topics

        def on_connect(
            client: object, userdata: object, flags: object, rc: object, p: object
        ) -> None:
            self._client.subscribe([(t, 1) for t in self._topics])

        def on_subscribe(
            client: object, userdata: object, mid: object, rcs: object, p: object
        ) -> None:
            self._subscribed.set()

        def on_message(client: object, userdata: object, message: MQTTMessage) -> None:
            with self._lock:
                self.messages.append(
                    Received(message.topic, bytes(message.payload), message.retain)
                )

        def on_disconnect(client: object, userdata: object, *args: object) -> None:
            self.disconnected.set()

        self._client.on_connect = on_connect
        self._client.on_disconnect = on_disconnect
        self._client.on_subscribe = on_subscribe
        self._client.on_message = on_message
        self._client.connect(host, port)
        self._client.loop_start()
        assert self._subscribed.wait(WAIT_S), "the listener could not subscribe"

    def wait_for(
        self, condition: Callable[[list[Received]], bool], timeout: float = WAIT_S
    ) -> list[Received]:
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                got = list(self.messages)
            if condition(got) or time.monotonic() > deadline:
                return got
            time.sleep(0.02)

    def latest(self, topic: str) -> str | None:
        with self._lock:
            found = [m.text for m in self.messages if m.topic == topic]
        return found[-1] if found else None

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def clear_retained(host: str, port: int, topics: list[str]) -> None:
    """Remove retained messages left by a test on a broker that persists them."""
    client = paho.Client(CallbackAPIVersion.VERSION2)
    client.connect(host, port)
    client.loop_start()
    infos = [client.publish(t, b"", qos=1, retain=True) for t in topics]
    for info in infos:
        info.wait_for_publish(WAIT_S)
    client.disconnect()
    client.loop_stop()


@contextlib.contextmanager
def machine_broker(folder: Path) -> Iterator[tuple[str, int]]:
    """(host, port) of the machine's Mosquitto at 127.0.0.1:1883, or, where none runs, of a
    private one started in `folder` for as long as the context lasts."""
    if reachable(*SHARED):
        yield SHARED
        return
    private = PrivateMosquitto(folder)
    private.start()
    try:
        yield ("127.0.0.1", private.port)
    finally:
        private.kill()


@contextlib.contextmanager
def listening(
    broker: tuple[str, int], topics: Callable[[str], list[str]]
) -> Iterator[tuple[str, Listener]]:
    """(prefix, listener of `topics(prefix)`) for a prefix of the test's own on `broker`;
    the retained messages the test left are removed after (the broker may persist them)."""
    prefix = unique_prefix()
    listener = Listener(*broker, topics(prefix))
    try:
        yield prefix, listener
    finally:
        listener.close()
        clear_retained(*broker, sorted({m.topic for m in listener.messages}))


class SilentBroker:
    """A TCP server on a free port of 127.0.0.1 that takes connections and reads what comes;
    with `accept_login` it answers the first packet (the client's CONNECT) with a CONNACK
    that accepts it, then says nothing more (no PINGRESP); without, it never answers. With
    `reset_after_s` too, it then resets the connection (TCP RST) that long after the login."""

    def __init__(self, *, accept_login: bool = False, reset_after_s: float | None = None) -> None:
        self._accept_login = accept_login
        self._reset_after_s = reset_after_s
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._clients: list[socket.socket] = []
        self.connected = threading.Event()
        """Set once a client has connected."""
        self._closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            self._clients.append(client)
            self.connected.set()
            threading.Thread(target=self._read, args=(client,), daemon=True).start()

    def _read(self, client: socket.socket) -> None:
        answered = not self._accept_login
        with contextlib.suppress(OSError):
            while client.recv(65536):
                if not answered:
                    client.sendall(b"\x20\x02\x00\x00")  # CONNACK: session absent, accepted
                    answered = True
                    if self._reset_after_s is not None:
                        time.sleep(self._reset_after_s)
                        # no lingering: close sends RST, not FIN
                        client.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                        client.close()
                        return

    def close(self) -> None:
        self._closed = True
        self._server.close()
        for client in self._clients:
            with contextlib.suppress(OSError):
                client.close()


class BlackHole:
    """A port of 127.0.0.1 (`port`, free, or one given) where a TCP connection is never
    answered, as on a host behind a firewall that drops it: Linux drops the SYN of a
    connection to a listening socket whose accept queue is full, and this one's (listen(0))
    is filled at once and never accepted from."""

    def __init__(self, port: int = 0) -> None:
        self._server = socket.socket()
        self._server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._server.bind(("127.0.0.1", port))
        self._server.listen(0)
        self.port = int(self._server.getsockname()[1])
        self._fillers: list[socket.socket] = []
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", self.port))
            self._fillers.append(filler)
        probe = socket.socket()
        probe.settimeout(0.3)
        try:
            with contextlib.suppress(TimeoutError):
                probe.connect(("127.0.0.1", self.port))
                pytest.skip("this system answers a connection to a full accept queue")
        finally:
            probe.close()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def close(self) -> None:
        for sock in [*self._fillers, self._server]:
            sock.close()


class Relay:
    """A TCP relay on a free port of 127.0.0.1 to the broker at `port`, standing for the
    network between the sink and its broker. While `holding`, what a client sends after its
    first packet (the CONNECT) is dropped: the broker answers the login and never gets the
    rest, as from a network that stalls. `cut()` closes every connection through it, as a
    broker that restarts or a network that resets them does."""

    def __init__(self, port: int) -> None:
        self._target = ("127.0.0.1", port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self.holding = False
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            broker = socket.create_connection(self._target)
            with self._lock:
                self._open += [client, broker]
            threading.Thread(target=self._pump, args=(client, broker, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(broker, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        first = True
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if not (from_client and self.holding and not first):
                    target.sendall(data)
                first = False
        for sock in (source, target):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        with self._lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def close(self) -> None:
        self._server.close()
        self.cut()
