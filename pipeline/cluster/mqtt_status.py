"""The run's own `<prefix>/status` on MQTT for a cluster run, said by the driver, and
`<prefix>/<camera>/status` of a camera lost with its shard.

Each shard's `mqtt` sink publishes its cameras and leaves `<prefix>/status` alone: were
every shard's connection to say it (and leave it as its last will), one shard finishing
its cameras or dying would mark the whole run `offline` while the others go on, and Home
Assistant would show every camera unavailable.
"""

from __future__ import annotations

import dataclasses
import threading
from typing import TYPE_CHECKING

from pipeline.config import MqttSinkConfig, PipelineConfig
from sinks.base import SinkError

if TYPE_CHECKING:
    from sinks.mqtt.connection import MqttConnection
    from sinks.mqtt.topics import Topics


class PipelineStatus:
    """`online` on `<prefix>/status` of each `mqtt` sink of `config` from now, `offline` at
    `close` or, as the last will, when the driver dies or loses the broker. Raises
    SinkError, as the sink would, when a broker cannot be reached; `stop` (the run's) ends
    the wait for one at once, as it does the sink's."""

    def __init__(self, config: PipelineConfig, stop: threading.Event | None = None) -> None:
        self._open: list[tuple[MqttConnection, Topics, float]] = []
        try:
            for sink in config.sinks:
                if isinstance(sink, MqttSinkConfig):
                    self._open.append((*_connect(sink, stop), sink.close_timeout_s))
        except SinkError:
            self.close()
            raise

    def camera_offline(self, camera_id: str) -> None:
        """`offline` on `<prefix>/<camera>/status`: a camera lost with its shard (which
        left it `online`) and not moved to another."""
        from sinks.mqtt.topics import OFFLINE

        for connection, topics, _ in self._open:
            connection.set_state(topics.camera_status(camera_id), OFFLINE.encode())

    def close(self) -> None:
        """`offline` on each, and the connections closed."""
        while self._open:
            connection, _, timeout_s = self._open.pop()
            connection.close(timeout_s)


def _connect(sink: MqttSinkConfig, stop: threading.Event | None) -> tuple[MqttConnection, Topics]:
    from sinks.mqtt.settings import paho_missing

    if (missing := paho_missing()) is not None:
        raise SinkError(f"mqtt sink: {missing}")
    from sinks.mqtt.connection import MqttConnection
    from sinks.mqtt.topics import Topics

    settings = dataclasses.replace(sink.broker(), client_id=f"{sink.client_id}-driver")
    topics = Topics(sink.prefix)
    connection = MqttConnection(
        settings, topics.client_status, qos=sink.qos, buffer_size=sink.buffer_size, stop=stop
    )
    return connection, topics
