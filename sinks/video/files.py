"""The video files: their names, what each holds (`WrittenFile`), when one is full and which
of them to delete (`Rotation`).

Files are `<directory>/<camera_id>_<start %Y%m%d-%H%M%S>.mp4`, the start being the wall time
(local) of the file's first frame; characters of the camera id that are unsafe in file names
become `_`, and a name already taken gets `-2`, `-3`... appended. Retention only ever touches
files named so.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from fractions import Fraction
from pathlib import Path

from sinks.disk import regular_file, remove_old

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_STAMP = "%Y%m%d-%H%M%S"
_ANY_SEGMENT = re.compile(r"^[A-Za-z0-9._-]+_\d{8}-\d{6}(-\d+)?\.mp4\Z")  # \Z: not before a newline


@dataclass(frozen=True)
class WrittenFile:
    """A file the sink finished, or kept after an error cut it short (`cut_short`), with the
    number of frames it holds."""

    path: Path
    frames: int
    cut_short: bool = False


@dataclass(frozen=True)
class Rotation:
    """When a camera's file is full and which of its finished files are kept: a new file
    after `segment_s` seconds of video (None: one file per stream); once a file is
    finished, the camera's files last modified more than `max_age_s` ago, and all but its
    `max_segments` newest, are deleted (None: no such limit)."""

    segment_s: float | None = None
    max_age_s: float | None = None
    max_segments: int | None = None

    def __post_init__(self) -> None:
        for what, value in (("segment_s", self.segment_s), ("max_age_s", self.max_age_s)):
            if value is not None and not value > 0:
                raise ValueError(f"video rotation {what} must be > 0, got {value}")
        if self.max_segments is not None and self.max_segments < 1:
            raise ValueError(f"video rotation max_segments must be >= 1, got {self.max_segments}")

    def full(self, frames: int, rate: Fraction) -> bool:
        """Whether a file holding `frames` frames at `rate` frames/s is full (one frame at
        least)."""
        return self.segment_s is not None and frames >= max(1, math.ceil(self.segment_s * rate))

    def prune(self, directory: Path, camera: str, keep: Path | None) -> list[Path]:
        """Deletes `camera`'s files in `directory` no longer kept (`prune_segments`)."""
        return prune_segments(
            directory,
            camera,
            max_age_s=self.max_age_s,
            max_segments=self.max_segments,
            keep=keep,
        )


def safe_name(camera: str) -> str:
    """The camera id as used in file names."""
    return _UNSAFE.sub("_", camera)


def segment_pattern(camera: str) -> re.Pattern[str]:
    """Matches the names of the files the video sink writes for `camera` (and nothing else)."""
    return re.compile(rf"^{re.escape(safe_name(camera))}_\d{{8}}-\d{{6}}(-\d+)?\.mp4$")


def segment_path(directory: Path, camera: str, wall_time: float, taken: Collection[Path]) -> Path:
    """The path of `camera`'s file whose first frame is at `wall_time` (Unix time): the
    first of `<camera>_<stamp>.mp4`, `<camera>_<stamp>-2.mp4`... neither in `taken` nor on disk.
    """
    stamp = datetime.fromtimestamp(wall_time).strftime(_STAMP)
    base = f"{safe_name(camera)}_{stamp}"
    path = directory / f"{base}.mp4"
    n = 1
    while path in taken or path.exists():
        n += 1
        path = directory / f"{base}-{n}.mp4"
    return path


def prune_segments(
    directory: Path,
    camera: str,
    *,
    max_age_s: float | None,
    max_segments: int | None,
    keep: Path | None = None,
) -> list[Path]:
    """Delete `camera`'s files in `directory` last modified more than `max_age_s` ago, and
    all but its `max_segments` newest (None: no such limit); `keep` (the file being written)
    is never touched, nor anything but a regular file (`regular_file`). Returns the files
    deleted; failures are logged, not raised."""
    if max_age_s is None and max_segments is None:
        return []
    pattern = segment_pattern(camera)
    try:
        candidates = [p for p in directory.iterdir() if pattern.match(p.name) and p != keep]
        found = [
            (status.st_mtime, p) for p in candidates if (status := regular_file(p)) is not None
        ]
        aged = sorted(found, key=_written_order, reverse=True)
    except OSError as exc:
        log.warning("video sink: cannot list %s for retention: %s", directory, exc)
        return []
    now = time.time()
    doomed: list[Path] = []
    for rank, (mtime, path) in enumerate(aged):
        too_old = max_age_s is not None and now - mtime > max_age_s
        too_many = max_segments is not None and rank >= max_segments
        if too_old or too_many:
            doomed.append(path)
    return remove_old(doomed, sink="video sink", what="video")


def _written_order(entry: tuple[float, Path]) -> tuple[float, str, int]:
    """Sort key of (mtime, file) in the order the files were written: by modification
    time, then, for files last written within the same clock tick, by name as
    `segment_path` gives them: the first frame's stamp, then the plain name before `-2`,
    `-3`..."""
    mtime, path = entry
    day, clock, *n = path.stem.rpartition("_")[2].split("-")
    return mtime, day + clock, int(n[0]) if n else 1


def delete_old_videos(directory: str | Path, before: float, *, dry_run: bool = False) -> list[Path]:
    """Delete the video files of the video sink in `directory` last modified before `before`.

    `before` is Unix time. Only files named like the sink's (`<camera>_<stamp>.mp4`) are
    touched, and only regular files (`regular_file`). Returns the files deleted (or, with
    `dry_run`, those that would be).
    """
    folder = Path(directory)
    named = [p for p in folder.iterdir() if _ANY_SEGMENT.match(p.name)]
    old = sorted(
        p for p in named if (status := regular_file(p)) is not None and status.st_mtime < before
    )
    if not dry_run:
        for path in old:
            path.unlink(missing_ok=True)
    return old
