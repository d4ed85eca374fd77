"""Annotated H.264 MP4 per camera, written with PyAV, with optional rotation and retention.

Files are `<directory>/<camera_id>_<start %Y%m%d-%H%M%S>.mp4`, the start being the wall time
(local) of the file's first frame; characters of the camera id that are unsafe in file names
become `_`, and a name already taken gets `-2`, `-3`... appended. With `segment_s` a camera's
video is cut into files of that much video each (a new file starts on the next frame);
`max_age_s` / `max_segments` delete the camera's oldest finished files.

Frame `k` of a file gets pts `k` in units of 1/frame_rate, so a file has exactly one frame per
input frame at the input's frame rate, whatever the input's own timestamps were.

Files are fragmented MP4 by default (a fragment per second of video, flushed as written): a
file stays playable up to its last second even when the process is killed; a normal end
writes the index that makes it seekable. H.264 with yuv420p needs an even width and height:
an odd-sized input is cropped by its last column and/or row (161x121 is written as 160x120).
A frame whose size differs from the size the camera started with is resized to it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from pipeline.types import FrameResult, LabelMap, StreamEnd, StreamInfo
from sinks.base import Sink, SinkError
from sinks.draw import annotate

log = logging.getLogger(__name__)

_FALLBACK_RATE = Fraction(25)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_STAMP = "%Y%m%d-%H%M%S"
FRAGMENT_US = 1_000_000
"""Length of one MP4 fragment in microseconds: at most this much video is lost on a kill."""


NVENC_PRESETS = {
    "ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p4",
    "fast": "p5", "medium": "p5", "slow": "p6", "slower": "p7",
}  # fmt: skip
"""x264 preset names -> NVENC's p1 (fastest) .. p7 (best compression)."""


def encoder_options(codec: str, crf: int, preset: str) -> dict[str, str]:
    """FFmpeg options for `codec` from the x264-style quality and speed settings: libx264
    takes them as they are; NVENC gets constant quality `crf` (`cq`) and the matching
    p1..p7 preset."""
    if codec.endswith("_nvenc"):
        return {"rc": "vbr", "cq": str(crf), "preset": NVENC_PRESETS.get(preset, "p4")}
    return {"crf": str(crf), "preset": preset}


def safe_name(camera: str) -> str:
    """The camera id as used in file names."""
    return _UNSAFE.sub("_", camera)


def segment_pattern(camera: str) -> re.Pattern[str]:
    """Matches the names of the files this sink writes for `camera` (and nothing else)."""
    return re.compile(rf"^{re.escape(safe_name(camera))}_\d{{8}}-\d{{6}}(-\d+)?\.mp4$")


_ANY_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+_\d{8}-\d{6}(-\d+)?\.mp4$")


def delete_old_videos(
    directory: str | Path, before: float, *, dry_run: bool = False
) -> list[Path]:
    """Delete the video files of this sink in `directory` last modified before `before`.

    `before` is Unix time. Only files named like this sink's (`<camera>_<stamp>.mp4`) are
    touched. Returns the files deleted (or, with `dry_run`, those that would be).
    """
    folder = Path(directory)
    old = sorted(
        p for p in folder.iterdir()
        if _ANY_SEGMENT.match(p.name) and p.is_file() and p.stat().st_mtime < before
    )
    if not dry_run:
        for path in old:
            path.unlink(missing_ok=True)
    return old


@dataclass(frozen=True)
class _Geometry:
    """What every file of one camera's stream shares."""

    width: int
    height: int
    rate: Fraction


class _SegmentFile:
    """One open MP4: encoder, container and frame counter."""

    def __init__(
        self,
        path: Path,
        geometry: _Geometry,
        codec: str,
        options: dict[str, str],
        fragmented: bool,
        threads: int = 0,
    ) -> None:
        self.path = path
        self.geometry = geometry
        self.frames = 0
        container_options = (
            {
                "movflags": "empty_moov+default_base_moof",
                "frag_duration": str(FRAGMENT_US),
                # Hand each finished fragment to the OS at once, not when a 32 kB buffer fills.
                "flush_packets": "1",
            }
            if fragmented
            else {}
        )
        self.container = av.open(str(path), mode="w", format="mp4", options=container_options)
        try:
            stream = self.container.add_stream(codec, rate=geometry.rate)
            if not isinstance(stream, av.VideoStream):
                raise ValueError(f"{codec!r} is not a video codec")
            self.stream = stream
            self.stream.width = geometry.width
            self.stream.height = geometry.height
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.time_base = 1 / geometry.rate
            stream_options: dict[str, object] = dict(options)
            self.stream.options = stream_options
            if threads:
                self.stream.codec_context.thread_count = threads
            # Open the encoder now, not at the first frame: a codec that cannot run here
            # (NVENC without an NVIDIA GPU) fails as "cannot open", naming the codec.
            self.stream.codec_context.open()
        except BaseException:
            self.container.close()
            raise

    def encode(self, image: npt.NDArray[np.uint8]) -> None:
        """Encode one RGB uint8 [H, W, 3] image as the next frame."""
        g = self.geometry
        image = image[: g.height, : g.width]
        if image.shape[0] != g.height or image.shape[1] != g.width:
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
        self.frames += 1

    def finish(self) -> None:
        """Flush the encoder and write the file's trailer."""
        try:
            for packet in self.stream.encode(None):
                self.container.mux(packet)
        finally:
            self.container.close()

    def abandon(self) -> None:
        """Release the container after a failure, keeping the first error as the one raised."""
        try:
            self.container.close()
        except (av.FFmpegError, OSError) as exc:
            log.debug("video sink: closing %s after a failure: %s", self.path, exc)


class VideoSink(Sink):
    """Writes each camera's frames, with boxes and captions drawn, to H.264 MP4 files.

    `segment_s`: start a new file after this many seconds of video (None: one file per
    stream). `max_age_s` / `max_segments`: after each file is finished, delete the camera's
    files last modified more than `max_age_s` ago, and all but its `max_segments` newest.
    `fragmented`: write fragmented MP4 (playable after a crash); False for a classic MP4.
    `threads`: encoder threads per file; 0 is one on machines with at most 2 cores (x264's
    extra threads cost more CPU than they save there: 6.6 against 8.4 ms per 768x576 frame),
    FFmpeg's choice elsewhere.
    """

    name = "video"
    wants_every_frame = True

    def __init__(
        self,
        directory: Path,
        labels: LabelMap,
        *,
        codec: str = "libx264",
        crf: int = 23,
        preset: str = "ultrafast",
        segment_s: float | None = None,
        max_age_s: float | None = None,
        max_segments: int | None = None,
        fragmented: bool = True,
        threads: int = 0,
    ) -> None:
        if threads < 0:
            raise ValueError(f"VideoSink threads must be >= 0, got {threads}")
        for what, value in (("segment_s", segment_s), ("max_age_s", max_age_s)):
            if value is not None and not value > 0:
                raise ValueError(f"VideoSink {what} must be > 0, got {value}")
        if max_segments is not None and max_segments < 1:
            raise ValueError(f"VideoSink max_segments must be >= 1, got {max_segments}")
        self._directory = Path(directory)
        self._labels = labels
        self._codec = codec
        self._options = encoder_options(codec, crf, preset)
        self._segment_s = segment_s
        self._max_age_s = max_age_s
        self._max_segments = max_segments
        self._fragmented = fragmented
        self._threads = threads or (1 if (os.cpu_count() or 1) <= 2 else 0)
        self._geometry: dict[str, _Geometry] = {}
        self._open: dict[str, _SegmentFile] = {}
        self._written: dict[str, list[Path]] = {}
        self._used: set[Path] = set()
        self.deleted: list[Path] = []
        """Files removed by retention during this run."""

    @property
    def paths(self) -> dict[str, Path]:
        """Latest file of each camera that wrote a frame."""
        return {camera: files[-1] for camera, files in self._written.items() if files}

    @property
    def files(self) -> dict[str, list[Path]]:
        """Every file written per camera during this run, oldest first."""
        return {camera: list(files) for camera, files in self._written.items()}

    def describe(self) -> str:
        """One line for the run summary."""
        count = sum(len(f) for f in self._written.values())
        pruned = f", {len(self.deleted)} old files deleted" if self.deleted else ""
        return f"video {self._directory}: {count} file(s){pruned}"

    def start(self, info: StreamInfo) -> None:
        camera = info.camera_id
        if camera in self._open:  # a live camera that reconnected: a new file
            log.info("video sink: camera %r started again; starting a new file", camera)
            self._finish(camera)
        rate = info.frame_rate
        if not rate or rate <= 0:
            log.warning(
                "video sink: camera %r has no usable frame rate (%s); writing at %s fps",
                camera, rate, _FALLBACK_RATE,
            )
            rate = _FALLBACK_RATE
        # libx264/mp4 want a time base with a reasonable denominator.
        rate = Fraction(rate).limit_denominator(1001 * 1000)
        width, height = info.width - info.width % 2, info.height - info.height % 2
        if width <= 0 or height <= 0:
            raise SinkError(
                f"video sink: camera {camera!r} has size {info.width}x{info.height}; "
                "need at least 2x2 to write a video"
            )
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(
                f"video sink: cannot create output directory {self._directory}: {exc.strerror}"
            ) from exc
        self._geometry[camera] = _Geometry(width, height, rate)
        self._prune(camera)

    def write(self, result: FrameResult) -> None:
        frame = result.frame
        camera = frame.camera_id
        geometry = self._geometry.get(camera)
        if geometry is None:
            raise SinkError(f"video sink: frame for camera {camera!r} before its stream started")
        file = self._open.get(camera)
        if file is not None and self._segment_full(file):
            self._finish(camera)
            file = None
        if file is None:
            file = self._open_segment(camera, geometry, frame.wall_time)
        image = annotate(frame.image, result.detections, self._labels)
        try:
            file.encode(image)
        except (av.FFmpegError, OSError, ValueError) as exc:
            del self._open[camera]
            file.abandon()
            raise SinkError(
                f"video sink: cannot write camera {camera!r} to {file.path}: {_reason(exc)}"
            ) from exc

    def end(self, stream_end: StreamEnd) -> None:
        if stream_end.camera_id in self._open:
            self._finish(stream_end.camera_id)
        self._geometry.pop(stream_end.camera_id, None)

    def close(self) -> None:
        """Finalise every camera still open; raises the first failure after trying all."""
        first_error: SinkError | None = None
        for camera in list(self._open):
            try:
                self._finish(camera)
            except SinkError as exc:
                log.error("%s", exc)
                first_error = first_error or exc
        if first_error is not None:
            raise first_error

    # -------------------------------------------------------------------- internals

    def _segment_full(self, file: _SegmentFile) -> bool:
        if self._segment_s is None:
            return False
        limit = max(1, math.ceil(self._segment_s * file.geometry.rate))
        return file.frames >= limit

    def _open_segment(self, camera: str, geometry: _Geometry, wall_time: float) -> _SegmentFile:
        path = self._new_path(camera, wall_time)
        try:
            file = _SegmentFile(
                path, geometry, self._codec, self._options, self._fragmented, self._threads
            )
        except (av.FFmpegError, OSError, ValueError) as exc:
            path.unlink(missing_ok=True)  # the container may have created it, empty
            hint = (
                " (NVENC needs an NVIDIA GPU with a video encoder, which the H100, H200 and "
                "A100 lack, and its driver; codec libx264 encodes on the CPU)"
                if "nvenc" in self._codec
                else ""
            )
            raise SinkError(
                f"video sink: cannot open {path} for camera {camera!r} "
                f"with codec {self._codec!r}: {_reason(exc)}{hint}"
            ) from exc
        self._open[camera] = file
        return file

    def _finish(self, camera: str) -> None:
        file = self._open.pop(camera)
        try:
            file.finish()
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(
                f"video sink: cannot finish {file.path} for camera {camera!r}: {_reason(exc)}"
            ) from exc
        self._written.setdefault(camera, []).append(file.path)
        log.info("video sink: wrote %d frames to %s", file.frames, file.path)
        self._prune(camera)

    def _prune(self, camera: str) -> None:
        """Delete the camera's finished files that retention no longer keeps."""
        if self._max_age_s is None and self._max_segments is None:
            return
        pattern = segment_pattern(camera)
        open_file = self._open.get(camera)
        keep_open = open_file.path if open_file is not None else None
        try:
            candidates = [
                p for p in self._directory.iterdir() if pattern.match(p.name) and p != keep_open
            ]
            aged = sorted(((p.stat().st_mtime, p) for p in candidates), reverse=True)
        except OSError as exc:
            log.warning("video sink: cannot list %s for retention: %s", self._directory, exc)
            return
        now = time.time()
        doomed: list[Path] = []
        for rank, (mtime, path) in enumerate(aged):
            too_old = self._max_age_s is not None and now - mtime > self._max_age_s
            too_many = self._max_segments is not None and rank >= self._max_segments
            if too_old or too_many:
                doomed.append(path)
        for path in doomed:
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as exc:
                log.warning("video sink: cannot delete old file %s: %s", path, exc.strerror)
                continue
            self.deleted.append(path)
            log.info("video sink: deleted %s (retention)", path)

    def _new_path(self, camera: str, wall_time: float) -> Path:
        stamp = datetime.fromtimestamp(wall_time).strftime(_STAMP)
        base = f"{safe_name(camera)}_{stamp}"
        path = self._directory / f"{base}.mp4"
        n = 1
        while path in self._used or path.exists():
            n += 1
            path = self._directory / f"{base}-{n}.mp4"
        self._used.add(path)
        return path


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
