"""Camera readers: one thread per camera decoding with PyAV into a bounded `FrameQueue`."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from enum import Enum
from fractions import Fraction
from pathlib import Path

import av
import av.error

from pipeline.types import Frame, StreamInfo

log = logging.getLogger(__name__)


class QueuePolicy(str, Enum):
    """What a full queue does with a new frame."""

    BLOCK = "block"  # the producer waits: nothing is lost (files)
    DROP_OLDEST = "drop_oldest"  # the oldest frame goes: latency stays bounded (live sources)


class SourceError(RuntimeError):
    """A camera's source cannot be opened or read; the message names the camera."""


class FrameQueue:
    """A bounded FIFO of one camera's frames, sharing a condition with the batcher.

    All queues of a run share one `threading.Condition`, so the batcher can wait for a frame
    from any camera without polling.
    """

    def __init__(
        self, camera_id: str, maxsize: int, policy: QueuePolicy, condition: threading.Condition
    ) -> None:
        if maxsize < 1:
            raise ValueError(f"queue size must be >= 1, got {maxsize}")
        self.camera_id = camera_id
        self.maxsize = maxsize
        self.policy = policy
        self.frames_in = 0
        self.dropped = 0
        self.error: str | None = None
        self._items: deque[Frame] = deque()
        self._closed = False
        self._cond = condition

    def put(self, frame: Frame, stop: threading.Event) -> bool:
        """Queue a frame; False if `stop` was set while waiting for room (frame not queued)."""
        with self._cond:
            while len(self._items) >= self.maxsize:
                if self.policy is QueuePolicy.DROP_OLDEST:
                    self._items.popleft()
                    self.dropped += 1
                    break
                if stop.is_set():
                    return False
                self._cond.wait(0.1)  # woken by the batcher taking frames; timeout to see `stop`
            self._items.append(frame)
            self.frames_in += 1
            self._cond.notify_all()
            return True

    def close(self, error: str | None = None) -> None:
        """No more frames will come; `error` says why if the source failed."""
        with self._cond:
            self._closed = True
            self.error = error
            self._cond.notify_all()

    # The methods below are called with the shared condition held (by the batcher).
    def pop(self) -> Frame | None:
        return self._items.popleft() if self._items else None

    @property
    def finished(self) -> bool:
        """Closed and drained: every frame it will ever hold has been taken."""
        return self._closed and not self._items

    def __len__(self) -> int:
        return len(self._items)


def open_video(camera_id: str, path: str | Path) -> tuple[av.container.InputContainer, StreamInfo]:
    """Open a video file and describe its first video stream; SourceError if it cannot."""
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, OSError) as exc:
        raise SourceError(f"camera {camera_id}: cannot open {path}: {_reason(exc)}") from None
    if not container.streams.video:
        container.close()
        raise SourceError(f"camera {camera_id}: {path} has no video stream")
    stream = container.streams.video[0]
    if not stream.codec_context.width or not stream.codec_context.height:
        container.close()
        raise SourceError(f"camera {camera_id}: {path}: video stream has no frame size")
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(25)
    info = StreamInfo(
        camera_id=camera_id,
        width=stream.codec_context.width,
        height=stream.codec_context.height,
        frame_rate=Fraction(rate),
        source=str(path),
    )
    return container, info


class FileReader(threading.Thread):
    """Decodes a video file into a FrameQueue until end of file, an error, or `stop`.

    Corrupt packets are counted in `decode_errors` and skipped; any other failure ends the
    camera with a one-line error on the queue (`FrameQueue.error`). The queue is always
    closed when the thread ends.
    """

    def __init__(
        self,
        camera_id: str,
        container: av.container.InputContainer,
        info: StreamInfo,
        queue: FrameQueue,
        stop: threading.Event,
    ) -> None:
        super().__init__(name=f"reader-{camera_id}", daemon=True)
        self.camera_id = camera_id
        self.info = info
        self.queue = queue
        self.decode_errors = 0
        self._container = container
        self._stop_event = stop

    def run(self) -> None:
        error: str | None = None
        try:
            self._decode()
        except Exception as exc:  # any failure ends this camera only; the message says why
            error = (
                f"camera {self.camera_id}: reading {self.info.source} failed after "
                f"{self.queue.frames_in} frames: {_reason(exc)}"
            )
            log.error("%s", error)
        finally:
            self._container.close()
            self.queue.close(error)

    def _decode(self) -> None:
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"  # frame + slice threads inside FFmpeg; releases the GIL
        index = 0
        for packet in self._container.demux(stream):
            try:
                decoded = packet.decode()
            except av.error.InvalidDataError as exc:
                self.decode_errors += 1
                if self.decode_errors <= 3:
                    log.warning(
                        "camera %s: skipped a corrupt packet (%s)", self.camera_id, _reason(exc)
                    )
                continue
            for vframe in decoded:
                pts = (
                    float(vframe.time) if vframe.time is not None else index / self.info.frame_rate
                )
                frame = Frame(
                    camera_id=self.camera_id,
                    index=index,
                    pts=float(pts),
                    wall_time=time.time(),
                    image=vframe.to_ndarray(format="rgb24"),  # type: ignore[arg-type]
                )
                if not self.queue.put(frame, self._stop_event):
                    return
                index += 1
            if self._stop_event.is_set():
                return


def _reason(exc: BaseException) -> str:
    if isinstance(exc, av.error.FFmpegError):
        return exc.strerror or type(exc).__name__
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
