"""Encoding one MP4 file with PyAV: how a camera's files are encoded (`Encoding`) and the
file being written.

Frame `k` of a file gets pts `k` in units of 1/frame_rate, so a file has exactly one frame per
input frame at the input's frame rate, whatever the input's own timestamps were.

Files are fragmented MP4 by default (flushed as written): a file stays playable up to its
last fragment even when the process is killed; a normal end writes the index that makes it
seekable. A live camera's fragment is a frame (its frames may slow down after its file
opened); a file's is a second of video, or, when frames come further apart than the video's
frame rate (`fragment_us`), as many frames as come in about a second of wall time. The
encoder holds no frame back when every frame comes that far apart, but does for a live or
motion-gated camera's at the video's rate (`Pacing`). An image is cropped to the file's size
(an even one: H.264 with yuv420p needs it), and resized to it if it is smaller.

FFmpeg does not report every write that fails (those of a fragmented MP4's last fragment,
written when the file is finished, go unreported on a full disk), so the file is written
through `CheckedFile`, which keeps the first failure for `SegmentFile` to raise. A file such a
failure cut short is trimmed back to its last whole fragment (`cut_back`), and the frames it
still holds counted (`frames_in`).
"""

from __future__ import annotations

import io
import logging
import math
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from pipeline.cores import usable_cores
from sinks.disk import write_failure

log = logging.getLogger(__name__)

FRAGMENT_US = 1_000_000
"""Length of one MP4 fragment in microseconds, of video and of the wall time its frames take
to come: at most about this much is lost on a kill."""


NVENC_PRESETS = {
    "ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p4",
    "fast": "p5", "medium": "p5", "slow": "p6", "slower": "p7",
}  # fmt: skip
"""x264 preset names -> NVENC's p1 (fastest) .. p7 (best compression)."""


def encoder_options(codec: str, crf: int, preset: str, no_delay: bool = False) -> dict[str, str]:
    """FFmpeg options for `codec` from the x264-style quality and speed settings: libx264
    takes them as they are; NVENC gets constant quality `crf` (`cq`) and the matching
    p1..p7 preset. `no_delay`: each frame's packet comes out as the frame goes in (no
    B-frames, look-ahead or frame threads, which hold frames back), for frames that come
    seldom: a frame held back a few seconds is not on disk for those seconds."""
    if codec.endswith("_nvenc"):
        options = {"rc": "vbr", "cq": str(crf), "preset": NVENC_PRESETS.get(preset, "p4")}
        return options | ({"zerolatency": "1", "delay": "0"} if no_delay else {})
    return {"crf": str(crf), "preset": preset} | ({"tune": "zerolatency"} if no_delay else {})


def frames_us(rate: Fraction, frames: int) -> int:
    """Fragments of `frames` frames at `rate` frames a second of video, `FRAGMENT_US` at
    most: their length in microseconds of video (FFmpeg's `frag_duration`). FFmpeg writes a
    fragment when the next frame comes that long after its first."""
    return min(FRAGMENT_US, math.floor(Fraction(frames * 1_000_000) / rate))


def fragment_us(rate: Fraction, frame_gap_s: float | None) -> int:
    """The fragments' length (microseconds of video) of a file at `rate` frames a second of
    video whose frames come `frame_gap_s` seconds apart (None: no further apart than its
    frame rate): `FRAGMENT_US`, or, when that much video would take longer to come, as many
    frames as come in `FRAGMENT_US`, one at least (`frames_us`)."""
    if not frame_gap_s:
        return FRAGMENT_US
    return frames_us(rate, max(1, math.floor(FRAGMENT_US / 1e6 / frame_gap_s)))


@dataclass(frozen=True)
class Pacing:
    """How far apart in wall time a camera's frames come to one file: `frame_gap_s`, always
    (frame-rate limiting, a slow detector; None: no further apart than the video's frame
    rate), and `still_gap_s`, at most, while motion gating finds the scene still (None: no
    gating); `live`: a live camera's, which can come further apart than they did when its
    file opened (a detector falling behind). Settles the file's fragments, and whether its
    encoder may hold frames back."""

    frame_gap_s: float | None = None
    still_gap_s: float | None = None
    live: bool = False

    def fragment_us(self, rate: Fraction) -> int:
        """The fragments' length: a live camera's a frame, since a file's fragments are
        fixed when it opens and a second of video can take far longer to come later; a
        file's for the longest gap (`fragment_us`), so that a still scene's frame is on
        disk, at the latest, when the next one comes."""
        if self.live:
            return frames_us(rate, 1)
        gaps = [gap for gap in (self.frame_gap_s, self.still_gap_s) if gap]
        return fragment_us(rate, max(gaps, default=None))

    def no_delay(self, rate: Fraction) -> bool:
        """Whether the encoder must hold no frame back: every frame comes further apart than
        the video's frame rate. A gated camera's frames come at that rate whenever something
        moves, where B-frames and look-ahead keep its files up to 44 % smaller at slower
        presets; in a still scene its encoder holds back a few frames of it (docs/video.md)."""
        return fragment_us(rate, self.frame_gap_s) < FRAGMENT_US

    def holds_back_live_frames(self, rate: Fraction) -> bool:
        """Whether the encoder holds back frames of a live camera that is not motion-gated:
        frames that slow down after the file opened (a detector falling behind) then end the
        file early (`sinks.video.slowdown`). A gated camera's frames slow down in each still
        scene, where its encoder's delay is meant (`no_delay`)."""
        return self.live and self.still_gap_s is None and not self.no_delay(rate)


@dataclass(frozen=True)
class Encoding:
    """How the video sink encodes its files: the H.264 encoder (`codec`: libx264, or an
    NVENC one), its quality (`crf`: lower is better and larger; NVENC's cq) and speed
    (`preset`, x264's names), fragmented MP4 (playable after a crash) or a classic one,
    and the encoder's threads per file (`threads`, 0: `encoder_threads` chooses)."""

    codec: str = "libx264"
    crf: int = 23
    preset: str = "ultrafast"
    fragmented: bool = True
    threads: int = 0
    width: int | None = None
    """The files' width: larger frames are scaled down to it (`size_for`); None: theirs."""

    def __post_init__(self) -> None:
        if self.threads < 0:
            raise ValueError(f"video encoding threads must be >= 0, got {self.threads}")
        if self.width is not None and (self.width < 2 or self.width % 2):
            raise ValueError(f"video width must be even and at least 2, got {self.width}")

    def size_for(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the files of frames of `width` x `height`: even (H.264 4:2:0
        takes even sizes; an odd row or column is cropped), and scaled down to `width`
        where that is smaller, the height in the frame's aspect, even."""
        if self.width is None or self.width >= width - width % 2:
            return width - width % 2, height - height % 2
        return self.width, max(2, 2 * round(self.width * height / width / 2))

    def options(self, no_delay: bool = False) -> dict[str, str]:
        """The encoder's FFmpeg options (`encoder_options`)."""
        return encoder_options(self.codec, self.crf, self.preset, no_delay)

    @property
    def encoder_threads(self) -> int:
        """The encoder's threads per file: `threads`, or for 0 one where this process may use
        at most 2 cores (`usable_cores`; x264's extra threads cost more CPU than they save
        there; docs/performance.md), else 0, FFmpeg's choice."""
        return self.threads or (1 if usable_cores() <= 2 else 0)


@dataclass(frozen=True)
class Geometry:
    """What every file of one camera's stream shares: its size, its frames a second of video
    and how far apart (seconds of the stream) its settings leave its frames (`StreamInfo`'s
    `frame_gap_s` and `still_gap_s`), and whether it is live."""

    width: int
    height: int
    rate: Fraction
    pacing: Pacing = Pacing()


class CheckedFile(io.FileIO):
    """A file PyAV writes through: every byte written, or an error kept in `failure`."""

    failure: OSError | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data).cast("B")
        try:
            while view:
                view = view[super().write(view) or 0 :]
        except OSError as exc:
            self.failure = self.failure or exc
            raise
        return len(data)

    def check(self) -> None:
        """Raise the first write that failed, if any did."""
        if self.failure is not None:
            raise self.failure


def keep_whole_boxes(path: Path) -> None:
    """Cut `path` after its last whole top-level MP4 box, a fragment's `moof` counting only
    with the `mdat` after it: what a write the disk refused left half-done goes (its room
    with it), and every frame left in the file is whole."""
    with path.open("r+b") as f:
        size = os.fstat(f.fileno()).st_size
        offset = keep = 0
        while offset + 8 <= size:
            f.seek(offset)
            header = f.read(16)
            length = int.from_bytes(header[:4], "big")
            if length == 1:  # a 64-bit size follows the type
                length = int.from_bytes(header[8:16], "big")
            elif length == 0:  # the box runs to the end of the file
                length = size - offset
            if length < 8 or offset + length > size:
                break
            offset += length
            if header[4:8] != b"moof":
                keep = offset
        if keep < size:
            f.truncate(keep)


def frames_in(path: Path) -> int:
    """How many video frames `path` holds, up to the first it cannot read (0: none, or no
    playable file: a classic MP4 without its index)."""
    count = 0
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return 0
            for packet in container.demux(video=0):
                count += packet.size > 0  # the demuxer ends with an empty packet
    except (av.FFmpegError, OSError, ValueError) as exc:
        log.debug("video sink: %s readable up to frame %d: %s", path, count, exc)
    return count


def cut_back(path: Path) -> tuple[int, str]:
    """Cut a file an error stopped back to what plays (`keep_whole_boxes`), or remove it
    when nothing does: the frames it holds, and what became of it."""
    try:
        keep_whole_boxes(path)
    except OSError as trim_error:
        why = failure_reason(trim_error, path)
        log.warning("video sink: cannot trim %s to its whole fragments: %s", path, why)
    held = frames_in(path)
    if held:
        return held, f"the file is kept, playable up to where it stopped ({held} frames)"
    try:
        path.unlink(missing_ok=True)
    except OSError as unlink_error:
        why = failure_reason(unlink_error, path)
        return 0, f"the file holds no frame, and cannot be removed: {why}"
    return 0, "the file held no frame and was removed"


def failure_reason(exc: BaseException, path: Path) -> str:
    """Why writing `path` failed, in a few words ("disk full: the file system at ...")."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return write_failure(exc, path)
    return " ".join(str(exc).split()) or type(exc).__name__


class SegmentFile:
    """One open MP4: encoder, container and frame counter; its fragments and encoder delay
    are those of `pacing`, how far apart its frames come (`Pacing`). FFmpeg fixes a
    fragment's length, in seconds of video, when the file opens (`frag_duration`): ending
    one on demand takes `av_write_frame(NULL)`, which PyAV does not offer."""

    def __init__(
        self, path: Path, geometry: Geometry, encoding: Encoding, pacing: Pacing = Pacing()
    ) -> None:
        self.path = path
        self.geometry = geometry
        self.frames = 0
        fragment_length_us = pacing.fragment_us(geometry.rate)
        container_options = (
            {
                "movflags": "empty_moov+default_base_moof",
                "frag_duration": str(fragment_length_us),
                # Hand each finished fragment to the OS at once, not when a 32 kB buffer fills.
                "flush_packets": "1",
            }
            if encoding.fragmented
            else {}
        )
        self.file = CheckedFile(path, "w")
        try:
            self.container = av.open(self.file, mode="w", format="mp4", options=container_options)
        except BaseException:
            self.file.close()
            raise
        try:
            stream = self.container.add_stream(encoding.codec, rate=geometry.rate)
            if not isinstance(stream, av.VideoStream):
                raise ValueError(f"{encoding.codec!r} is not a video codec")
            self.stream = stream
            self.stream.width = geometry.width
            self.stream.height = geometry.height
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.time_base = 1 / geometry.rate
            stream_options: dict[str, object] = dict(
                encoding.options(no_delay=pacing.no_delay(geometry.rate))
            )
            self.stream.options = stream_options
            if threads := encoding.encoder_threads:
                self.stream.codec_context.thread_count = threads
            # Open the encoder now, not at the first frame: a codec that cannot run here
            # (NVENC without an NVIDIA GPU) fails as "cannot open", naming the codec.
            self.stream.codec_context.open()
        except BaseException:
            self.abandon()
            raise

    def encode(self, image: npt.NDArray[np.uint8]) -> None:
        """Encode one RGB uint8 [H, W, 3] image as the next frame."""
        g = self.geometry
        height, width = image.shape[:2]
        if (width - width % 2, height - height % 2) == (g.width, g.height):
            image = image[: g.height, : g.width]  # an odd row or column cropped
        else:  # scaled to the file's size (`Encoding.size_for`)
            resized = cv2.resize(image, (g.width, g.height), interpolation=cv2.INTER_AREA)
            image = np.asarray(resized, dtype=np.uint8)
        # OpenCV's SIMD RGB -> YUV 4:2:0 (BT.601, the same as FFmpeg's default here) is about
        # twice as fast as letting the encoder's swscale convert rgb24.
        yuv = np.asarray(
            cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2YUV_I420), dtype=np.uint8
        )
        frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
        frame.pts = self.frames
        frame.time_base = 1 / g.rate
        for packet in self.stream.encode(frame):
            self.container.mux(packet)
        self.file.check()
        self.frames += 1

    def finish(self) -> None:
        """Flush the encoder and write the file's trailer; raise what failed on the way."""
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            try:
                self.container.close()
            finally:
                self.file.close()
        self.file.check()

    def abandon(self) -> None:
        """Release the container after a failure, keeping the first error as the one raised."""
        try:
            self.container.close()
        except (av.FFmpegError, OSError) as exc:
            log.debug("video sink: closing %s after a failure: %s", self.path, exc)
        finally:
            self.file.close()
