"""`VideoSink`: each camera's annotated frames as H.264 MP4 files, rotated and pruned.

With `segment_s` a camera's video is cut into files of that much video each (a new file
starts on the next frame); `max_age_s` / `max_segments` delete the camera's oldest finished
files. H.264 with yuv420p needs an even width and height: an odd-sized input is cropped by
its last column and/or row (161x121 is written as 160x120). A frame whose size differs from
the size the camera started with is resized to it. How a file is encoded:
`sinks.video.encoding`; how files are named and pruned: `sinks.video.files`; how each
camera's files are opened, rotated and finished: `sinks.video.segments`.

A camera whose frames stop has its file finished (on `tick`) once they have stopped
(`sinks.video.stalls`); its next frame starts a new file. A live camera's file has a
fragment a frame, so that a kill loses only the few frames its encoder holds back; a file
camera's fragments are chosen from how far apart its frames come (its stream's
`frame_gap_s`), so that a kill loses about a second of wall time; whether the encoder may
hold frames back, from the stream's `frame_gap_s` and `still_gap_s` and a live camera's
recent gaps (`sinks.video.encoding.Pacing`). A live camera whose frames clearly slow down
while its encoder holds frames back has its file finished there, and the next one opened
with an encoder that holds none back (`sinks.video.slowdown`).

A full disk does not stop the sink: the file it cut short is kept and counted, and the
camera's frames are dropped and counted until the disk has room again (`sinks.video.segments`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from pipeline.types import FrameResult, LabelMap, StreamEnd, StreamInfo
from sinks.base import Sink, SinkError
from sinks.disk import open_folder
from sinks.draw import annotate
from sinks.scene_overlay import SceneOverlay
from sinks.video.encoding import Encoding, Geometry, Pacing, failure_reason
from sinks.video.files import Rotation, WrittenFile
from sinks.video.segments import Segments
from sinks.video.slowdown import SlowdownWatch
from sinks.video.stalls import StallWatch

log = logging.getLogger(__name__)

_FALLBACK_RATE = Fraction(25)

ROOM_CHECK_S = 1.0
"""While the disk is full, its free space is checked at most this often."""
DEFAULT_ENCODING = Encoding()
ONE_FILE_PER_STREAM = Rotation()
"""A file per stream, none deleted."""


class VideoSink(Sink):
    """Writes each camera's frames, with boxes and captions drawn (and, for a stream with a
    `StreamInfo.scene`, its zones and lines with their counts and each track's trail), to
    H.264 MP4 files in `directory`.

    A `directory` that could never be written stops the sink as it opens (`open_folder`).
    `encoding`: how the files are encoded; `rotation`: when a file is full and which
    finished files are kept. `room_check_s`: how often a full disk's free space is
    checked. `clock`: the seconds that tell when a camera's frames have stopped.
    """

    name = "video"
    wants_every_frame = True

    def __init__(
        self,
        directory: Path,
        labels: LabelMap,
        *,
        encoding: Encoding = DEFAULT_ENCODING,
        rotation: Rotation = ONE_FILE_PER_STREAM,
        room_check_s: float = ROOM_CHECK_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._directory = Path(directory)
        open_folder(self._directory, self.name)  # made with the first file
        self._labels = labels
        self._geometry: dict[str, Geometry] = {}
        self._scenes: dict[str, SceneOverlay] = {}
        """Each camera's zones, lines, counts and trails (cameras whose stream has a scene)."""
        self._stalls = StallWatch(clock)
        self._slowdowns = SlowdownWatch(clock)
        self._segments = Segments(
            self._directory,
            encoding=encoding,
            rotation=rotation,
            room_check_s=room_check_s,
            stalls=self._stalls,
            slowdowns=self._slowdowns,
        )

    @property
    def encoding(self) -> Encoding:
        """How the files are encoded."""
        return self._segments.encoding

    @property
    def rotation(self) -> Rotation:
        """When a file is full and which finished files are kept."""
        return self._segments.rotation

    @property
    def deleted(self) -> list[Path]:
        """Files removed by retention during this run."""
        return self._segments.deleted

    @property
    def records(self) -> dict[str, list[WrittenFile]]:
        """Every file written per camera during this run, oldest first, with its frames."""
        return self._segments.records

    @property
    def paths(self) -> dict[str, Path]:
        """Latest file of each camera that wrote a frame."""
        return self._segments.paths

    @property
    def files(self) -> dict[str, list[Path]]:
        """Every file written per camera during this run, oldest first."""
        return self._segments.files

    @property
    def cut_short(self) -> list[Path]:
        """Files an error stopped (disk full...), kept because they play up to it."""
        return self._segments.cut_short

    @property
    def lost(self) -> dict[str, int]:
        """Frames of each camera that no file holds (cut off by an error, or dropped while
        the disk was full)."""
        return self._segments.lost

    def describe(self) -> str:
        """The run summary's lines: the totals, then each file with the frames it holds."""
        return self._segments.describe()

    def start(self, info: StreamInfo) -> None:
        camera = info.camera_id
        if info.live:
            self._stalls.watch(camera)
        if self._segments.is_open(camera):  # a live camera that reconnected: a new file
            log.info("video sink: camera %r started again; starting a new file", camera)
            self._segments.finish(camera)
        rate = info.frame_rate
        if not rate or rate <= 0:
            log.warning(
                "video sink: camera %r has no usable frame rate (%s); writing at %s fps",
                camera,
                rate,
                _FALLBACK_RATE,
            )
            rate = _FALLBACK_RATE
        # libx264/mp4 want a time base with a reasonable denominator.
        rate = Fraction(rate).limit_denominator(1001 * 1000)
        width, height = self.encoding.size_for(info.width, info.height)
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
                f"{failure_reason(exc, self._directory)}"
            ) from exc
        pacing = Pacing(info.frame_gap_s, info.still_gap_s, info.live)
        self._geometry[camera] = Geometry(width, height, rate, pacing)
        if info.scene is not None:
            known = self._scenes.get(camera)
            if known is None or known.layout != info.scene:
                self._scenes[camera] = SceneOverlay(info.scene)
        self._segments.prune(camera)

    def write(self, result: FrameResult) -> None:
        frame = result.frame
        camera = frame.camera_id
        geometry = self._geometry.get(camera)
        if geometry is None:
            raise SinkError(f"video sink: frame for camera {camera!r} before its stream started")
        self._stalls.frame(camera)
        self._slowdowns.frame(camera)
        scene = self._scenes.get(camera)
        if scene is not None:  # counted and trailed also while the disk is full
            scene.update(result)
        file = self._segments.file_for(camera, geometry, frame.wall_time)
        if file is None:  # the disk is full
            self._segments.dropped(camera)
            return
        view = scene.view() if scene is not None else None
        image = annotate(frame.image, result.detections, self._labels, view)
        self._segments.encode(camera, file, image)

    def tick(self) -> None:
        """Finish the files of the cameras whose frames have stopped: their last frames go to
        disk (the encoder's delayed ones too); the next frame starts a new file."""
        for camera in self._stalls.stalled(self._segments.cameras_open()):
            log.info(
                "video sink: camera %r has had no frame for %.1f s; its file is finished, "
                "its next frame starts a new one",
                camera,
                self._stalls.idle_s(camera),
            )
            self._segments.finish(camera)

    def end(self, stream_end: StreamEnd) -> None:
        scene = self._scenes.get(stream_end.camera_id)
        if scene is not None:
            scene.count(stream_end.analytics)
            scene.end()
        try:
            if self._segments.is_open(stream_end.camera_id):
                self._segments.finish(stream_end.camera_id)
        finally:  # ended even where finishing failed: a later frame is refused, not written
            self._geometry.pop(stream_end.camera_id, None)

    def close(self) -> None:
        """Finalise every camera still open; raises the first failure after trying all, or
        else says how many frames no file holds, if any."""
        self._segments.close()
