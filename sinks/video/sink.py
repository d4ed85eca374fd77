"""`VideoSink`: each camera's annotated frames as H.264 MP4 files, rotated and pruned.

With `segment_s` a camera's video is cut into files of that much video each (a new file
starts on the next frame); `max_age_s` / `max_segments` delete the camera's oldest finished
files. H.264 with yuv420p needs an even width and height: an odd-sized input is cropped by
its last column and/or row (161x121 is written as 160x120). A frame whose size differs from
the size the camera started with is resized to it. How a file is encoded:
`sinks.video.encoding`; how files are named and pruned: `sinks.video.files`.
"""

from __future__ import annotations

import logging
import math
import os
from fractions import Fraction
from pathlib import Path

import av

from pipeline.types import FrameResult, LabelMap, StreamEnd, StreamInfo
from sinks.base import Sink, SinkError
from sinks.disk import write_failure
from sinks.draw import annotate
from sinks.video.encoding import Geometry, SegmentFile, encoder_options, plays
from sinks.video.files import prune_segments, segment_path

log = logging.getLogger(__name__)

_FALLBACK_RATE = Fraction(25)


class VideoSink(Sink):
    """Writes each camera's frames, with boxes and captions drawn, to H.264 MP4 files.

    `segment_s`: start a new file after this many seconds of video (None: one file per
    stream). `max_age_s` / `max_segments`: after each file is finished, delete the camera's
    files last modified more than `max_age_s` ago, and all but its `max_segments` newest.
    `fragmented`: write fragmented MP4 (playable after a crash); False for a classic MP4.
    `threads`: encoder threads per file; 0 is one on machines with at most 2 cores (x264's
    extra threads cost more CPU than they save there; docs/performance.md), FFmpeg's choice
    elsewhere.
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
        self._geometry: dict[str, Geometry] = {}
        self._open: dict[str, SegmentFile] = {}
        self._written: dict[str, list[Path]] = {}
        self._used: set[Path] = set()
        self.deleted: list[Path] = []
        """Files removed by retention during this run."""
        self.cut_short: list[Path] = []
        """Files an error stopped (disk full...), kept because they play up to it."""

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
        cut = f", {len(self.cut_short)} cut short by an error" if self.cut_short else ""
        pruned = f", {len(self.deleted)} old files deleted" if self.deleted else ""
        return f"video {self._directory}: {count} file(s){cut}{pruned}"

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
                f"video sink: cannot create output directory {self._directory}: "
                f"{_reason(exc, self._directory)}"
            ) from exc
        self._geometry[camera] = Geometry(width, height, rate)
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
                f"video sink: cannot write camera {camera!r} to {file.path}: "
                f"{_reason(exc, file.path)}; {self._keep_cut_short(camera, file)}"
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

    def _segment_full(self, file: SegmentFile) -> bool:
        if self._segment_s is None:
            return False
        limit = max(1, math.ceil(self._segment_s * file.geometry.rate))
        return file.frames >= limit

    def _open_segment(self, camera: str, geometry: Geometry, wall_time: float) -> SegmentFile:
        path = segment_path(self._directory, camera, wall_time, self._used)
        self._used.add(path)
        try:
            file = SegmentFile(
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
                f"with codec {self._codec!r}: {_reason(exc, path)}{hint}"
            ) from exc
        self._open[camera] = file
        return file

    def _finish(self, camera: str) -> None:
        file = self._open.pop(camera)
        try:
            file.finish()
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(
                f"video sink: cannot finish {file.path} for camera {camera!r}: "
                f"{_reason(exc, file.path)}; {self._keep_cut_short(camera, file)}"
            ) from exc
        self._written.setdefault(camera, []).append(file.path)
        log.info("video sink: wrote %d frames to %s", file.frames, file.path)
        self._prune(camera)

    def _keep_cut_short(self, camera: str, file: SegmentFile) -> str:
        """Count a file an error stopped if it plays, remove it if not; says which."""
        if plays(file.path):
            self._written.setdefault(camera, []).append(file.path)
            self.cut_short.append(file.path)
            return "the file is kept, playable up to where it stopped"
        try:
            file.path.unlink(missing_ok=True)
        except OSError as exc:
            return f"the file holds no frame, and cannot be removed: {_reason(exc, file.path)}"
        return "the file held no frame and was removed"

    def _prune(self, camera: str) -> None:
        """Delete the camera's finished files that retention no longer keeps."""
        open_file = self._open.get(camera)
        self.deleted += prune_segments(
            self._directory,
            camera,
            max_age_s=self._max_age_s,
            max_segments=self._max_segments,
            keep=open_file.path if open_file is not None else None,
        )


def _reason(exc: BaseException, path: Path) -> str:
    if isinstance(exc, OSError) and exc.errno is not None:
        return write_failure(exc, path)  # "disk full: the file system at ..." when it is
    return " ".join(str(exc).split()) or type(exc).__name__
