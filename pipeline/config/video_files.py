"""What a video file must be before its frames are read: one the system lets this process
read, with some bytes, and a header FFmpeg opens with a video stream in it. The one rule,
and the one wording, of `run`'s look at each file camera before its detector is prepared
(`pipeline.sources.AVSource.problem`) and of `validate` (a file source's check, at its YAML
path: where the file may not be read, where it is empty, or where its first frame does not
decode and the header says why).

A file damaged further on (corrupt packets, a cut-off end) passes: its header is whole, and
`run` plays what decodes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from pipeline.config.safe_yaml import path_repr

HEADER_WAIT_S = 2.0
"""Longest wait for a video file's header, and for `run`'s whole look at every camera's file
or image folder (`pipeline.source_check`). A file on a network mount that does not answer
by then is not judged (its reader opens it as the run goes on): a run's start never hangs
on it."""


def missing_file(path: str) -> str | None:
    """ "file not found: 'x.mp4' (relative to '/home/me')" where nothing is at `path` (as the
    config names it; the folder it is relative to only for a relative path); None where
    something is, and where the system will not say (a folder on the way this user may not
    enter: `unreadable_file` says why)."""
    where = Path(path).expanduser()
    try:
        where.stat()
    except (FileNotFoundError, NotADirectoryError):
        pass
    except (OSError, ValueError):
        return None
    else:
        return None
    shown = path_repr(path)
    if where.is_absolute():
        return f"file not found: {shown}"
    return f"file not found: {shown} (relative to {path_repr(str(Path.cwd()))})"


def unreadable_file(path: str) -> str | None:
    """ "file not readable (Permission denied): 'x.mp4'" where something is at `path` (as the
    config names it) that the system will not open for this process to read (its mode or an
    ACL refuses this user, a security module, or any other error it gives); None where it
    opens, where nothing is there (`missing_file`), and
    for a name the system refuses (a NUL in it: FFmpeg says why as it opens it)."""
    try:
        # non-blocking: a named pipe put there since the look at what it is does not wait
        os.close(os.open(Path(path).expanduser(), os.O_RDONLY | os.O_NONBLOCK))
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"file not readable ({exc.strerror or type(exc).__name__}): {path_repr(path)}"
    except ValueError:
        return None
    return None


def empty_file(path: str) -> str | None:
    """ "empty file (0 bytes): 'x.mp4'" for a file of 0 bytes at `path` (as the config names
    it); None otherwise, and where its size cannot be read (opening it says why)."""
    try:
        empty = Path(path).expanduser().stat().st_size == 0
    except (OSError, ValueError):
        return None
    return f"empty file (0 bytes): {path_repr(path)}" if empty else None


def video_header_problem(path: str, wait_s: float = HEADER_WAIT_S) -> str | None:
    """Why the regular file at `path` (as the config names it) is no video, from its size and
    its header alone: `empty_file`, "not a video (it holds no video stream): 'x.mp4'", or
    "not a video (cannot open it: FFmpeg's reason): 'x.mp4'"; None when its header holds a
    video stream, and when the header has not come within `wait_s` (not judged)."""
    if (problem := empty_file(path)) is not None:
        return problem
    read = _HeaderRead(str(Path(path).expanduser()))
    read.start()
    read.join(wait_s)
    if read.is_alive():
        return None  # `run`'s look says so, for this camera (`pipeline.source_check`)
    return None if read.why is None else f"not a video ({read.why}): {path_repr(path)}"


class _HeaderRead(threading.Thread):
    """Opens a file as the reader opens it (`av.open`: its header, and the first packets
    FFmpeg looks at to learn its streams, a frame or two decoded where the header leaves
    the pixel format out), in a daemon thread: a read that never ends is left behind, not
    waited for, even at the process's exit."""

    def __init__(self, path: str) -> None:
        super().__init__(name="video-header", daemon=True)
        self.path = path
        self.why: str | None = None
        """Why it is no video; None while unknown, or when it holds a video stream."""

    def run(self) -> None:
        import av

        try:
            with av.open(self.path) as container:
                if not container.streams.video:
                    self.why = "it holds no video stream"
        except (av.FFmpegError, OSError) as exc:  # its str() repeats the errno and the path
            self.why = f"cannot open it: {exc.strerror or type(exc).__name__}"
        except ValueError as exc:  # a name FFmpeg refuses (a NUL in it)
            self.why = f"cannot open it: {exc}"
