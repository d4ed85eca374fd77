"""Annotated H.264 MP4 per camera, written with PyAV.

One file per camera and run: `<directory>/<camera_id>_<run start %Y%m%d-%H%M%S>.mp4`
(characters of the camera id that are unsafe in file names become `_`; a camera started
again in the same run gets `-2`, `-3`... appended). Frame `k` written for a camera gets
pts `k` in units of 1/frame_rate, so the file has exactly one frame per input frame at the
input's frame rate, whatever the input's own timestamps were.

H.264 with yuv420p needs an even width and height: an odd-sized input is cropped by its
last column and/or row (e.g. 161x121 is written as 160x120). A frame whose size differs
from the size the camera started with is resized to it.
"""

from __future__ import annotations

import logging
import re
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


class _CameraFile:
    """One camera's open MP4: encoder, container and frame counter."""

    def __init__(
        self,
        camera_id: str,
        path: Path,
        info: StreamInfo,
        rate: Fraction,
        codec: str,
        options: dict[str, str],
    ) -> None:
        self.camera_id = camera_id
        self.path = path
        self.width = info.width - info.width % 2
        self.height = info.height - info.height % 2
        if self.width <= 0 or self.height <= 0:
            raise SinkError(
                f"video sink: camera {camera_id!r} has size {info.width}x{info.height}; "
                "need at least 2x2 to write a video"
            )
        self.rate = rate
        self.frames = 0
        self.container = av.open(str(path), mode="w")
        try:
            stream = self.container.add_stream(codec, rate=rate)
            if not isinstance(stream, av.VideoStream):
                raise ValueError(f"{codec!r} is not a video codec")
            self.stream = stream
            self.stream.width = self.width
            self.stream.height = self.height
            self.stream.pix_fmt = "yuv420p"
            self.stream.codec_context.time_base = 1 / rate
            stream_options: dict[str, object] = dict(options)
            self.stream.options = stream_options
        except BaseException:
            self.container.close()
            raise

    def encode(self, image: npt.NDArray[np.uint8]) -> None:
        """Encode one RGB uint8 [H, W, 3] image as the next frame."""
        image = image[: self.height, : self.width]
        if image.shape[0] != self.height or image.shape[1] != self.width:
            resized = cv2.resize(image, (self.width, self.height), interpolation=cv2.INTER_AREA)
            image = np.asarray(resized, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames
        frame.time_base = 1 / self.rate
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
    """Writes each camera's frames, with boxes and captions drawn, to an H.264 MP4."""

    name = "video"

    def __init__(
        self,
        directory: Path,
        labels: LabelMap,
        *,
        run_started: datetime,
        codec: str = "libx264",
        crf: int = 23,
        preset: str = "veryfast",
    ) -> None:
        self._directory = Path(directory)
        self._labels = labels
        self._stamp = run_started.strftime("%Y%m%d-%H%M%S")
        self._codec = codec
        self._options = {"crf": str(crf), "preset": preset}
        self._open: dict[str, _CameraFile] = {}
        self._paths: dict[str, Path] = {}
        self._used: set[Path] = set()

    @property
    def paths(self) -> dict[str, Path]:
        """File of each camera started so far (cameras that wrote no frame have none)."""
        return dict(self._paths)

    def start(self, info: StreamInfo) -> None:
        camera = info.camera_id
        if camera in self._open:
            log.warning("video sink: camera %r started again before it ended", camera)
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
        try:
            self._directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(
                f"video sink: cannot create output directory {self._directory}: {exc.strerror}"
            ) from exc
        path = self._new_path(camera)
        try:
            self._open[camera] = _CameraFile(camera, path, info, rate, self._codec, self._options)
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(
                f"video sink: cannot open {path} for camera {camera!r} "
                f"with codec {self._codec!r}: {_reason(exc)}"
            ) from exc
        self._paths[camera] = path

    def write(self, result: FrameResult) -> None:
        camera = result.frame.camera_id
        file = self._open.get(camera)
        if file is None:
            raise SinkError(f"video sink: frame for camera {camera!r} before its stream started")
        image = annotate(result.frame.image, result.detections, self._labels)
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

    def _finish(self, camera: str) -> None:
        file = self._open.pop(camera)
        try:
            file.finish()
        except (av.FFmpegError, OSError, ValueError) as exc:
            raise SinkError(
                f"video sink: cannot finish {file.path} for camera {camera!r}: {_reason(exc)}"
            ) from exc
        if file.frames == 0:
            # PyAV creates the file only when the first packet is muxed.
            log.warning("video sink: camera %r wrote no frames; no file %s", camera, file.path)
            self._paths.pop(camera, None)
        else:
            log.info("video sink: wrote %d frames to %s", file.frames, file.path)

    def _new_path(self, camera: str) -> Path:
        base = f"{_UNSAFE.sub('_', camera)}_{self._stamp}"
        path = self._directory / f"{base}.mp4"
        n = 1
        while path in self._used:
            n += 1
            path = self._directory / f"{base}-{n}.mp4"
        self._used.add(path)
        return path


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
