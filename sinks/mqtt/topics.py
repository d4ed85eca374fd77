"""Every topic the mqtt sink writes, named in one place (docs/integrations.md lists them)."""

from __future__ import annotations

import re
from dataclasses import dataclass

ONLINE = "online"
OFFLINE = "offline"
"""Payloads of the status topics (Home Assistant's defaults for availability)."""

_NOT_IN_SEGMENT = re.compile(r"[^A-Za-z0-9_.\-]+")


def segment(name: str) -> str:
    """`name` as one topic level, and as part of Home Assistant ids: letters, digits, and
    `_ . -` kept, anything else (spaces, `/`, MQTT's wildcards `+ #`) turned into `_`."""
    return _NOT_IN_SEGMENT.sub("_", name) or "_"


@dataclass(frozen=True)
class Topics:
    """The topics under `prefix` (e.g. `ssd-pipeline`)."""

    prefix: str

    @property
    def client_status(self) -> str:
        """`online` while the pipeline is connected; `offline` (the last will) when not."""
        return f"{self.prefix}/status"

    def event(self, camera: str, event_type: str) -> str:
        """Where events of a type go: `<prefix>/<camera>/<type>`, e.g. `.../lobby/detections`."""
        return f"{self.prefix}/{camera}/{event_type}"

    def camera_status(self, camera: str) -> str:
        """`online` while the camera delivers frames, `offline` otherwise (retained)."""
        return f"{self.prefix}/{camera}/status"

    def count(self, camera: str, label: str) -> str:
        """Boxes of `label` in the camera's latest detected frame, a number (retained)."""
        return f"{self.prefix}/{camera}/count/{segment(label)}"

    def zone_count(self, camera: str, zone: str, label: str | None = None) -> str:
        """Tracks inside a zone now, all labels (`label` None) or one (retained)."""
        base = f"{self.prefix}/{camera}/zone/{segment(zone)}/count"
        return base if label is None else f"{base}/{segment(label)}"

    def line_count(self, camera: str, line: str, direction: str) -> str:
        """Crossings of a line in one direction during the run, a number (retained)."""
        return f"{self.prefix}/{camera}/line/{segment(line)}/count/{segment(direction)}"

    def snapshot(self, camera: str) -> str:
        """The JPEG of the camera's latest ended track's best detection (retained)."""
        return f"{self.prefix}/{camera}/snapshot"
