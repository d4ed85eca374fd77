"""HTTP cameras read through one connection, with a bound on each MJPEG part.

FFmpeg's mpjpeg demuxer grows a packet until its part's boundary (or its Content-Length)
comes, with no cap: a broken or hostile camera that never ends a part fills memory as fast
as the network delivers until the connection drops. So an `http(s)://` stream is opened with
FFmpeg's own HTTP client (its options, logins and timeouts as before) but read as raw bytes,
which reach FFmpeg's demuxer through `PartFeed`: for MJPEG (multipart/x-mixed-replace) the
mpjpeg demuxer, which may take `PART_LIMIT` bytes between two packets; for any other body
(MPEG-TS, FLV...) the demuxer FFmpeg finds in those same bytes, so the camera answers one
request, not two (one that serves a single client at a time would refuse the second). FFmpeg
finds it from the bytes alone: the response's Content-Type, which its prober weighs when it
reads a URL itself, stays inside its HTTP client, which PyAV does not show. An
HLS playlist, or an MP4 file that FFmpeg may need to seek in, needs FFmpeg's own requests:
`open_http` returns None for them, and the URL is opened again as any other.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping

import av
import av.container
import av.error

from pipeline.config.base import BYTES_PER_MB
from pipeline.types import MAX_FRAME_PIXELS

PART_BYTES_PER_PIXEL = 4.5
"""The most bytes a JPEG picture takes a pixel: pure noise, JPEG's worst case, at quality 100
with no chroma subsampling is 4.11 (libjpeg, through OpenCV and Pillow alike; 1.98 with the
4:2:0 subsampling most cameras use, 1.17 at quality 95), rounded up for a part's headers and
the markers a camera may add (EXIF, comments)."""

PART_LIMIT = round(PART_BYTES_PER_PIXEL * MAX_FRAME_PIXELS)
"""The most bytes one MJPEG part may take: the largest picture a camera may have, at JPEG's
worst (180 MB, decimal as every size here). Any picture the pipeline would take passes (a
camera's own are a few MB even at 8K), while one that never ends its part costs this much
memory, not all of it."""

CHUNK = 65536
"""Bytes of each read from the network and of each read by the demuxer: a 1080p frame (a few
hundred kB) takes a handful, each a Python call; 256 KiB measured no cheaper."""

_PEEK = 4096
"""How far a body may start with blank lines before what tells its kind: a multipart
boundary or a playlist's first line."""

_PLAYLIST = b"#EXTM3U"
"""An HLS playlist's first line: its segments are further URLs that FFmpeg requests."""

_FILE_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide"})
"""The first box of an MP4 (ISO BMFF) file, which FFmpeg may read out of order."""


class PartTooLong(Exception):
    """A part passed `PART_LIMIT` bytes without its end; the message says so in one line."""


class Stopped(Exception):
    """The reader's stop came while the demuxer waited for bytes."""


class PartFeed:
    """The raw bytes of an HTTP response, read by FFmpeg (PyAV's file-object input) for a
    demuxer, which may take at most `limit` bytes (None: any) between two packets it
    returns (`packet_out` marks each) and `stop` ends at the next read. Not seekable.
    A network error ends the bytes instead of being raised, and is kept in `held` for the
    reading to raise after them: while `opening` (a timeout excepted), so that the stream
    opens with what came before the error, as when FFmpeg reads the URL itself; and later
    too for a body without `limit` (MPEG-TS, FLV...), so that its demuxer and decoder give
    the frames they hold first (PyAV raises a file-object read's error at the demuxer's next
    packet, and those would be lost). An MJPEG body's later errors are raised as they come:
    at the end of its bytes its demuxer would give a part cut short as a picture."""

    def __init__(
        self,
        chunks: Iterator[bytes],
        first: bytes,
        limit: int | None,
        stop: threading.Event | None = None,
    ) -> None:
        self._chunks = chunks
        self._pending = first
        self._limit = limit
        self._stop = stop
        self._taken = 0
        self._ended = False
        self.opening = False
        self.held: av.error.FFmpegError | OSError | None = None

    def read(self, size: int) -> bytes:
        """Up to `size` bytes (b"" at the end of the response, or at an error `held`);
        raises PartTooLong past the limit, Stopped at a stop, and the network's own errors
        (PyAV's) as they come."""
        if self._ended:
            # FFmpeg may read again after an error: PyAV keeps the first one to raise, and
            # would print a second as "dropped"
            return b""
        if self._stop is not None and self._stop.is_set():
            self._ended = True
            raise Stopped
        if not self._pending:
            try:
                self._pending = next(self._chunks, b"")
            except (av.error.FFmpegError, OSError) as exc:
                timed_out = isinstance(exc, av.error.ExitError)
                holds = not timed_out if self.opening else self._limit is None
                if not holds:
                    raise
                self.held, self._ended = exc, True
                return b""
        chunk = self._pending[:size]  # the same object, not a copy, when all of it fits
        self._pending = self._pending[size:]
        self._taken += len(chunk)
        if self._limit is not None and self._taken > self._limit:
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


def _fetched_by_ffmpeg(head: bytes) -> bool:
    """Whether a body starting with `head` needs more requests than its own: an HLS playlist
    (after blank lines and a byte order mark), or an MP4 file, whose index may come last."""
    text = head.lstrip().removeprefix(b"\xef\xbb\xbf")
    return text.startswith(_PLAYLIST) or head[4:8] in _FILE_BOXES


def _peek(chunks: Iterator[bytes]) -> bytes:
    """The body's first bytes: enough past blank lines to tell its kind, or all of it."""
    head = b""
    while len(head.lstrip()) < len(_PLAYLIST) + 3 and len(head) < _PEEK:
        chunk = next(chunks, b"")
        if not chunk:
            break
        head += chunk
    return head


def open_http(
    url: str,
    options: Mapping[str, str],
    timeout_s: float | None,
    stop: threading.Event | None = None,
    limit: int | None = None,
) -> tuple[av.container.InputContainer, av.container.InputContainer, PartFeed] | None:
    """The HTTP stream at `url` opened on one connection, through a `PartFeed` that bounds
    each MJPEG part to `limit` bytes (None: `PART_LIMIT`): (the container to demux, the HTTP
    connection to close after it, the feed); None when the body is an HLS playlist or an MP4
    file (closed; open the URL as usual). Raises what av.open raises (FFmpeg's errors,
    OSError), PartTooLong and Stopped."""
    raw = av.open(
        url,
        mode="r",
        format="data",
        options={**options, "raw_packet_size": str(CHUNK)},
        timeout=timeout_s,
    )
    try:
        chunks = _raw_chunks(raw)
        head = _peek(chunks)
        if _fetched_by_ffmpeg(head):
            raw.close()
            return None
        multipart = _multipart(head)
        bound = (PART_LIMIT if limit is None else limit) if multipart else None
        feed = PartFeed(chunks, head, bound, stop)
        feed.opening = True
        try:
            # any other body: FFmpeg finds its format in the bytes, as it would from the URL
            container = av.open(
                feed,
                mode="r",
                format="mpjpeg" if multipart else None,
                options=dict(options),
                buffer_size=CHUNK,
            )
        except (av.error.FFmpegError, OSError):
            if feed.held is not None:
                raise feed.held from None  # the network's error, not "no format found"
            raise
        feed.opening = False
    except BaseException:
        raw.close()
        raise
    return container, raw, feed
