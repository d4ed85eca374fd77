"""Freed frame buffers kept for the next frames, instead of handed back to the system.

Every decoded frame gets new RGB buffers (a 1080p frame is 6.2 MB), and frees them once
the sinks are done with it. glibc's malloc serves such a block from a fresh `mmap` and
returns it with `munmap` when freed, so every frame pays the page faults of writing into
new memory, and the unmapping, which for a numpy array happens wherever Python drops the
last reference, holding the interpreter lock. Raising glibc's mmap and trim thresholds
keeps freed blocks in malloc's heap for reuse (what it saves: docs/performance.md,
"Frame memory kept for reuse").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

MMAP_THRESHOLD_BYTES = 32 << 20
"""Blocks below this come from malloc's heap: a 4K RGB frame (24.9 MB) included. glibc
refuses more than 32 MiB on 64-bit machines."""
TRIM_THRESHOLD_BYTES = 256 << 20
"""Freed memory malloc keeps before it hands any back: dozens of frames in flight."""
USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES")
"""Environment variables through which a user tunes glibc's malloc: set, they are left to
rule."""

_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3


def keep_freed_frames() -> bool:
    """Makes glibc's malloc keep freed frame buffers for reuse, for the whole process; True
    if it now does. Nothing happens (False) without glibc, or where the user tunes malloc
    through the environment (`USER_SETTINGS`)."""
    if not _glibc() or any(os.environ.get(k) for k in USER_SETTINGS):
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    mallopt = libc.mallopt
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    done = bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)) and done
    if not done:
        log.debug("glibc refused the malloc thresholds for frame buffers")
    return done


def _glibc() -> bool:
    """Whether this process runs on glibc (not musl, macOS or Windows)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr, or no such name here
        return False
