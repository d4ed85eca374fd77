"""The size of an MQTT PUBLISH packet, which brokers limit (Mosquitto's `max_packet_size`,
EMQX's `max_packet_size`): one over the limit gets the client disconnected, and with QoS 1
and 2 paho sends it again on every reconnection."""

from __future__ import annotations

MAX_REMAINING_LENGTH = 268_435_455
"""The largest packet body MQTT can state (its remaining length: 4 bytes of 7 bits)."""
MAX_PACKET_BYTES = 1 + 4 + MAX_REMAINING_LENGTH
"""The largest packet MQTT allows: type byte, the length's 4 bytes, the body."""


def packet_size(topic: str, payload: bytes | bytearray, qos: int) -> int:
    """Bytes of the PUBLISH packet that sends `payload` to `topic`: the type byte, the
    remaining length (1 to 4 bytes), the topic with its 2-byte length, the 2-byte packet id
    of QoS 1 and 2, the payload."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + len(payload)
    length_bytes = 1
    while remaining >= 128**length_bytes:
        length_bytes += 1
    return 1 + length_bytes + remaining
