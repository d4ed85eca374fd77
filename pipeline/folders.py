"""Whether files could be written in a folder: the one check, and the one wording, of every
layer that writes files (the sinks' output folders, the detector's ONNX cache, the CLI's
--out and checkpoint folders).

A leaf module that imports nothing from the project: part of the vocabulary every layer may
use.
"""

from __future__ import annotations

import os
from pathlib import Path


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
