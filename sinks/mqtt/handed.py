"""The messages handed to paho, until it says they went out or were given up."""

from __future__ import annotations

import collections
import threading
from collections.abc import Collection
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from sinks.mqtt.refused import TooLarge


@dataclass(frozen=True)
class _Handed:
    info: mqtt.MQTTMessageInfo
    size: int
    """Its packet's bytes."""


class Handed:
    """What paho was given, oldest first, until it says it went out (QoS 0: written to the
    socket; QoS 1, 2: acknowledged): counts in `lost` those it gave up on, and tells
    `too_large` the size of each the broker took.

    Its lock is never held while calling paho, which may report a lost connection holding a
    lock of its own that a publish (holding the connection's lock) waits for."""

    def __init__(self, too_large: TooLarge) -> None:
        self.lost = 0
        self._too_large = too_large
        self._messages: collections.deque[_Handed] = collections.deque()
        self._lock = threading.Lock()

    def add(self, info: mqtt.MQTTMessageInfo, size: int) -> None:
        """A message paho was given, its packet of `size` bytes."""
        with self._lock:
            self._messages.append(_Handed(info, size))
        self.settle()

    def last(self) -> mqtt.MQTTMessageInfo | None:
        """The message paho was given last, not settled yet."""
        with self._lock:
            return self._messages[-1].info if self._messages else None

    def settle(self, *, unsent_lost: bool = False) -> int:
        """Forget the messages that went out, oldest first, counting in `lost` those paho
        gave up on; with `unsent_lost`, also every one not sent yet, which never will be.
        Returns how many it counted."""
        lost = 0
        with self._lock:
            while self._messages:
                went_out = _went_out(self._messages[0].info)
                if went_out is None and not unsent_lost:
                    break
                handed = self._messages.popleft()
                if went_out:
                    self._too_large.took(handed.size)
                else:
                    lost += 1
            self.lost += lost
        return lost

    def note_taken(self) -> None:
        """Tells `too_large` of those the broker acknowledged after one still waiting (not
        settled yet)."""
        with self._lock:
            for handed in self._messages:
                if _went_out(handed.info):
                    self._too_large.took(handed.size)

    def forget(self, infos: Collection[mqtt.MQTTMessageInfo]) -> None:
        """Forget these messages: given up, neither went out nor lost."""
        with self._lock:
            self._messages = collections.deque(
                h for h in self._messages if all(h.info is not i for i in infos)
            )


def _went_out(info: mqtt.MQTTMessageInfo) -> bool | None:
    """Whether paho sent the message (QoS 0: wrote it to the socket) or the broker
    acknowledged it (QoS 1, 2): True; False when paho gave it up (the connection lost);
    None while neither has happened yet."""
    try:
        if not info.is_published():
            return None
    except (RuntimeError, ValueError):  # is_published raises for a message given up
        return False
    # paho sets `rc` before marking a message given up as published
    return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS
