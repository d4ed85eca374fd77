"""Why a connection to the broker was lost, in words a user can act on."""

from __future__ import annotations

import re

from paho.mqtt.reasoncodes import ReasonCode

SOCKET_ERROR = re.compile(
    r"^(?:failed to receive on socket|failed to send on socket|timeout on socket): "
    r"(?:\[Errno -?\d+\] )?(?P<why>.+)$"
)
"""paho's log line of a socket's error, and the error's words without its number."""


def why_lost(reason: ReasonCode, socket_error: str | None, keepalive_s: int) -> str:
    """Why the connection was lost, in words a user can act on: paho's `reason` reads
    "Unspecified error" for a socket closed or broken, whichever."""
    if socket_error is not None:
        return f"the connection broke: {socket_error}"
    if reason == "Keep alive timeout":
        return (
            f"no answer from it within the keep-alive ({keepalive_s} s, `keepalive_s`): the "
            "broker or the network stopped answering"
        )
    if reason == "Unspecified error":  # paho read the end of the stream: the broker closed it
        return (
            "the broker closed the connection: it stopped, or refused a message (one larger "
            "than its message_size_limit or max_packet_size, say); its log says which"
        )
    return str(reason)
