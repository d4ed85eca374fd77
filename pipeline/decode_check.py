"""`validate`'s look through whole video files: each decoded as `run` reads it
(`AVSource.decoded`), without converting a frame or detecting, so that the corrupt packets
`run` would skip, and a read error that would end the camera, are known before a run.

Live sources (streams, devices) never end and are not read here; image folders neither.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm import tqdm

from pipeline.config import CameraConfig, FileSourceConfig
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
    """Decodes the file at `path` to its end as `run` reads it. `on_open` is told the frames
    it declares (None: it does not say), `on_frames(n)` of every `PROGRESS_EVERY` frames
    decoded, then of the rest."""
    source = AVSource(path, live=False)
    corrupt_at: list[float] = []
    frames, last_s, pending = 0, 0.0, 0

    def corrupt(seconds: float | None) -> None:
        corrupt_at.append(last_s if seconds is None else seconds)

    try:
        declared = source.open().total_frames
    except SourceError as exc:
        return FileDecode(path, 0, None, failure=str(exc))
    if on_open is not None:
        on_open(declared)
    failure = None
    try:
        for frame in source.decoded(on_corrupt=corrupt):
            frames += 1
            # max: frames of packed B-frames come out of order (see AVSource.frames)
            last_s = max(last_s, float(frame.time)) if frame.time is not None else last_s
            pending += 1
            if pending == PROGRESS_EVERY and on_frames is not None:
                on_frames(pending)
                pending = 0
    except SourceError as exc:
        failure = str(exc).removeprefix(f"reading {source.name} failed: ")
    finally:
        source.close()
    if on_frames is not None and pending:
        on_frames(pending)
    return FileDecode(
        path,
        frames,
        declared,
        corrupt=len(corrupt_at),
        corrupt_from_s=min(corrupt_at, default=None),
        corrupt_to_s=max(corrupt_at, default=None),
        last_s=last_s,
        failure=failure,
        stopped_at_s=last_s if failure is not None else None,
    )


def decode_cameras(cameras: Sequence[CameraConfig]) -> dict[str, FileDecode]:
    """Each file camera's whole file decoded (`decode_file`), by camera id, with a progress
    bar per file on a terminal."""
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

            found[camera.id] = decode_file(camera.source.path, length, bar.update)
    return found
