"""Home Assistant's MQTT discovery: the retained `config` messages that make each camera a
device with sensors, so that nothing is configured on Home Assistant's side.

Format: https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery, a message per
entity at `<discovery_prefix>/<component>/<node_id>/<object_id>/config`: sensors, and an
image (https://www.home-assistant.io/integrations/image.mqtt/: the JPEG bytes of a topic)
for the latest snapshot. Every entity is
available while the pipeline is connected (`<prefix>/status`); a count is also unavailable
while its camera is offline.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sinks.mqtt.topics import OFFLINE, ONLINE, Topics

_NOT_IN_ID = re.compile(r"[^A-Za-z0-9_\-]+")
PROJECT = "ssd-pipeline"


def hass_id(name: str) -> str:
    """`name` as a node or object id: Home Assistant allows letters, digits, `_` and `-`."""
    return _NOT_IN_ID.sub("_", name) or "_"


def _version() -> str:
    try:
        return version(PROJECT)
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Discovery:
    """Discovery messages for the topics under `topics`, under `discovery_prefix`."""

    topics: Topics
    discovery_prefix: str = "homeassistant"

    @property
    def node_id(self) -> str:
        return hass_id(self.topics.prefix)

    def camera_status(self, camera: str) -> tuple[str, bytes]:
        """(topic, payload) of the camera's status sensor: `online` or `offline`."""
        object_id = f"{hass_id(camera)}_status"
        config = {
            "name": "Status",
            "state_topic": self.topics.camera_status(camera),
            "device_class": "enum",
            "options": [ONLINE, OFFLINE],
            "icon": "mdi:cctv",
            "availability_topic": self.topics.client_status,
        }
        return self._message(camera, object_id, config)

    def count(self, camera: str, label: str) -> tuple[str, bytes]:
        """(topic, payload) of the sensor counting `label` in the camera's latest frame."""
        object_id = f"{hass_id(camera)}_{hass_id(label)}_count"
        config = {
            "name": f"{label[:1].upper()}{label[1:]} count",
            "state_topic": self.topics.count(camera, label),
            "state_class": "measurement",
            "icon": "mdi:account-multiple" if label == "person" else "mdi:counter",
            **self._while_camera_online(camera),
        }
        return self._message(camera, object_id, config)

    def zone_count(self, camera: str, zone: str) -> tuple[str, bytes]:
        """(topic, payload) of the sensor counting the tracks inside a zone of the camera."""
        object_id = f"{hass_id(camera)}_zone_{hass_id(zone)}_count"
        config = {
            "name": f"Zone {zone} occupancy",
            "state_topic": self.topics.zone_count(camera, zone),
            "state_class": "measurement",
            "icon": "mdi:vector-square",
            **self._while_camera_online(camera),
        }
        return self._message(camera, object_id, config)

    def line_count(self, camera: str, line: str, direction: str) -> tuple[str, bytes]:
        """(topic, payload) of the sensor counting a line's crossings in one direction since
        the run started (a total that starts again at 0 with each run)."""
        object_id = f"{hass_id(camera)}_line_{hass_id(line)}_{hass_id(direction)}_count"
        config = {
            "name": f"Line {line} {direction}",
            "state_topic": self.topics.line_count(camera, line, direction),
            "state_class": "total_increasing",
            "icon": "mdi:transit-transfer",
            "availability_topic": self.topics.client_status,
        }
        return self._message(camera, object_id, config)

    def snapshot(self, camera: str) -> tuple[str, bytes]:
        """(topic, payload) of the image entity showing the camera's latest snapshot."""
        object_id = f"{hass_id(camera)}_snapshot"
        config = {
            "name": "Snapshot",
            "image_topic": self.topics.snapshot(camera),
            "content_type": "image/jpeg",
            "availability_topic": self.topics.client_status,
        }
        return self._message(camera, object_id, config, component="image")

    def _while_camera_online(self, camera: str) -> dict[str, Any]:
        """Available while both the pipeline and the camera are online."""
        return {
            "availability": [
                {"topic": self.topics.client_status},
                {"topic": self.topics.camera_status(camera)},
            ],
            "availability_mode": "all",
        }

    def _common(self, camera: str) -> dict[str, Any]:
        return {
            "device": {
                "identifiers": [f"{self.node_id}_{hass_id(camera)}"],
                "name": camera,
                "manufacturer": PROJECT,
                "model": "SSD camera analytics",
                "sw_version": _version(),
            },
            "origin": {"name": PROJECT, "sw_version": _version()},
        }

    def _message(
        self, camera: str, object_id: str, entity: dict[str, Any], component: str = "sensor"
    ) -> tuple[str, bytes]:
        """(topic, payload) of one entity of `camera`: `entity`'s keys (its name first), its
        unique id, and the camera's device."""
        topic = f"{self.discovery_prefix}/{component}/{self.node_id}/{object_id}/config"
        config = {
            "name": entity["name"],
            "unique_id": f"{self.node_id}_{object_id}",
            **entity,
            **self._common(camera),
        }
        return topic, json.dumps(config).encode()
