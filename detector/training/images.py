"""Image files as training sees them: upright, as their EXIF orientation says.

Cameras store a photo as shot and tag how to turn it; annotation tools, OpenCV's imread
(which `pipeline` uses for image folders) and most training code show it turned, so boxes
are drawn on the turned image. Sizes and pixels here are those of the turned image.
"""

from __future__ import annotations

import errno
import mmap
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

BROKEN_LINK = "a broken symbolic link (or a loop of them)"
"""What a path is that exists but leads to no file or folder."""
SWAPS_SIDES = (5, 6, 7, 8)
"""EXIF orientations that turn the image by 90 degrees (width and height swap)."""
JPEG_END = b"\xff\xd9"
"""The marker a whole JPEG ends with (EOI); its compressed data cannot hold these bytes."""
CUT_SHORT = "a JPEG cut short (a copy or download that did not finish?)"


class UnreadableImage(Exception):
    """An image file that is missing or cannot be decoded; the message says why."""


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the upright image at `path`, from its header. UnreadableImage
    also for a JPEG cut short, which only decoding would find otherwise."""
    with _opened(path) as image:
        if image.format == "JPEG" and _cut_short(path):
            raise UnreadableImage(CUT_SHORT)
        width, height = image.size
        if image.getexif().get(0x0112) in SWAPS_SIDES:
            return height, width
        return width, height


def decode_rgb(path: Path) -> npt.NDArray[np.uint8]:
    """The upright pixels of the image at `path`, RGB uint8 [H, W, 3]."""
    with _opened(path) as image:
        try:
            return np.array(ImageOps.exif_transpose(image).convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise UnreadableImage(f"unreadable image ({type(e).__name__}: {e})") from None


def _cut_short(jpeg: Path) -> bool:
    """Whether the JPEG file `jpeg` lacks its end marker after its first scan. Reads its
    last bytes only, unless more follows the marker (a motion photo's video, padding):
    then the file, from its first scan on."""
    with jpeg.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - 64))
        if file.read().rstrip(b"\0").endswith(JPEG_END):
            return False
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            scan = _first_scan(data)
            return scan is not None and data.find(JPEG_END, scan) < 0


def _first_scan(data: mmap.mmap) -> int | None:
    """Where the first scan (SOS marker) of the JPEG `data` begins: past the header
    segments, whose embedded thumbnails hold end markers of their own; the end of `data`
    when it ends before one; None when a segment is malformed (decoding will say)."""
    at = 2  # past the start marker
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker == 0xDA:
            return at
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
        else:
            at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return len(data)


def _not_an_image(path: Path) -> str | None:
    """Why `path` is no image file, in a few words, or None when it is a regular file."""
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, ValueError):  # ValueError: a NUL in the name
        return BROKEN_LINK if os.path.lexists(path) else "missing image"
    except OSError as e:
        if e.errno == errno.ELOOP:
            return BROKEN_LINK
        return f"cannot be read ({e.strerror or e})"  # e.g. a name too long for the system
    if stat.S_ISDIR(mode):
        return "a folder, not an image"
    if not stat.S_ISREG(mode):
        return "not a regular file (a device or a pipe), not an image"
    return None


@contextmanager
def _opened(path: Path) -> Iterator[Image.Image]:
    """The PIL image at `path`, its header read; UnreadableImage if it will not open."""
    why_not = _not_an_image(path)
    if why_not:
        raise UnreadableImage(why_not)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(path)
    except (OSError, Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise UnreadableImage(f"unreadable image ({type(e).__name__}: {e})") from None
    with image:
        yield image
