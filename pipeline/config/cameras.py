"""The `cameras:` section: each camera's source (file, stream, device, images) and reading."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from pipeline.config.base import ONE_BYTE_MB, Strict, name_fits
from pipeline.config.safe_yaml import path_repr, short_repr
from pipeline.config.scene import AnalyticsConfig, LineConfig, ZoneConfig, check_scene_ids
from pipeline.config.video_files import (
    empty_file,
    missing_file,
    unreadable_file,
    video_header_problem,
)
from pipeline.folders import LINK_LOOP, file_kind
from pipeline.types import frame_size_problem
from pipeline.urls import STREAM_SCHEMES, address_problem, infer_kind, mask_credentials

CHECK_SOURCES = "check_sources"
"""Validation context key: False leaves out the checks that files and folders exist.

`validate` checks them; `run` does not, so that a camera whose file is missing fails alone
(`Pipeline.run` asks `Source.problem` before it sets up its detector), like a camera whose
file is unreadable, and the others run.
"""


PROBE_SOURCES = "probe_sources"
"""Validation context key: True also opens each file source and decodes its first frame, and
reads the first image of each image source, as their readers would (only `validate` does: it
takes a file the size of a frame or two, and tests' stand-in files hold no video)."""


FileProbe = Callable[[str], None]
"""Checks that the file at a path (as the config names it) is a video: raises NotAVideoError
saying why not."""

FILE_PROBE = "file_probe"
"""Validation context key: the `FileProbe` of file sources, when sources are probed:
`probe_first_frame` unless `validate` hands the start of its whole decode
(`pipeline.decode_check`), so that it opens each file once."""


def probe_first_frame(path: str) -> None:
    """Decodes the first frame of the video file at `path`; raises NotAVideoError saying why
    it cannot, ValueError for frames larger than a camera may have (`frame_size_problem`)."""
    from detector.clip_frames import sample_frames

    (first,) = sample_frames(Path(path).expanduser(), count=1)
    if (problem := frame_size_problem(first.shape[1], first.shape[0])) is not None:
        raise ValueError(problem)


def checks_sources(info: ValidationInfo) -> bool:
    """Whether this validation checks that sources on disk exist (it does by default)."""
    return bool((info.context or {}).get(CHECK_SOURCES, True))


def probes_sources(info: ValidationInfo) -> bool:
    """Whether this validation reads what sources on disk hold (it does not by default)."""
    return checks_sources(info) and bool((info.context or {}).get(PROBE_SOURCES, False))


def not_a_file(path: str) -> str | None:
    """Why a file source cannot be read although something is at `path` (as the config names
    it): a folder, a device, a named pipe (FIFO), which FFmpeg would wait on for a writer
    forever, or a link that leads back to itself (`link_loop`); None for a regular file, or
    nothing there (which opening it says). `validate` says it at the source's YAML path;
    `run` fails the camera with it before its set-up
    (`pipeline.sources.video_file_problem`)."""
    kind = file_kind(Path(path))
    if kind in ("file", "missing"):
        return None
    return f"{LINK_LOOP + ', ' if kind == 'loop' else ''}not a file: {path_repr(path)}"


class FileSourceConfig(Strict):
    type: Literal["file"] = Field(description="A video file (anything FFmpeg reads).")
    path: str = Field(min_length=1, description="Path of the video file.")
    realtime: bool = Field(
        False, description="Play at the file's own frame rate, as a camera would deliver it."
    )
    loop: bool = Field(False, description="Start again at the end, forever.")

    @field_validator("path")
    @classmethod
    def _readable_file(cls, value: str, info: ValidationInfo) -> str:
        if not checks_sources(info):
            return name_fits(value)
        name_fits(value)
        shown = path_repr(value)  # one line, whatever the path holds (a newline from ${ENV})
        if (problem := not_a_file(value)) is not None:  # first: exists() is False for a link loop
            raise ValueError(problem)
        problem = missing_file(value) or unreadable_file(value) or empty_file(value)
        if problem is not None:
            raise ValueError(problem)
        if probes_sources(info):
            from detector.clip_frames import NotAVideoError

            probe = (info.context or {}).get(FILE_PROBE, probe_first_frame)
            try:
                probe(value)
            except NotAVideoError as exc:
                # in `run`'s words where its look at the header finds it (it opens the file
                # again only then: a good file is opened once)
                why = video_header_problem(value) or f"not a video ({exc}): {shown}"
                raise ValueError(why) from None
        return value


class StreamSourceConfig(Strict):
    type: Literal["stream"] = Field(
        description="A network stream: RTSP, HTTP, RTMP, TCP, UDP, SRT."
    )
    url: str = Field(
        min_length=1,
        description="Stream URL, e.g. rtsp://user:${CAM_PASSWORD}@192.0.2.10/stream1.",
    )
    options: dict[str, str] = Field(
        default_factory=dict,
        description="FFmpeg options, e.g. {rtsp_transport: tcp}.",
    )
    timeout_s: float = Field(
        10.0, gt=0, le=600, description="Longest wait to connect, and for data once connected."
    )

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in STREAM_SCHEMES:
            raise ValueError(
                f"unsupported stream URL {mask_credentials(value)!r}: use one of "
                f"{', '.join(s + '://' for s in sorted(STREAM_SCHEMES))}"
            )
        problem = address_problem(value)
        if problem is not None:
            raise ValueError(f"stream URL {mask_credentials(value)!r}: {problem}")
        return value


class DeviceSourceConfig(Strict):
    type: Literal["device"] = Field(description="A V4L2 capture device (USB camera, capture card).")
    path: str = Field(pattern=r"^/dev/video\d+$", description="Device node, e.g. /dev/video0.")
    width: int | None = Field(None, ge=16, le=16384, description="Capture width in pixels.")
    height: int | None = Field(None, ge=16, le=16384, description="Capture height in pixels.")
    fps: float | None = Field(None, gt=0, le=1000, description="Capture frame rate.")
    input_format: str | None = Field(
        None, min_length=1, description="Pixel format asked of the device, e.g. mjpeg or yuyv422."
    )
    options: dict[str, str] = Field(default_factory=dict, description="More FFmpeg options.")
    timeout_s: float = Field(10.0, gt=0, le=600, description="Longest wait for the device.")


class ImagesSourceConfig(Strict):
    type: Literal["images"] = Field(description="The images of a folder or glob, in name order.")
    path: str = Field(min_length=1, description="A folder, or a glob such as frames/*.jpg.")
    fps: float = Field(10.0, gt=0, le=1000, description="Frame rate the images stand for.")
    loop: bool = Field(False, description="Start again after the last image, forever.")

    @field_validator("path")
    @classmethod
    def _has_images(cls, value: str, info: ValidationInfo) -> str:
        if not checks_sources(info):
            return name_fits(value)
        if not os.path.isdir(name_fits(value)) and next(glob.iglob(value), None) is None:
            raise ValueError(f"no such folder, and no file matches: {path_repr(value)}")
        if probes_sources(info):
            from pipeline.image_source import (
                UnreadableImage,
                image_files,
                no_images,
                read_image,
                unreadable_first_image,
            )

            files = image_files(value)
            if not files:
                raise ValueError(no_images(path_repr(value)))
            try:
                read_image(files[0])
            except UnreadableImage as exc:
                raise ValueError(
                    unreadable_first_image(path_repr(str(files[0])), str(exc))
                ) from None
        return value


SourceConfig = Annotated[
    FileSourceConfig | StreamSourceConfig | DeviceSourceConfig | ImagesSourceConfig,
    Field(discriminator="type"),
]


class ReconnectConfig(Strict):
    initial_delay_s: float = Field(
        0.5, gt=0, le=600, description="Wait before the first reconnection attempt."
    )
    max_delay_s: float = Field(
        30.0, gt=0, le=3600, description="The wait doubles after each failure up to this."
    )
    jitter: float = Field(
        0.2, ge=0, le=1, description="Each wait is varied by up to this fraction, at random."
    )
    max_attempts: int = Field(
        0, ge=0, le=1_000_000, description="Give up after this many failures in a row; 0: never."
    )


class MotionConfig(Strict):
    enabled: bool = Field(
        False,
        description=(
            "Detect only frames where something moved since the last detected frame (and "
            "one every max_skip_s); the others carry the last tracked boxes."
        ),
    )
    threshold: int = Field(
        25, ge=1, le=254, description="Grey levels (0-255) a pixel must change by to count."
    )
    min_area: float = Field(
        0.001,
        gt=0,
        le=1,
        description="Smallest patch of changed pixels that is motion, as a share of the picture.",
    )
    max_skip_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="Detect at least once per this many seconds of video, moving or not.",
    )
    regions: bool = Field(
        False,
        description=(
            "Detect only the regions around what moved, each an image of its own, keeping "
            "the last boxes elsewhere; the whole frame at least every max_skip_s."
        ),
    )
    regions_max_share: float = Field(
        0.5,
        gt=0,
        le=1,
        description=(
            "With regions: detect the whole frame when the regions would cover more than "
            "this share of it."
        ),
    )

    @model_validator(mode="after")
    def _regions_need_gating(self) -> MotionConfig:
        if self.regions and not self.enabled:
            raise ValueError("regions: true needs enabled: true (regions are where it moved)")
        return self


QUEUE_MB = 1000
"""The bytes a camera's frame queue holds by default, in MB: a file's 32 frames up to 4K
(24.9 MB of RGB each, 25.2 MB with the image resized for a 320x320 network: 806 MB), so
that the batcher stays fed as before, while an 8K camera (99.5 MB a frame) buffers 10
frames, 1 GB, where 32 took 3.2 GB; a live source's 4 frames fit at any size a camera may
have (`pipeline.types.MAX_FRAME_PIXELS`)."""


class CameraConfig(Strict):
    id: str = Field(
        description="Camera id: used in event topics, file names and the database.",
        min_length=1,
        max_length=64,
    )
    source: SourceConfig = Field(
        description=(
            "A video file, a stream URL (rtsp://, http://, ...), a V4L2 device (/dev/videoN) "
            "or an image folder/glob; the kind is inferred from the string. A mapping with "
            "`type:` (file, stream, device, images) sets the kind and its options."
        )
    )
    queue_size: int | None = Field(
        None,
        ge=1,
        le=4096,
        description="Decoded frames buffered for this camera (default 32 for files, 4 live).",
    )
    queue_mb: float = Field(
        QUEUE_MB,
        ge=ONE_BYTE_MB,
        le=1_000_000,
        description="Most memory the frames buffered for this camera may take, in MB "
        "(millions of bytes; at most 1 TB); one frame is buffered however large.",
    )
    queue_policy: Literal["auto", "block", "drop_oldest"] = Field(
        "auto",
        description=(
            "When the queue is full: block the reader (nothing lost; files) or drop the "
            "oldest frame (bounded latency; live sources). auto picks by source kind."
        ),
    )
    max_fps: float | None = Field(
        None, gt=0, le=1000, description="Detect on at most this many frames per second."
    )
    detect_every: int = Field(
        1, ge=1, le=10_000, description="Detect on every Nth frame only (1: every frame)."
    )
    full_rate_video: bool = Field(
        False,
        description=(
            "Frames skipped by max_fps/detect_every/motion still go to the video sinks, drawn "
            "with the last known tracks."
        ),
    )
    motion: MotionConfig = Field(
        default_factory=MotionConfig,
        description="Motion gating: skip detection on frames where nothing moved.",
    )
    reconnect: ReconnectConfig = Field(
        default_factory=ReconnectConfig,
        description="Retry policy of live sources.",
    )
    zones: list[ZoneConfig] = Field(
        default_factory=list,
        max_length=256,
        description="Areas of the picture: tracks entering, leaving, staying; occupancy.",
    )
    lines: list[LineConfig] = Field(
        default_factory=list,
        max_length=256,
        description="Lines tracks are counted crossing, in each direction.",
    )
    analytics: AnalyticsConfig | None = Field(
        None,
        description="This camera's rules for zones and lines, instead of the top-level ones.",
    )

    @field_validator("source", mode="before")
    @classmethod
    def _source_string_to_mapping(cls, value: Any) -> Any:
        if isinstance(value, str):
            kind = infer_kind(name_fits(value))  # which looks the name up
            return {"type": kind, "url" if kind == "stream" else "path": value}
        if not isinstance(value, dict):
            raise ValueError(
                "a source is a path or URL string (video file, stream URL, /dev/videoN, "
                "image folder or glob) or a mapping with `type:` (file, stream, device, "
                f"images); got {short_repr(value)}"
            )
        return value

    @field_validator("id")
    @classmethod
    def _id_is_a_plain_name(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value):
            raise ValueError(
                f"invalid camera id {value!r}: use letters, digits, '_', '-' and '.' "
                "(it names files and event topics)"
            )
        return value

    @model_validator(mode="after")
    def _scene_ids_unique(self) -> CameraConfig:
        check_scene_ids(self.zones, self.lines)
        return self

    @property
    def has_scene(self) -> bool:
        """Whether the camera has zones or lines to analyse."""
        return bool(self.zones or self.lines)

    @property
    def live(self) -> bool:
        """Streams and devices are live: they drop old frames and reconnect."""
        return isinstance(self.source, (StreamSourceConfig, DeviceSourceConfig))
