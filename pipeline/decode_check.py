"""`validate`'s look through whole video files: each decoded as `run` reads it
(`AVSource.decoded`), without converting a frame or detecting, so that the corrupt packets
`run` would skip, and a read error that would end the camera, are known before a run.

Live sources (streams, devices) never end and are not read here; image folders neither.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import av
from tqdm import tqdm

from pipeline.config import CameraConfig, FileSourceConfig
from pipeline.config.cameras import probe_first_frame
from pipeline.sources import AVSource, SourceError

PROGRESS_EVERY = 25
"""Frames between progress bar updates: a bar redrawn per frame would cost more than the
decoding of a small frame."""


@dataclass(frozen=True)
class FileDecode:
    """What decoding a whole video file found."""

    source: str
    """The file, as the config names it."""
    frames: int
    """Frames decoded."""
    declared: int | None
    """Frames the file says it holds; None when it does not say."""
    corrupt: int = 0
    """Packets FFmpeg refused as invalid data, which `run` skips too."""
    corrupt_from_s: float | None = None
    corrupt_to_s: float | None = None
    last_s: float = 0.0
    """When the latest frame decoded is shown."""
    failure: str | None = None
    """Why reading ended before the end of the file (`run` fails the camera there)."""
    stopped_at_s: float | None = None
    """Where it ended (`last_s`); None when the file did not open."""

    @property
    def missing(self) -> int:
        """Frames the file declares that were not decoded (whole file read)."""
        if self.declared is None or self.failure is not None:
            return 0
        return max(0, self.declared - self.frames)

    @property
    def playable(self) -> bool:
        """Whether `run` reads the file to its end (skipping what is corrupt)."""
        return self.failure is None and self.frames > 0

    def damage(self) -> str | None:
        """One line saying what is damaged and whether `run` plays the file; None when
        nothing is."""
        if self.failure is not None and self.stopped_at_s is None:
            return f"{self.failure}; run fails this camera"
        if self.failure is not None:
            return (
                f"{self.source}: reading stops at {clock(self.stopped_at_s or 0.0)}, after "
                f"{_frames(self.frames)}: {self.failure}; run fails this camera there"
            )
        if not self.corrupt and not self.missing:
            return None
        if not self.corrupt:
            return (
                f"{self.source}: {self.missing} of the {self.declared} frames it declares are "
                f"missing (the last one decoded is at {clock(self.last_s)}); playable "
                f"({_frames(self.frames)})"
            )
        packets = f"{self.corrupt} damaged packet{'s' if self.corrupt != 1 else ''}"
        stretch = _stretch(self.corrupt_from_s, self.corrupt_to_s)
        of = f" of the {self.declared} it declares" if self.missing else ""
        return (
            f"{self.source}: {packets}{stretch}; playable (run skips them: "
            f"{_frames(self.frames)} decode{of})"
        )


def _frames(count: int) -> str:
    return f"{count} frame{'s' if count != 1 else ''}"


def clock(seconds: float) -> str:
    """`seconds` as hh:mm:ss (whole seconds: a place to look at in a player)."""
    whole = int(max(0.0, seconds))
    return f"{whole // 3600:02d}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _stretch(first: float | None, last: float | None) -> str:
    if first is None or last is None:
        return ""
    if clock(first) == clock(last):
        return f" at {clock(first)}"
    return f" between {clock(first)} and {clock(last)}"


def decode_file(
    path: str,
    on_open: Callable[[int | None], None] | None = None,
    on_frames: Callable[[int], None] | None = None,
) -> FileDecode:
    """Decodes the file at `path` to its end as `run` reads it (`FileDecoder.finish`)."""
    return FileDecoder(path).finish(on_open, on_frames)


class FileDecoder:
    """One video file decoded once, to its end, as `run` reads it (`AVSource.decoded`): its
    first frame as soon as asked (`start`: `validate`'s check that the file is a video, with
    the config), the rest later (`finish`)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._source = AVSource(path, live=False)
        self._started = False
        self._not_opened: str | None = None  # why the file did not open
        self._declared: int | None = None
        self._frames: Iterator[av.VideoFrame] = iter(())
        self._first: av.VideoFrame | None = None
        self._corrupt_at: list[float] = []
        self._last_s = 0.0
        self._failure: str | None = None
        self._found: FileDecode | None = None

    def start(self) -> bool:
        """Opens the file and decodes up to its first frame, once; whether one came."""
        if not self._started:
            self._started = True
            try:
                self._declared = self._source.open().total_frames
            except SourceError as exc:
                self._not_opened = str(exc)
                return False
            self._frames = self._source.decoded(on_corrupt=self._corrupt)
            self._first = self._next()
        return self._first is not None

    def finish(
        self,
        on_open: Callable[[int | None], None] | None = None,
        on_frames: Callable[[int], None] | None = None,
    ) -> FileDecode:
        """What decoding the whole file found (decoded once: later calls return it again).
        `on_open` is told the frames it declares (None: it does not say), `on_frames(n)` of
        every `PROGRESS_EVERY` frames decoded, then of the rest."""
        if self._found is not None:
            return self._found
        self.start()
        if self._not_opened is not None:
            self._found = FileDecode(self.path, 0, None, failure=self._not_opened)
            return self._found
        if on_open is not None:
            on_open(self._declared)
        frames, pending, frame = 0, 0, self._first
        try:
            while frame is not None:
                frames += 1
                # max: frames of packed B-frames come out of order (see AVSource.frames)
                if frame.time is not None:
                    self._last_s = max(self._last_s, float(frame.time))
                pending += 1
                if pending == PROGRESS_EVERY and on_frames is not None:
                    on_frames(pending)
                    pending = 0
                frame = self._next()
        finally:
            self.close()
        if on_frames is not None and pending:
            on_frames(pending)
        self._found = FileDecode(
            self.path,
            frames,
            self._declared,
            corrupt=len(self._corrupt_at),
            corrupt_from_s=min(self._corrupt_at, default=None),
            corrupt_to_s=max(self._corrupt_at, default=None),
            last_s=self._last_s,
            failure=self._failure,
            stopped_at_s=self._last_s if self._failure is not None else None,
        )
        return self._found

    def close(self) -> None:
        """Lets go of the file (decoding what is left of it no more)."""
        self._source.close()

    def _next(self) -> av.VideoFrame | None:
        """The next frame; None at the end, or where reading fails (`_failure` says why)."""
        try:
            return next(self._frames, None)
        except SourceError as exc:
            self._failure = str(exc).removeprefix(f"reading {self._source.name} failed: ")
            return None

    def _corrupt(self, seconds: float | None) -> None:
        self._corrupt_at.append(self._last_s if seconds is None else seconds)


class WholeDecodes:
    """The file cameras' decoders, each file opened once: started by the config's check
    that each file is a video (`probe`, its `FileProbe`), finished by `decode_cameras`.
    A context manager: leaving it lets go of every file not decoded to its end."""

    def __init__(self) -> None:
        self._decoders: dict[str, FileDecoder] = {}

    def probe(self, path: str) -> None:
        """Decodes the first frame of the file at `path`; raises NotAVideoError where no
        frame comes, in the words of `probe_first_frame`, which says why."""
        if not self.decoder(path).start():
            probe_first_frame(path)  # opens it again, only to say why it is no video

    def decoder(self, path: str) -> FileDecoder:
        """The one decoder of the file at `path` (as the config names it)."""
        return self._decoders.setdefault(path, FileDecoder(path))

    def __enter__(self) -> WholeDecodes:
        return self

    def __exit__(self, *_exc: object) -> None:
        for decoder in self._decoders.values():
            decoder.close()


def decode_cameras(
    cameras: Sequence[CameraConfig], decodes: WholeDecodes | None = None
) -> dict[str, FileDecode]:
    """Each file camera's whole file decoded (`FileDecoder`; by `decodes`, where the config's
    check started them), by camera id, with a progress bar per file on a terminal."""
    decodes = decodes or WholeDecodes()
    found = {}
    for camera in cameras:
        if not isinstance(camera.source, FileSourceConfig):
            continue
        with tqdm(
            desc=f"decoding {camera.id}",
            unit="frame",
            leave=False,
            disable=None,  # off when stderr is not a terminal
            dynamic_ncols=True,
        ) as bar:

            def length(total: int | None, bar: tqdm = bar) -> None:
                bar.total = total
                bar.refresh()

            decoder = decodes.decoder(camera.source.path)
            found[camera.id] = decoder.finish(length, bar.update)
    return found
