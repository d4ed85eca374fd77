"""Each camera's video files: opening, rotating and finishing them, and what they hold.

`Segments` keeps each camera's open file and a record of what the run wrote and lost (the
run summary, the closing error). A camera's file is finished once its segment is full
(`Rotation`), once its live frames have clearly slowed down while its encoder holds frames
back (`sinks.video.slowdown`), and when the sink says so (its stream ends or restarts, its
frames stop); the next frame opens a new one, whose fragments and encoder are chosen from
how far apart its frames come (`sinks.video.encoding.Pacing`). A full disk does not stop
it: the file it cut short is kept (up to its last whole fragment) and counted, the camera's
frames are dropped and counted while the disk stays full, and once the disk has room again
(checked every `room_check_s`) the camera starts a new file.
"""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from dataclasses import replace
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from sinks.base import SinkError
from sinks.disk import RoomWatch, is_disk_full
from sinks.video.encoding import (
    Encoding,
    Geometry,
    Pacing,
    SegmentFile,
    cut_back,
    failure_reason,
)
from sinks.video.files import Rotation, WrittenFile, segment_path
from sinks.video.slowdown import SlowdownWatch
from sinks.video.stalls import StallWatch

log = logging.getLogger(__name__)

_WRITE_ERRORS = (av.FFmpegError, OSError, ValueError)

ROOM_TO_RESUME_BYTES = 16_000_000
"""Free space a camera whose file the full disk cut short waits for before starting a new one:
seconds of video, so that the few kB a deleted file frees do not start a file that dies at once."""


class Segments:
    """Each camera's open file in `directory` and every file the run wrote there.

    `encoding`: how the files are encoded; `rotation`: when a file is full and which
    finished files are kept; `room_check_s`: how often a full disk's free space is checked.
    `stalls` and `slowdowns`: the sink's watches of each camera's frames (the first tells
    how far apart they came, the second whether they have slowed down since its file opened).
    """

    def __init__(
        self,
        directory: Path,
        *,
        encoding: Encoding,
        rotation: Rotation,
        room_check_s: float,
        stalls: StallWatch,
        slowdowns: SlowdownWatch,
    ) -> None:
        self._directory = directory
        self.encoding = encoding
        self.rotation = rotation
        self._open: dict[str, SegmentFile] = {}
        self._written: dict[str, list[WrittenFile]] = {}
        self._used: set[Path] = set()
        self._lost: Counter[str] = Counter()
        self._loss_reason: str | None = None
        self._room = RoomWatch(
            self._directory, min_free_bytes=ROOM_TO_RESUME_BYTES, interval_s=room_check_s
        )
        self._waiting: set[str] = set()
        """Cameras whose frames are dropped until the full disk has room again."""
        self._stalls = stalls
        self._slowdowns = slowdowns
        self.deleted: list[Path] = []
        """Files removed by retention during this run."""

    @property
    def records(self) -> dict[str, list[WrittenFile]]:
        """Every file written per camera during this run, oldest first, with its frames."""
        return {camera: list(files) for camera, files in self._written.items()}

    @property
    def paths(self) -> dict[str, Path]:
        """Latest file of each camera that wrote a frame."""
        return {camera: files[-1].path for camera, files in self._written.items() if files}

    @property
    def files(self) -> dict[str, list[Path]]:
        """Every file written per camera during this run, oldest first."""
        return {camera: [f.path for f in files] for camera, files in self._written.items()}

    @property
    def cut_short(self) -> list[Path]:
        """Files an error stopped (disk full...), kept because they play up to it."""
        return [f.path for files in self._written.values() for f in files if f.cut_short]

    @property
    def lost(self) -> dict[str, int]:
        """Frames of each camera that no file holds (cut off by an error, or dropped while
        the disk was full)."""
        return {camera: n for camera, n in self._lost.items() if n}

    def describe(self) -> str:
        """The run summary's lines: the totals, then each file with the frames it holds."""
        count = sum(len(f) for f in self._written.values())
        cut = f", {len(self.cut_short)} cut short by an error" if self.cut_short else ""
        lost = f", {self._lost_text()}" if self._lost.total() else ""
        pruned = f", {len(self.deleted)} old files deleted" if self.deleted else ""
        lines = [f"video {self._directory}: {count} file(s){cut}{lost}{pruned}"]
        for files in self._written.values():
            lines += [
                f"{f.path.name}: {f.frames} frames" + (", cut short" if f.cut_short else "")
                for f in files
            ]
        return "\n".join(lines)

    def is_open(self, camera: str) -> bool:
        """Whether the camera has a file open."""
        return camera in self._open

    def cameras_open(self) -> list[str]:
        """The cameras that have a file open."""
        return list(self._open)

    def file_for(self, camera: str, geometry: Geometry, wall_time: float) -> SegmentFile | None:
        """The file the camera's next frame goes to (a new one when the segment is full, when
        the camera's frames have slowed down, or when the disk has room again); None while
        the disk is full (the frame is then `dropped`)."""
        if camera in self._waiting:
            if not self._room.has_room():
                return None
            self._waiting.discard(camera)
            log.warning(
                "video sink: room again in %s; camera %r starts a new file "
                "(%d of its frames lost so far)",
                self._directory,
                camera,
                self._lost[camera],
            )
        file = self._open.get(camera)
        slowed_gap_s = self._slowdowns.slowed_gap_s(camera) if file is not None else None
        if slowed_gap_s is not None:
            log.info(
                "video sink: camera %r has slowed down to %.1f frames a second (its video: "
                "%g fps); its file is finished, and the next one's encoder holds no frame back",
                camera,
                1 / slowed_gap_s,
                float(geometry.rate),
            )
        full = file is not None and self.rotation.full(file.frames, file.geometry.rate)
        if slowed_gap_s or full:
            self.finish(camera)
            file = None
        if camera in self._waiting:  # finishing the segment met the full disk
            return None
        if file is not None:
            return file
        return self._open_segment(camera, geometry, wall_time, slowed_gap_s)

    def dropped(self, camera: str) -> None:
        """A frame of the camera was dropped: the disk is full (`file_for` said None)."""
        self._lost[camera] += 1

    def encode(self, camera: str, file: SegmentFile, image: npt.NDArray[np.uint8]) -> None:
        """Encode the camera's next frame into its file (`file_for`); a full disk cuts the
        file short (and the camera waits for room), any other failure raises SinkError."""
        try:
            file.encode(image)
        except _WRITE_ERRORS as exc:
            del self._open[camera]
            file.abandon()
            doing = f"cannot write camera {camera!r} to {file.path}"
            self._failed(camera, file, file.frames + 1, exc, doing)

    def finish(self, camera: str) -> None:
        """Finish the camera's open file; a full disk cuts it short (and the camera waits for
        room), any other failure raises SinkError."""
        file = self._open.pop(camera)
        try:
            file.finish()
        except _WRITE_ERRORS as exc:
            doing = f"cannot finish {file.path} for camera {camera!r}"
            self._failed(camera, file, file.frames, exc, doing)
            return
        if not file.path.exists():  # its folder was removed: the frames went with the file
            self._lost[camera] += file.frames
            self._loss_reason = self._loss_reason or f"{file.path} was deleted while written"
            log.warning(
                "video sink: %s was deleted while written; its %d frames are lost",
                file.path,
                file.frames,
            )
            return
        self._written.setdefault(camera, []).append(WrittenFile(file.path, file.frames))
        log.info("video sink: wrote %d frames to %s", file.frames, file.path)
        self.prune(camera)

    def _failed(
        self, camera: str, file: SegmentFile, frames: int, exc: Exception, doing: str
    ) -> None:
        """After `doing` failed with `exc`: keeps what `file` holds of its `frames`; a full
        disk has the camera wait for room, any other failure raises SinkError."""
        why = (
            f"{doing}: {failure_reason(exc, file.path)}; "
            f"{self._keep_cut_short(camera, file, frames, exc)}"
        )
        if not is_disk_full(exc):
            raise SinkError(f"video sink: {why}") from exc
        self._wait_for_room(camera, why)

    def close(self) -> None:
        """Finalise every camera still open; raises the first failure after trying all, or
        else says how many frames no file holds, if any."""
        first_error: SinkError | None = None
        for camera in list(self._open):
            try:
                self.finish(camera)
            except SinkError as exc:
                log.error("%s", exc)
                first_error = first_error or exc
        if first_error is not None:
            raise first_error
        if self._lost.total():
            raise SinkError(f"video sink: {self._lost_text()}: {self._loss_reason}")

    def prune(self, camera: str) -> None:
        """Delete the camera's finished files that retention no longer keeps."""
        open_file = self._open.get(camera)
        keep = open_file.path if open_file is not None else None
        self.deleted += self.rotation.prune(self._directory, camera, keep)

    # -------------------------------------------------------------------- internals

    def _wait_for_room(self, camera: str, why: str) -> None:
        """The full disk stopped the camera's file: drop its frames until there is room."""
        self._waiting.add(camera)
        self._room.full()
        log.warning(
            "video sink: %s; its frames are dropped (counted) until %s has %.0f MB free",
            why,
            self._directory,
            ROOM_TO_RESUME_BYTES / 1e6,
        )

    def _lost_text(self) -> str:
        """'12 frames lost (camera 'a' 5, camera 'b' 7)'."""
        cameras = ", ".join(f"camera {c!r} {n}" for c, n in self._lost.items() if n)
        return f"{self._lost.total()} frames lost ({cameras})"

    def _open_segment(
        self, camera: str, geometry: Geometry, wall_time: float, slowed_gap_s: float | None
    ) -> SegmentFile | None:
        """The camera's new file (`slowed_gap_s`: how far apart the frames that ended the
        last one came, `_pacing`); None when the disk is too full to create it."""
        path = segment_path(self._directory, camera, wall_time, self._used)
        self._used.add(path)
        try:
            if not self._directory.is_dir():  # removed while the run wrote into it
                log.warning("video sink: %s is gone; making it again", self._directory)
                self._directory.mkdir(parents=True, exist_ok=True)
            pacing = self._pacing(camera, geometry, slowed_gap_s)
            file = SegmentFile(path, geometry, self.encoding, pacing)
        except _WRITE_ERRORS as exc:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # none there
                path.unlink()  # the container may have created it, empty
            if is_disk_full(exc):
                self._loss_reason = self._loss_reason or failure_reason(exc, path)
                self._wait_for_room(camera, f"cannot open {path}: {failure_reason(exc, path)}")
                return None
            hint = (
                " (NVENC needs an NVIDIA GPU with a video encoder, which the H100, H200 and "
                "A100 lack, and its driver; codec libx264 encodes on the CPU)"
                if "nvenc" in self.encoding.codec
                else ""
            )
            raise SinkError(
                f"video sink: cannot open {path} for camera {camera!r} "
                f"with codec {self.encoding.codec!r}: {failure_reason(exc, path)}{hint}"
            ) from exc
        self._open[camera] = file
        if pacing.holds_back_live_frames(geometry.rate):
            self._slowdowns.watch(camera, geometry.rate)
        else:
            self._slowdowns.forget(camera)
        return file

    def _pacing(self, camera: str, geometry: Geometry, slowed_gap_s: float | None) -> Pacing:
        """How far apart in wall time the camera's frames come to its next file: what its
        stream says (a live stream's seconds are wall seconds; a file's go by at least as
        fast), or, for a live camera, what they did lately when that is longer (a slow
        detector), or what they did when they slowed down (`slowed_gap_s`, which ended its
        last file). A gated camera's recent gaps are those of its still scenes as much as
        its detector's, so they do not count (its fragments are a frame each anyway)."""
        stated = geometry.pacing
        gaps = (self._stalls.frame_gap_s(camera), slowed_gap_s)
        seen = max((gap for gap in gaps if gap is not None), default=None)
        if seen is None or stated.still_gap_s is not None:
            return stated
        return replace(stated, frame_gap_s=max(stated.frame_gap_s or 0.0, seen))

    def _keep_cut_short(self, camera: str, file: SegmentFile, sent: int, exc: BaseException) -> str:
        """Keep what plays of a file an error stopped (`sent` frames handed to it), counting
        the frames it holds and those it lost. Says what became of the file."""
        self._loss_reason = self._loss_reason or failure_reason(exc, file.path)
        held, fate = cut_back(file.path)
        self._lost[camera] += sent - held
        if held:
            self._written.setdefault(camera, []).append(WrittenFile(file.path, held, True))
        return fate
