"""HTTP MJPEG cameras (multipart/x-mixed-replace) with a bound on each part.

FFmpeg's mpjpeg demuxer grows a packet until its part's boundary (or its Content-Length)
comes, with no cap: a broken or hostile camera that never ends a part fills memory as fast
as the network delivers until the connection drops. So an `http(s)://` stream is opened with
FFmpeg's own HTTP client (its options, logins and timeouts as before) but read as raw bytes,
which reach the mpjpeg demuxer through `PartFeed`: it counts what the demuxer took since its
last packet and ends the connection once that passes `PART_LIMIT`. A stream that is not
multipart is opened again by FFmpeg as any other URL (`open_mjpeg` returns None).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import av
import av.container

from pipeline.config.base import BYTES_PER_MB

PART_LIMIT = 32 * BYTES_PER_MB
"""The most bytes one MJPEG part may take (32 MB, decimal as every size here). A 4K camera's
JPEG is a few MB; a 3840x2160 picture of pure noise, JPEG's worst case, is 9.7 MB at quality
95 (OpenCV's encoder). So any camera up to 4K passes with room to spare, while one that never
ends its part costs this much memory, not all of it."""

CHUNK = 65536
"""Bytes of each read from the network and of each read by the demuxer: a 1080p frame (a few
hundred kB) takes a handful, each a Python call; 256 KiB measured no cheaper."""

_PEEK = 4096
"""How far a multipart body may start with blank lines before its first boundary."""


class PartTooLong(Exception):
    """A part passed `PART_LIMIT` bytes without its end; the message says so in one line."""


class Stopped(Exception):
    """The reader's stop came while the demuxer waited for bytes."""


class PartFeed:
    """The raw bytes of an HTTP response, read by FFmpeg (PyAV's file-object input) for the
    mpjpeg demuxer, which may take at most `limit` bytes between two packets it returns
    (`packet_out` marks each) and `stop` ends at the next read. Not seekable."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        first: bytes,
        limit: int,
        stop: threading.Event | None = None,
    ) -> None:
        self._chunks = chunks
        self._pending = first
        self._limit = limit
        self._stop = stop
        self._taken = 0
        self._ended = False

    def read(self, size: int) -> bytes:
        """Up to `size` bytes (b"" at the end of the response); raises PartTooLong past the
        limit, Stopped at a stop, and the network's own errors (PyAV's) as they come."""
        if self._ended:
            # FFmpeg may read again after an error: PyAV keeps the first one to raise, and
            # would print a second as "dropped"
            return b""
        if self._stop is not None and self._stop.is_set():
            self._ended = True
            raise Stopped
        if not self._pending:
            self._pending = next(self._chunks, b"")
        chunk = self._pending[:size]  # the same object, not a copy, when all of it fits
        self._pending = self._pending[size:]
        self._taken += len(chunk)
        if self._taken > self._limit:
            self._ended = True
            raise PartTooLong(
                f"an MJPEG part passed {self._limit / BYTES_PER_MB:g} MB without its boundary"
            )
        return chunk

    def packet_out(self) -> None:
        """The demuxer returned a packet: a new part starts."""
        self._taken = 0


def _raw_chunks(container: av.container.InputContainer) -> Iterator[bytes]:
    """The bytes of a container opened with FFmpeg's `data` format, as they arrive."""
    for packet in container.demux():
        if packet.size:
            yield bytes(packet)


def _multipart(head: bytes) -> bool:
    """Whether a response body starting with `head` is multipart: its first line, after
    blank lines, starts with "--", as the mpjpeg demuxer needs."""
    return head.lstrip().startswith(b"--")


def open_mjpeg(
    url: str,
    options: Mapping[str, str],
    timeout_s: float | None,
    stop: threading.Event | None = None,
    limit: int = PART_LIMIT,
) -> tuple[av.container.InputContainer, av.container.InputContainer, PartFeed] | None:
    """The HTTP MJPEG stream at `url` opened through a `PartFeed` that bounds each part:
    (the mpjpeg container to demux, the HTTP connection to close after it, the feed); None
    when the response is not multipart (closed; open the URL as usual). Raises what av.open
    raises (FFmpeg's errors, OSError), PartTooLong and Stopped."""
    raw = av.open(
        url,
        mode="r",
        format="data",
        options={**options, "raw_packet_size": str(CHUNK)},
        timeout=timeout_s,
    )
    try:
        chunks = _raw_chunks(raw)
        head = b""
        while len(head.lstrip()) < 2 and len(head) < _PEEK:
            chunk = next(chunks, b"")
            if not chunk:
                break
            head += chunk
        if not _multipart(head):
            raw.close()
            return None
        feed = PartFeed(chunks, head, limit, stop)
        container = av.open(
            feed, mode="r", format="mpjpeg", options=dict(options), buffer_size=CHUNK
        )
    except BaseException:
        raw.close()
        raise
    return container, raw, feed
