"""Where the broker is and how to log in; importing this module does not import paho
(`paho_missing` does, to tell whether it is there)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.urls import MAX_PORT
from sinks.mqtt.packets import MAX_PACKET_BYTES

INSTALL_HINT = "pip install 'ssd-pipeline[mqtt]' (or pip install paho-mqtt)"
"""What to install for the mqtt sink."""
DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
"""The broker's port when the URL names none: MQTT's registered ports, plain and TLS."""
_URL = re.compile(
    r"^(?P<scheme>mqtts?)://(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::(?P<port>\d{1,5}))?/?$"
)


def paho_missing() -> str | None:
    """Why the mqtt sink cannot run here (paho-mqtt not installed), or None."""
    try:
        import paho.mqtt.client  # noqa: F401
    except ImportError:
        return f"the mqtt sink needs paho-mqtt, which is not installed: {INSTALL_HINT}"
    return None


@dataclass(frozen=True)
class BrokerAddress:
    """A broker URL taken apart: `mqtt://HOST[:PORT]`, or `mqtts://` for TLS."""

    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        """The address of `url`; ValueError (not quoting the URL) when it is not one."""
        if "@" in url:
            raise ValueError(
                "must not hold credentials: put the user in `username` and the password in "
                "the environment variable named by `password_env`"
            )
        match = _URL.match(url)
        if match is None:
            raise ValueError("expected mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS")
        scheme = match["scheme"]
        port = int(match["port"]) if match["port"] else DEFAULT_PORTS[scheme]
        if not 1 <= port <= MAX_PORT:
            raise ValueError(f"port {port} is not in 1..{MAX_PORT}")
        return cls(match["host"].strip("[]"), port, scheme == "mqtts")

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{host}:{self.port}"


@dataclass(frozen=True)
class BrokerSettings:
    """How to reach and log in to the broker. The password is never shown (`repr` hides it)."""

    address: BrokerAddress
    client_id: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None
    """CA certificates to check the broker's TLS certificate with (None: the system's)."""
    keepalive_s: int = 30
    connect_timeout_s: float = 10.0
    reconnect_min_delay_s: float = 1.0
    reconnect_max_delay_s: float = 60.0
    max_packet_bytes: int = MAX_PACKET_BYTES
    """The largest packet the broker takes: a message in a larger one is dropped, unsent."""

    def who(self) -> str:
        """The broker and user, for messages: never the password."""
        user = f" as {self.username!r}" if self.username else ""
        return f"{self.address}{user}"
