"""Loopback HTTP cameras for the tests: MJPEG (multipart/x-mixed-replace) with good parts,
and for a broken or hostile camera a part that never ends; and one that serves one client
at a time (MPEG-TS, or any body)."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from abc import ABC, abstractmethod
from fractions import Fraction
from types import TracebackType
from typing import TypeVar

import av
import cv2
import numpy as np

SEND_BUFFER = 256 * 1024
"""The server's socket send buffer: small, so that what it counts as sent is close to what
the client took (the kernel holds no more than this and the client's receive buffer)."""


def jpeg(size: tuple[int, int] = (64, 48), padding: int = 0) -> bytes:
    """A small grey JPEG picture of `size` (width, height), and at least `padding` more bytes
    in application segments (APP15) that decoders skip: a part as long as a large, detailed
    picture's at the cost of a small one."""
    picture = bytes(cv2.imencode(".jpg", np.full((size[1], size[0], 3), 128, np.uint8))[1])
    segment = b"\xff\xef" + (65535).to_bytes(2, "big") + bytes(65533)  # its length counts itself
    segments = -(-padding // len(segment))
    return picture[:2] + segment * segments + picture[2:]  # after the start of image


def part(picture: bytes) -> bytes:
    """One part of an MJPEG stream whose boundary is `frame`, carrying `picture`."""
    header = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(picture)
    return header + picture + b"\r\n"


MJPEG = b"multipart/x-mixed-replace; boundary=frame"
"""The Content-Type of an MJPEG stream made of `part`s."""

_Server = TypeVar("_Server", bound="LoopbackServer")


class LoopbackServer(ABC):
    """A server on 127.0.0.1:`port` until the `with` block ends, counting the connections
    it accepts (`connections`); subclasses answer each (`_took`)."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._done = threading.Event()
        self._threads: list[threading.Thread] = []
        self.connections = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def __enter__(self: _Server) -> _Server:
        self._spawn(self._accept)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # ends its accept()
        self._listener.close()
        for thread in self._threads:
            thread.join(5)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._done.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._took(client)

    @abstractmethod
    def _took(self, client: socket.socket) -> None:
        """Answers a connection just accepted (`connections` counts it already)."""


class MjpegServer(LoopbackServer):
    """Answers every request on 127.0.0.1:`port` with an MJPEG stream: `good` parts (None:
    for ever) of `picture` (None: a small `jpeg`), one every `interval_s`, then, with
    `endless`, a part that never ends: its header (with `Content-Length: declared` when
    given) and zeros, `chunk` bytes every `chunk_delay_s`, until the client drops the
    connection. `endless_sent` holds, for each
    connection that reached it, the bytes of that part sent when the client dropped it."""

    def __init__(
        self,
        good: int | None,
        *,
        endless: bool = False,
        declared: int | None = None,
        interval_s: float = 0.01,
        chunk: int = 65536,
        chunk_delay_s: float = 0.0,
        picture: bytes | None = None,
    ) -> None:
        self.good = good
        self.endless = endless
        self.declared = declared
        self.interval_s = interval_s
        self.chunk = chunk
        self.chunk_delay_s = chunk_delay_s
        self.endless_sent: list[int] = []
        self._jpeg = jpeg() if picture is None else picture
        super().__init__()

    def url(self, path: str = "video") -> str:
        return super().url(path)

    def _took(self, client: socket.socket) -> None:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SEND_BUFFER)
        self._spawn(self._answer, client)

    def _answer(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):  # the client dropped the connection
            client.recv(65536)
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + MJPEG + b"\r\n\r\n")
            sent = 0
            while not self._done.is_set() and (self.good is None or sent < self.good):
                client.sendall(part(self._jpeg))
                sent += 1
                self._done.wait(self.interval_s)
            if self.endless:
                self._never_end(client)

    def _never_end(self, client: socket.socket) -> None:
        header = b"--frame\r\nContent-Type: image/jpeg\r\n"
        if self.declared is not None:
            header += b"Content-Length: %d\r\n" % self.declared
        client.sendall(header + b"\r\n" + self._jpeg[:-2])  # a picture, then no end to it
        zeros, sent = bytes(self.chunk), 0
        try:
            while not self._done.is_set():
                client.sendall(zeros)
                sent += len(zeros)
                self._done.wait(self.chunk_delay_s)
        finally:
            self.endless_sent.append(sent)


def mpegts(frames: int, fps: int = 10, size: tuple[int, int] = (64, 48)) -> bytes:
    """`frames` frames of H.264 in MPEG-TS, a bar moving right over grey, as a camera's
    HTTP stream sends them."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for index in range(frames):
            picture = np.full((size[1], size[0], 3), 128, np.uint8)
            picture[:, index % size[0]] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        out.mux(stream.encode(None))
    return buffer.getvalue()


class OneClientServer(LoopbackServer):
    """A camera on 127.0.0.1:`port` that serves one client at a time: the first connection
    gets `body` (`content_type`), `piece` bytes every `interval_s`, then nothing more until
    it is dropped (with `hold`; else it is closed, with no length said: a stream cut short);
    any connection while it lasts is answered 503 and closed. `connections` counts them
    all."""

    def __init__(
        self,
        body: bytes,
        content_type: bytes = b"video/mp2t",
        piece: int = 1880,
        interval_s: float = 0.005,
        hold: bool = True,
    ) -> None:
        self.body = body
        self.hold = hold
        self.content_type = content_type
        self.piece = piece
        self.interval_s = interval_s
        self._busy = False
        super().__init__()

    def url(self, path: str = "live") -> str:
        return super().url(path)

    def _took(self, client: socket.socket) -> None:
        if self._busy:
            with client, contextlib.suppress(OSError):
                client.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            return
        self._busy = True
        self._spawn(self._answer, client)

    def _answer(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):  # the client dropped the connection
            client.recv(65536)
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + self.content_type + b"\r\n\r\n")
            for start in range(0, len(self.body), self.piece):
                if self._done.is_set():
                    break
                client.sendall(self.body[start : start + self.piece])
                self._done.wait(self.interval_s)
            client.settimeout(0.05)
            while self.hold and not self._done.is_set():  # as a camera would
                with contextlib.suppress(TimeoutError):
                    if not client.recv(65536):
                        break  # the client dropped it
        self._busy = False
