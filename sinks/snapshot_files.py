"""The one naming rule for track snapshots, shared by what names them (the pipeline's
snapshot stage), what writes and prunes them (the snapshots sink) and what serves them
(the live view).

A track's crop is `<camera>/<stamp>_<track>.jpg` under the snapshot folder, its whole frame
`<camera>/<stamp>_<track>-frame.jpg`; `<stamp>` is the UTC time of the track's first
detection, `YYYYMMDD-HHMMSS-mmm` (milliseconds). Track ids start again at 1 in every run;
the stamp keeps names of different runs apart, and makes names sort by time.
Camera ids are letters, digits, `_`, `-`, `.` and start with a letter or digit (the config
checks it), so a name never leaves its camera's folder.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

_STAMP = "%Y%m%d-%H%M%S"

# \Z, not $: $ also matches before a trailing newline
CAMERA_DIR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")
"""A camera's folder: a camera id as the config allows it."""
SNAPSHOT_FILE = re.compile(r"^\d{8}-\d{6}-\d{3}_\d{1,19}(-frame)?\.jpg\Z")
"""A snapshot file's name within its camera's folder (crop or whole frame)."""


def snapshot_name(camera: str, track_id: int, first_time: float) -> str:
    """The crop's file, relative to the snapshot folder: `<camera>/<stamp>_<track>.jpg`."""
    when = datetime.fromtimestamp(first_time, timezone.utc)
    stamp = f"{when.strftime(_STAMP)}-{when.microsecond // 1000:03d}"
    return f"{camera}/{stamp}_{track_id}.jpg"


def frame_name(name: str) -> str:
    """The whole frame's file for the crop `name`: `<camera>/<stamp>_<track>-frame.jpg`."""
    return name.removesuffix(".jpg") + "-frame.jpg"


def is_snapshot_name(name: str) -> bool:
    """True for a relative name `snapshot_name`/`frame_name` can make (and nothing else:
    no `..`, no absolute path, no other folder)."""
    parts = name.split("/")
    return (
        len(parts) == 2
        and CAMERA_DIR.match(parts[0]) is not None
        and SNAPSHOT_FILE.match(parts[1]) is not None
    )
