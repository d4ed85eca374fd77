"""Camera readers: one thread per camera, decoding into a bounded `FrameQueue`.

A reader owns its camera's life: connecting, streaming, reconnecting after a failure (live
sources, with exponential backoff and jitter), stopping at the end of a file. Every change
of state is reported through a callback, and a failure ends this camera only.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from pipeline.frame_queue import FrameQueue, QueuedFrame
from pipeline.motion import MotionGate
from pipeline.sources import OpenedSource, Pacer, Source, SourceError
from pipeline.types import CameraState, CameraStatus, Frame, Region, StreamInfo

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Backoff:
    """Waits between reconnection attempts: `initial_s` doubling up to `max_s`, +-`jitter`."""

    initial_s: float = 0.5
    max_s: float = 30.0
    jitter: float = 0.2
    max_attempts: int = 0  # 0: never give up

    def delay(self, attempt: int) -> float:
        """The wait before attempt number `attempt` (1 = the first retry)."""
        base = min(self.max_s, self.initial_s * 2 ** max(0, attempt - 1))
        return base * (1 + self.jitter * random.uniform(-1, 1))


class FrameSampler:
    """Which frames to detect on: every `every`-th, and at most `max_fps` per second of pts."""

    def __init__(self, every: int = 1, max_fps: float | None = None) -> None:
        self.every = every
        self.min_gap = 1.0 / max_fps if max_fps else 0.0
        self._last_pts: float | None = None
        self._count = 0

    def take(self, pts: float) -> bool:
        self._count += 1
        if (self._count - 1) % self.every:
            return False
        # A little slack so 30 fps pts (33.3 ms apart) pass a max_fps of 30.
        recent = self._last_pts is not None and 0 <= pts - self._last_pts < self.min_gap * 0.9
        if self.min_gap and recent:
            return False
        self._last_pts = pts
        return True


class FramePicker:
    """Which of a camera's frames are detected: those the sampler picks (`max_fps`,
    `detect_every`) where the motion gate, if any, saw something move. Counts what each
    left out; call `take` for every frame, in order."""

    def __init__(self, sampler: FrameSampler, motion: MotionGate | None = None) -> None:
        self.sampler = sampler
        self.motion = motion
        self.skipped = 0
        """Frames the sampler left out."""
        self.motion_skipped = 0
        """Frames the sampler picked where nothing moved."""

    def take(self, image: npt.NDArray[np.uint8], pts: float) -> bool:
        """Whether the frame is detected (see `choose`)."""
        return self.choose(image, pts) is not None

    def choose(self, image: npt.NDArray[np.uint8], pts: float) -> tuple[Region, ...] | None:
        """What of the frame is detected: None, nothing; (), all of it; else these regions
        (`MotionGate.choose`)."""
        if not self.sampler.take(pts):
            self.skipped += 1
            return None
        if self.motion is None:
            return ()
        regions = self.motion.choose(image, pts)
        if regions is None:
            self.motion_skipped += 1
        return regions

    def frame_gap_s(self, frame_rate: Fraction) -> float | None:
        """The wait, in seconds of the stream, between two frames it picks whatever the scene
        does: every `every`-th, `max_fps` (None: every frame, as far as the sampler goes)."""
        gaps = [self.sampler.min_gap]
        if self.sampler.every > 1 and frame_rate > 0:
            gaps.append(float(self.sampler.every / frame_rate))
        return max(gaps) or None

    @property
    def still_gap_s(self) -> float | None:
        """The longest wait, in seconds of the stream, between two frames it picks while
        the scene is still: a frame every `max_skip_s` (None: no motion gating)."""
        return self.motion.max_skip_s if self.motion else None


StatusCallback = Callable[[CameraStatus], None]
OpenCallback = Callable[[StreamInfo], None]
ModelImage = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8] | None]
"""A frame's image as the detector will resize it, or None (`FrameDetector.model_image`)."""


class CameraReader(threading.Thread):
    """Reads one camera's source into its queue until the end, a failure, or `stop`.

    Files end at their end (or start again with `loop`); a file that cannot be opened or
    read ends the camera as failed. Live sources are reopened after any failure or end of
    stream, after a `Backoff` delay, until `stop` (or `max_attempts` failures in a row).
    Frame indices and pts keep increasing across reconnections and loops. The queue is
    always closed when the thread ends, with the error if the camera failed. Which frames
    are detected is decided here, as they are read (`FramePicker`: `sampler`, `motion`);
    the others are queued, flagged, only with `pass_skipped`. A frame detected whole is
    given its `model_image` here (`model_image`, the detector's), so that resizing runs on
    the cameras' threads rather than on the detector's.
    """

    def __init__(
        self,
        camera_id: str,
        source: Source,
        queue: FrameQueue,
        stop: threading.Event,
        *,
        on_open: OpenCallback,
        on_status: StatusCallback,
        sampler: FrameSampler | None = None,
        motion: MotionGate | None = None,
        pass_skipped: bool = False,
        backoff: Backoff | None = None,
        loop: bool = False,
        realtime: bool = False,
        model_image: ModelImage | None = None,
    ) -> None:
        super().__init__(name=f"reader-{camera_id}", daemon=True)
        self.camera_id = camera_id
        self.source = source
        self.queue = queue
        self.state: CameraState | None = None
        self.opened: OpenedSource | None = None
        self.tried = False
        """Whether the source was ever asked to open (not when the stop came first)."""
        self.reconnects = 0
        self.lost: str | None = None
        """Why a live source is down while the reader waits to reconnect; None once it
        streams again."""
        self.short: str | None = None
        """How far short of the frames it declares a file ended (cut short or damaged, say);
        None when it did not, or did not end by itself."""
        self._stop_event = stop
        self._on_open = on_open
        self._on_status = on_status
        self._picker = FramePicker(sampler or FrameSampler(), motion)
        self._pass_skipped = pass_skipped
        self._backoff = backoff or Backoff()
        self._loop = loop
        self._pacer = Pacer() if realtime else None
        self._model_image = model_image
        self._index = 0
        self._last_pts = -1.0
        self._pts_offset = 0.0

    @property
    def frames_decoded(self) -> int:
        """Frames decoded so far, skipped ones included."""
        return self._index

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    @property
    def queue_depth(self) -> int:
        return len(self.queue)

    @property
    def decode_errors(self) -> int:
        return self.source.decode_errors

    def run(self) -> None:
        error: str | None = None
        try:
            error = self._run()
        except Exception as exc:  # a bug must end this camera only, and say so
            log.exception("camera %s: reader crashed", self.camera_id)
            error = self._fail(f"reader crashed: {type(exc).__name__}: {exc}")
        finally:
            self.source.close()
            self.queue.close(error)

    def _run(self) -> str | None:
        """The state machine; returns the error that ended the camera, or None."""
        self._set_state("connecting")
        failures = 0
        while not self._stop_event.is_set():
            error: str | None = None
            got_frames = False
            try:
                self.tried = True
                opened = self.source.open(self._stop_event)
                if self.opened is None:
                    self.opened = opened
                    self._on_open(self._stream_info(opened))
                got_frames = self._read()
            except SourceError as exc:
                error = str(exc)
            finally:
                self.source.close()
            if self._stop_event.is_set():
                break
            if not self.source.live:
                if error is None and self._loop and got_frames:
                    continue
                if error is None:
                    self.short = self._short_of_declared()
                    break
                return self._fail(error)
            reason = error or f"{self.source.name}: end of stream"
            failures = 0 if got_frames else failures + 1
            if self._backoff.max_attempts and failures >= self._backoff.max_attempts:
                return self._fail(f"{reason}; gave up after {failures} attempts")
            delay = self._backoff.delay(max(1, failures))
            self.reconnects += 1
            self.lost = reason
            self._set_state("reconnecting", f"{reason}; retrying in {delay:.2f} s", delay)
            if self._stop_event.wait(delay):
                break
        self._set_state("stopped")
        return None

    def _short_of_declared(self) -> str | None:
        """At the end of a file: how many of the frames it declares never came, logged.
        Frames of the damaged packets skipped (`decode_errors`, said apart) are not among
        them."""
        declared = self.opened.total_frames if self.opened is not None else None
        if declared is None:
            return None
        never = declared - self._index - self.source.decode_errors
        if never <= 0:
            return None
        short = f"{never} of the {declared} frames {self.source.name} declares never came"
        log.warning("camera %s: %s (python -m pipeline validate says where)", self.camera_id, short)
        return short

    def _read(self) -> bool:
        """Queue the source's frames; True if at least one frame came."""
        got_frame = False
        for raw in self.source.frames():
            if not got_frame:
                got_frame = True
                self.lost = None
                self._align_pts(raw.pts)
                self._set_state("streaming")
            pts = raw.pts + self._pts_offset
            if self._pacer is not None and self._pacer.wait(pts, self._stop_event):
                break
            self._last_pts = pts
            regions = self._picker.choose(raw.image, pts)
            detect = regions is not None
            if detect or self._pass_skipped:
                resized = None
                if regions == () and self._model_image is not None:  # detected whole
                    resized = self._model_image(raw.image)
                frame = Frame(self.camera_id, self._index, pts, time.time(), raw.image, resized)
                queued = QueuedFrame(frame, detect, regions or ())
                if not self.queue.put(queued, self._stop_event):
                    return got_frame
            self._index += 1
            if self._stop_event.is_set():
                break
        return got_frame

    @property
    def skipped(self) -> int:
        """Frames not detected because `max_fps` / `detect_every` left them out."""
        return self._picker.skipped

    @property
    def motion_skipped(self) -> int:
        """Frames not detected because nothing moved (`motion`)."""
        return self._picker.motion_skipped

    def _align_pts(self, first_pts: float) -> None:
        """Keep pts increasing when a source restarts (reconnection, loop)."""
        if first_pts + self._pts_offset <= self._last_pts:
            rate = self.opened.frame_rate if self.opened else 25
            self._pts_offset = self._last_pts + float(1 / rate) - first_pts

    def _fail(self, message: str) -> str:
        """Report the camera failed; returns the one-line error naming the camera."""
        self._set_state("failed", message)
        return f"camera {self.camera_id}: {message}"

    def _stream_info(self, opened: OpenedSource) -> StreamInfo:
        return StreamInfo(
            camera_id=self.camera_id,
            width=opened.width,
            height=opened.height,
            frame_rate=opened.frame_rate,
            source=self.source.name,
            live=self.source.live,
            frame_gap_s=None if self._pass_skipped else self._picker.frame_gap_s(opened.frame_rate),
            still_gap_s=None if self._pass_skipped else self._picker.still_gap_s,
        )

    def _set_state(
        self, state: CameraState, message: str | None = None, retry_in: float | None = None
    ) -> None:
        if state == self.state and state != "reconnecting" and message is None:
            return
        self.state = state
        level = logging.WARNING if state == "reconnecting" else logging.INFO
        log.log(level, "camera %s %s%s", self.camera_id, state, f": {message}" if message else "")
        self._on_status(
            CameraStatus(
                camera_id=self.camera_id,
                state=state,
                time=time.time(),
                message=message,
                frames=self._index,
                dropped=self.queue.dropped,
                decode_errors=self.source.decode_errors,
                retry_in_s=retry_in,
            )
        )


def join_readers(readers: Sequence[CameraReader], timeout_s: float) -> None:
    """Waits for the readers to end, `timeout_s` at most in all, and not for those the
    batcher cut off: they had their grace already, and their stream has ended without them.
    One still in its source after that is left behind (its thread is a daemon)."""
    deadline = time.monotonic() + timeout_s
    for reader in readers:
        if reader.queue.was_cut_off:
            continue  # the batcher said so when it cut it off
        reader.join(max(0.0, deadline - time.monotonic()))
        if reader.is_alive():
            log.warning("camera %s: its reader is still waiting on its source", reader.camera_id)
