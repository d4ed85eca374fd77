"""Files written whole: a partial file beside the target, renamed over it once complete."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def write_whole(file: Path, write: Callable[[Path], object]) -> None:
    """Make `file` by `write(partial)` (what it returns is ignored) on a partial file beside
    it, then rename it into place: whatever stops the writing (a full disk, Ctrl-C), `file`
    is its previous version or the new one, never half of one, and no partial file is left.

    Raises:
        OSError: the file system's error (ENOSPC, EROFS, ...) naming `file`, also where
            the writer wrapped it in a RuntimeError (torch.save's zip writer does),
            dropped the name (onnx.save does) or named the partial file.
    """
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(f".{file.name}.{os.getpid()}.partial")
    try:
        write(partial)
        os.replace(partial, file)
    except BaseException as exc:  # Ctrl-C included: no partial file left behind, then re-raised
        partial.unlink(missing_ok=True)
        system = exc if isinstance(exc, OSError) else exc.__context__
        unnamed = (
            isinstance(system, OSError)
            and system.errno
            and system.filename in (None, str(partial), partial)  # the user's is `file`
        )
        if unnamed and isinstance(exc, OSError | RuntimeError):
            assert isinstance(system, OSError)
            raise OSError(system.errno, system.strerror, str(file)) from exc
        raise
