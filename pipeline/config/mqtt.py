"""The `mqtt` sink's entry of `sinks:` (docs/integrations.md)."""

from __future__ import annotations

import os
import uuid
from typing import Literal

from pydantic import Field, field_validator, model_validator

from pipeline.config.base import (
    BYTES_PER_KB,
    SINK_QUEUE_MB,
    FsPath,
    SinkQueueMb,
    Strict,
    kb_bytes,
)
from sinks.event_bus.schema import EVENT_TYPES
from sinks.mqtt.packets import MAX_PACKET_BYTES
from sinks.mqtt.settings import BrokerAddress, BrokerSettings

TOPIC_PATH = r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$"
"""A topic prefix: levels of letters, digits, `_ . -` (no wildcard, no empty level)."""


class MqttSinkConfig(Strict):
    type: Literal["mqtt"] = Field(
        description="Events and per-camera state on an MQTT broker (Home Assistant, Node-RED)."
    )
    url: str = Field(
        "mqtt://127.0.0.1:1883",
        min_length=1,
        max_length=300,
        description="The broker: mqtt://HOST:PORT, or mqtts://HOST:PORT for TLS (ports 1883 "
        "and 8883 when absent). No credentials here: see username and password_env.",
    )
    prefix: str = Field(
        "ssd-pipeline",
        max_length=200,
        pattern=TOPIC_PATH,
        description="First level(s) of every topic: <prefix>/<camera>/<event type>.",
    )
    qos: Literal[0, 1, 2] = Field(
        1,
        description="MQTT quality of service of every message: 0 at most once, 1 at least "
        "once (kept and sent again across a reconnection), 2 exactly once.",
    )
    events: tuple[str, ...] = Field(
        EVENT_TYPES,
        max_length=len(EVENT_TYPES),
        description="Event types published (all by default): " + ", ".join(EVENT_TYPES) + ".",
    )
    retain_events: tuple[str, ...] = Field(
        (),
        max_length=len(EVENT_TYPES),
        description="Event types the broker keeps the latest of per topic (retained), for "
        "clients that connect later. Status and counts are always retained.",
    )
    count_labels: tuple[str, ...] | None = Field(
        None,
        max_length=1000,
        description="Labels whose count in the latest frame is published per camera, from "
        "the start (e.g. [person, car]); none: every label seen, from its first box.",
    )
    snapshots: bool = Field(
        True,
        description="With a snapshots sink: each camera's latest snapshot (the best "
        "detection of the track that ended last) as a retained JPEG at "
        "<prefix>/<camera>/snapshot, and an image in Home Assistant. No effect without one.",
    )
    client_id: str = Field(
        default_factory=lambda: f"ssd-pipeline-{uuid.uuid4().hex[:10]}",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9_\-]+$",
        description="MQTT client id, unique on the broker (default: ssd-pipeline- and a "
        "random part); brokers must take 23 characters, most take more.",
    )
    username: str | None = Field(
        None, min_length=1, max_length=256, description="User to log in as (none: anonymous)."
    )
    password_env: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        max_length=256,
        description="Name of the environment variable holding the password (with username). "
        "The password is never shown.",
    )
    tls_ca_file: FsPath | None = Field(
        None,
        description="CA certificates (PEM) the broker's certificate is checked with, for "
        "mqtts:// (none: the system's).",
    )
    buffer_size: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Messages kept while the broker is away; beyond, the oldest are dropped "
        "and counted in the run summary.",
    )
    max_packet_kb: int = Field(
        8192,
        ge=1,
        le=MAX_PACKET_BYTES // BYTES_PER_KB,
        description="Largest message the sink sends, in kB (thousands of bytes, as every "
        "size in the config), its topic and headers included: set it to the broker's limit "
        "(Mosquitto's max_packet_size; none by default) or below. A larger message (a "
        "snapshot, say) is dropped and counted, as a broker drops a client that sends one, "
        "again at each reconnection.",
    )
    keepalive_s: int = Field(
        30,
        ge=5,
        le=3600,
        description="Seconds between keep-alive pings; a broker gone "
        "silent is noticed within 1.5 times this.",
    )
    connect_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="Longest wait for the broker at the start (the connection and the "
        "login together), and for each reconnection's connection.",
    )
    reconnect_max_delay_s: float = Field(
        60.0,
        ge=1,
        le=3600,
        description="Longest wait between reconnection attempts (from 1 s, doubling).",
    )
    close_timeout_s: float = Field(
        10.0,
        ge=0,
        le=3600,
        description="At the end, how long to wait for a broker that is away to deliver "
        "what is buffered.",
    )
    queue_size: int = Field(256, ge=1, le=100_000, description="Frames buffered for the sink.")
    queue_mb: SinkQueueMb = SINK_QUEUE_MB
    homeassistant: bool = Field(
        False,
        description="Announce each camera to Home Assistant (MQTT discovery): a device with "
        "a status sensor, a count sensor per label, zone and line direction, and the "
        "snapshot image.",
    )
    discovery_prefix: str = Field(
        "homeassistant",
        max_length=200,
        pattern=TOPIC_PATH,
        description="Home Assistant's discovery prefix (its MQTT integration's setting).",
    )

    @field_validator("url")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        BrokerAddress.parse(value)  # its errors never quote the URL (it may hold a password)
        return value

    @field_validator("events", "retain_events")
    @classmethod
    def _event_types(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in value if t not in EVENT_TYPES]
        if unknown:
            raise ValueError(
                f"unknown event type {unknown[0]!r}; the types are {', '.join(EVENT_TYPES)}"
            )
        return tuple(dict.fromkeys(value))

    @model_validator(mode="after")
    def _credentials_and_tls(self) -> MqttSinkConfig:
        if self.password_env is not None:
            if self.username is None:
                raise ValueError("password_env needs a username")
            if not os.environ.get(self.password_env):
                raise ValueError(
                    f"the environment variable {self.password_env} (password_env) is not set"
                )
        if self.tls_ca_file is not None:
            if not BrokerAddress.parse(self.url).tls:
                raise ValueError("tls_ca_file needs an mqtts:// url")
            if not self.tls_ca_file.expanduser().is_file():
                raise ValueError(f"tls_ca_file not found: {self.tls_ca_file}")
        return self

    def broker(self) -> BrokerSettings:
        """How to reach the broker, the password read from `password_env`."""
        password = None if self.password_env is None else os.environ.get(self.password_env)
        return BrokerSettings(
            address=BrokerAddress.parse(self.url),
            client_id=self.client_id,
            username=self.username,
            password=password,
            ca_file=None if self.tls_ca_file is None else self.tls_ca_file.expanduser(),
            keepalive_s=self.keepalive_s,
            connect_timeout_s=self.connect_timeout_s,
            reconnect_max_delay_s=self.reconnect_max_delay_s,
            max_packet_bytes=kb_bytes(self.max_packet_kb),
        )
