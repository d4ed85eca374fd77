"""Where frames come from: video files, network streams and V4L2 devices (image folders:
`pipeline.image_source`).

A `Source` is opened, read frame by frame, and closed; opening it again starts over (a file)
or reconnects (a stream). The reader thread (`pipeline.readers`) owns the retry policy.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction

import av
import av.error
import cv2
import numpy as np
import numpy.typing as npt

from pipeline.config.cameras import not_a_file
from pipeline.config.video_files import missing_file, unreadable_file, video_header_problem
from pipeline.cores import usable_cores
from pipeline.http_camera import PartFeed, PartTooLong, Stopped, open_http
from pipeline.types import frame_size_problem
from pipeline.urls import mask_credentials

log = logging.getLogger(__name__)


def video_file_problem(path: str) -> str | None:
    """Why the video file at `path` cannot open, found without reading it, as `validate`
    says it: something there that is not a file (`not_a_file`), nothing there
    (`missing_file`), or something the system will not let this process read
    (`unreadable_file`). None when it opens."""
    return not_a_file(path) or missing_file(path) or unreadable_file(path)


def decoder_threads_for(cameras: int, cores: int | None = None) -> int:
    """Threads for each camera's decoder when `cameras` decode at once on `cores` cores (None:
    `usable_cores`): one once there are at least as many cameras as cores, since FFmpeg's own
    threads (a core and one more per decoder) then cost a little CPU and delay every frame;
    0, FFmpeg's choice, otherwise, so that a few cameras decode fast. Figures: docs/performance.md,
    "Decoder threads"."""
    cores = cores or usable_cores()
    return 1 if cameras >= cores else 0


class SourceError(RuntimeError):
    """A source cannot be opened or read; the message is one line, credentials masked."""


@dataclass(frozen=True)
class RawFrame:
    """A decoded picture before it becomes a `Frame`: RGB uint8 [H, W, 3] and pts seconds."""

    image: npt.NDArray[np.uint8]
    pts: float


@dataclass(frozen=True)
class OpenedSource:
    """What opening a source tells about it."""

    width: int
    height: int
    frame_rate: Fraction
    total_frames: int | None = None


class Source(ABC):
    """One camera's input. `open`, iterate `frames()`, `close`; may be opened again.

    Every frame has the size of the first open (`size`): a frame of another size (a camera
    that reconnects at another resolution, a stream that changes it, a later image of a
    folder) is scaled to it, so that zones, lines, boxes and the video stay in the pixels
    the camera started with."""

    live: bool = False
    """Live sources drop old frames when behind and reconnect when they fail or end."""

    def __init__(self, name: str) -> None:
        self.name = name
        """The source as shown to users: credentials masked."""
        self.decode_errors = 0
        self.size: tuple[int, int] | None = None
        """(width, height) of every frame: the first open's; None before it."""
        self._scaled_from: tuple[int, int] | None = None

    def _opened(self, width: int, height: int, rate: Fraction, total: int | None) -> OpenedSource:
        """What `open` returns: the size of the first open, whatever this one found; raises
        SourceError for a first frame size a camera may not have (`frame_size_problem`)."""
        if self.size is None:
            if (problem := frame_size_problem(width, height)) is not None:
                raise SourceError(f"{self.name}: {problem}")
            self.size = (width, height)
        return OpenedSource(*self.size, rate, total)

    def _fit(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """`image` at `size`: as it is, or scaled to it (said once per size it comes at)."""
        height, width = image.shape[:2]
        if self.size is None or (width, height) == self.size:
            return image
        if (width, height) != self._scaled_from:
            self._scaled_from = (width, height)
            log.warning(
                "%s: frames now come at %dx%d, not the %dx%d it started with; scaled to that",
                self.name, width, height, *self.size,
            )  # fmt: skip
        smaller = width * height > self.size[0] * self.size[1]
        scaling = cv2.INTER_AREA if smaller else cv2.INTER_LINEAR
        return cv2.resize(image, self.size, interpolation=scaling)  # type: ignore[return-value]

    def problem(self) -> str | None:
        """Why opening would fail, when that shows without reading the source through (a
        file that is not there, empty, or whose header holds no video; a folder without
        images), in the words `open` raises or `validate` says; None otherwise, and always
        for a live source, which may come up later."""
        return None

    @abstractmethod
    def open(self, stop: threading.Event | None = None) -> OpenedSource:
        """Open (or reopen) the source; raises SourceError. A source that can end its open,
        and the reads of what it opened, under way once `stop` (its reader's) is set does
        (an `http(s)://` camera, between network reads)."""

    @abstractmethod
    def frames(self) -> Iterator[RawFrame]:
        """Frames until the end of the source; raises SourceError when reading fails."""

    @abstractmethod
    def close(self) -> None:
        """Release the source; safe to call when it is not open."""


WEB = ("http://", "https://")
"""URL schemes whose servers answer a wrong path, or a login, with a web page, not video."""


class AVSource(Source):
    """Anything FFmpeg opens through PyAV: files, network URLs, V4L2 devices. With `file`,
    `url` is a file's path, and anything else there (a folder, a device, a named pipe), or a
    file the system will not open, is refused as it opens (`video_file_problem`), as `validate`
    refuses it: FFmpeg would wait on a pipe for a writer forever."""

    def __init__(
        self,
        url: str,
        *,
        live: bool,
        format: str | None = None,
        options: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
        decoder_threads: int = 0,
        file: bool = False,
    ) -> None:
        super().__init__(mask_credentials(url))
        self.decoder_threads = decoder_threads
        """FFmpeg's decoder threads; 0: its choice (`decoder_threads_for`)."""
        self.url = url
        self.live = live
        self.format = format
        self.options = dict(options or {})
        self.timeout_s = timeout_s
        self.file = file
        self._container: av.container.InputContainer | None = None
        self._http: av.container.InputContainer | None = None
        """An HTTP camera's connection, which `_feed` reads for `_container`."""
        self._feed: PartFeed | None = None
        self._rate = Fraction(25)

    def problem(self) -> str | None:
        """A file's `video_file_problem`, else its `video_header_problem` (opened as `open`
        opens it, no frame read); None for a live source."""
        if not self.file:
            return None
        return video_file_problem(self.url) or video_header_problem(self.url)

    def open(self, stop: threading.Event | None = None) -> OpenedSource:
        self.close()
        # what is there, not its header: FFmpeg reads that next, and says what is wrong
        if self.file and (problem := video_file_problem(self.url)) is not None:
            raise SourceError(problem)
        started = time.monotonic()
        try:
            container = self._open_container(stop)
        except (av.error.FFmpegError, OSError) as exc:
            waited = time.monotonic() - started
            raise SourceError(f"cannot open {self.name}: {self._why_not(exc, waited)}") from None
        except PartTooLong as exc:
            raise SourceError(f"cannot open {self.name}: {exc}") from None
        except Stopped:
            raise SourceError(f"{self.name}: stopped while opening") from None
        self._container = container
        if not container.streams.video:
            self.close()
            raise SourceError(f"{self.name} has no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not ctx.width or not ctx.height:
            self.close()
            raise SourceError(f"{self.name}: the video stream has no frame size")
        stream.thread_type = "AUTO"  # frame + slice threads inside FFmpeg; releases the GIL
        if self.decoder_threads:
            stream.thread_count = self.decoder_threads
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
        self._rate = Fraction(rate)
        try:
            return self._opened(ctx.width, ctx.height, self._rate, stream.frames or None)
        except SourceError:
            self.close()
            raise

    def _open_container(self, stop: threading.Event | None) -> av.container.InputContainer:
        """The container to demux: a live `http(s)://` camera through a feed on one
        connection that bounds each MJPEG part (`pipeline.http_camera`), anything else (and an HLS
        playlist or MP4 file there) as FFmpeg opens it."""
        if self.live and self.format is None and self.url.lower().startswith(WEB):
            opened = open_http(self.url, self.options, self.timeout_s, stop)
            if opened is not None:
                container, self._http, self._feed = opened
                return container
        return av.open(
            self.url, mode="r", format=self.format, options=self.options, timeout=self.timeout_s
        )

    def frames(self) -> Iterator[RawFrame]:
        last_pts = -1.0
        # Some containers (AVI with packed B-frames) stamp frames out of order; such a stream
        # is timed by frame count instead, so pts always increase.
        by_count = False
        step = float(1 / self._rate)  # once: a Fraction's division costs microseconds
        for vframe in self.decoded():
            stamp = vframe.time
            by_count = by_count or stamp is None or stamp <= last_pts
            pts = max(0.0, last_pts + step) if by_count else float(stamp)
            last_pts = pts
            # One swscale thread: PyAV >= 17 otherwise starts and joins a thread per
            # core for every frame (its cost: docs/performance.md, "What changed").
            try:
                image = vframe.to_ndarray(format="rgb24", threads=1)
            except (av.error.FFmpegError, OSError) as exc:
                raise SourceError(f"reading {self.name} failed: {self._reason(exc)}") from None
            yield RawFrame(self._fit(image), pts)  # type: ignore[arg-type]

    def decoded(
        self, on_corrupt: Callable[[float | None], None] | None = None
    ) -> Iterator[av.VideoFrame]:
        """The video stream's frames as FFmpeg decodes them, before any conversion: what
        `frames` reads, so that `validate` checks a file as `run` reads it. A packet FFmpeg
        refuses as invalid data is skipped (counted in `decode_errors`, and passed to
        `on_corrupt` with its time in seconds, None when it has none); any other error
        ends the reading with SourceError."""
        container = self._container
        if container is None:
            raise SourceError(f"{self.name} is not open")
        stream = container.streams.video[0]
        feed = self._feed
        try:
            for packet in container.demux(stream):
                if feed is not None:
                    feed.packet_out()
                try:
                    decoded = packet.decode()
                except av.error.InvalidDataError as exc:
                    self.decode_errors += 1
                    if on_corrupt is not None:
                        on_corrupt(_seconds(packet))
                    elif self.decode_errors <= 3:
                        log.warning(
                            "%s: skipped a corrupt packet (%s)", self.name, self._reason(exc)
                        )
                    continue
                yield from decoded
            if feed is not None and feed.held is not None:
                raise feed.held  # the network's error, after the frames that came before it
        except (av.error.FFmpegError, OSError) as exc:
            raise SourceError(f"reading {self.name} failed: {self._reason(exc)}") from None
        except PartTooLong as exc:
            raise SourceError(f"reading {self.name} failed: {exc}") from None
        except Stopped:
            raise SourceError(f"{self.name}: stopped while reading") from None

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None
        if self._http is not None:
            self._http.close()  # after the demuxer that reads it
            self._http = None
        self._feed = None

    def _why_not(self, exc: BaseException, waited_s: float) -> str:
        """Why the source did not open: `_reason`, and for a web server's answer that is
        no video, what it most likely is."""
        reason = self._reason(exc, waited_s)
        if isinstance(exc, av.error.InvalidDataError) and self.url.lower().startswith(WEB):
            return f"{reason}: the server answered with no video (a web page? check the URL)"
        return reason

    def _reason(self, exc: BaseException, waited_s: float = 0.0) -> str:
        """`exc` in words; a source that did not answer within `timeout_s` (FFmpeg ends that
        wait as an "Immediate exit requested", or, for RTSP, as "Invalid data") says so.
        `waited_s`: how long the failed call took."""
        timeout = self.timeout_s
        if timeout is not None and (isinstance(exc, av.error.ExitError) or waited_s >= timeout):
            return f"no answer within {timeout:g} s (timeout_s)"
        if isinstance(exc, av.error.FFmpegError):
            text = exc.strerror or type(exc).__name__
        else:
            lines = str(exc).strip().splitlines()
            text = lines[0] if lines else type(exc).__name__
        return mask_credentials(text.replace(self.url, self.name))


def _seconds(packet: av.Packet) -> float | None:
    """When `packet` is to be shown (else decoded), in seconds; None when it says neither."""
    stamp = packet.pts if packet.pts is not None else packet.dts
    if stamp is None or packet.time_base is None:
        return None
    return float(stamp * packet.time_base)


class Pacer:
    """Waits so that frames come out at their pts, as from a camera (`realtime` files)."""

    def __init__(self) -> None:
        self._origin: float | None = None

    def wait(self, pts: float, stop: threading.Event) -> bool:
        """Waits until the frame at `pts` is due; True if `stop` was set meanwhile."""
        now = time.monotonic()
        if self._origin is None:
            self._origin = now - pts
        return stop.wait(max(0.0, self._origin + pts - now))


class FailedSource(Source):
    """A source found unopenable (`Source.problem`) before its run was set up: opening it
    fails with that problem, as it was said then, whatever is there by now."""

    def __init__(self, name: str, problem: str) -> None:
        super().__init__(name)
        self._problem = problem

    def problem(self) -> str | None:
        return self._problem

    def open(self, stop: threading.Event | None = None) -> OpenedSource:
        raise SourceError(self._problem)

    def frames(self) -> Iterator[RawFrame]:
        raise SourceError(self._problem)

    def close(self) -> None:
        pass
