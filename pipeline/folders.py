"""Whether files could be written in a folder: the one check, and the one wording, of every
layer that writes files (the sinks' output folders, the detector's ONNX cache, the CLI's
--out and checkpoint folders); whether a path is too long a name for the file system; and
why a file to read is none (`file_problem`: weights, keys, clips, and `link_loop`, the one
rule for a link that leads back to itself, which config files and file sources follow too);
and which file names are images (`IMAGE_SUFFIXES`: image-folder cameras, training datasets).

A leaf module that imports nothing from the project: part of the vocabulary every layer may
use.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Literal

IMAGE_SUFFIXES = frozenset({".bmp", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp"})
"""Suffixes (any case) of the image files a folder of images is searched for: a camera's
image folder, a training dataset's images."""


def folder_problem(folder: Path) -> str | None:
    """Why files could not be written in `folder` (made if missing); None when they could.
    Nothing is created: the writer makes the folder with its first file."""
    folder = Path(folder).expanduser()
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing == folder and not folder.is_dir():
        return f"{folder} is a file, not a folder"
    if not existing.is_dir():
        return f"cannot make the folder {folder}: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        verb = "write in" if existing == folder else "make"
        read_only = os.statvfs(existing).f_flag & os.ST_RDONLY  # even root may not write
        why = "read-only file system" if read_only else "permission denied"
        return f"cannot {verb} the folder {folder}: {why}"
    return None


LINK_LOOP = "a link that leads back to itself"
"""What a path is whose links never end at anything (`ln -s a a`, or a -> b -> a): something
is there, so it is no more "not found" than a folder is."""


def link_loop(path: Path) -> bool:
    """Whether following the links of `path` goes round for ever (the system gives up: ELOOP)."""
    try:
        Path(path).expanduser().stat()
    except OSError as exc:
        return exc.errno == errno.ELOOP
    except ValueError:  # a name the system refuses (a NUL in it)
        return False
    return False


FileKind = Literal["file", "missing", "loop", "folder", "special"]
"""What is at a path meant to be a file: a regular file (or a link to one), nothing, a link
that leads back to itself, a folder, or a device or pipe (which a reader would wait on)."""


def file_kind(path: Path) -> FileKind:
    """What is at `path` (`FileKind`), links followed: the one look every file check takes."""
    try:
        mode = Path(path).expanduser().stat().st_mode
    except (OSError, ValueError):  # nothing there, a link loop, a name the system refuses
        return "loop" if link_loop(path) else "missing"
    if stat.S_ISREG(mode):
        return "file"
    return "folder" if stat.S_ISDIR(mode) else "special"


_KIND_PROBLEM: dict[FileKind, str] = {
    "missing": "not found",
    "loop": f"is {LINK_LOOP}",
    "folder": "is a folder, not a file",
    "special": "is a device or a pipe, not a file",
}


def file_problem(path: Path) -> str | None:
    """Why no file can be read at `path`, in words that follow what it was meant to be
    ("weights file not found: x.pth"): "not found", "is a link that leads back to itself"
    (`LINK_LOOP`), "is a folder, not a file" or "is a device or a pipe, not a file" (which a
    reader would wait on for ever); None for a regular file, or a link to one."""
    return _KIND_PROBLEM.get(file_kind(path))


NAME_MAX = 255
"""Longest name in a folder, in bytes, where the file system does not say (Linux's)."""
PATH_MAX = 4096
"""Longest path, in bytes with its terminating NUL, where the system does not say."""


def name_problem(path: Path | str) -> str | None:
    """Why the system would refuse `path` for a name too long (ENAMETOOLONG); None when it
    would not. Found from the text: a lookup stops at a missing folder above it first."""
    path = Path(path).expanduser()
    name_max, path_max = _limits(path)
    longest = max((len(os.fsencode(part)) for part in path.parts), default=0)
    if longest > name_max:
        return f"a name in it is {longest} bytes long; the file system takes at most {name_max}"
    size = len(os.fsencode(path))
    if size >= path_max:
        return f"it is {size} bytes long; the system takes at most {path_max - 1}"
    return None


def _limits(path: Path) -> tuple[int, int]:
    """NAME_MAX and PATH_MAX of the file system holding `path` (its nearest folder that
    exists)."""
    for folder in (path, *path.parents):
        try:
            name_max = os.pathconf(folder, "PC_NAME_MAX")
            path_max = os.pathconf(folder, "PC_PATH_MAX")
        except (OSError, ValueError):  # missing, too long itself, or no such limit
            continue
        return name_max if name_max > 0 else NAME_MAX, path_max if path_max > 0 else PATH_MAX
    return NAME_MAX, PATH_MAX
