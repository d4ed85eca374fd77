"""Image files as training sees them: upright, as their EXIF orientation says.

Cameras store a photo as shot and tag how to turn it; annotation tools, OpenCV's imread
(which `pipeline` uses for image folders) and most training code show it turned, so boxes
are drawn on the turned image. Sizes and pixels here are those of the turned image.
"""

from __future__ import annotations

import errno
import mmap
import os
import re
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
CORRUPT = "a corrupt JPEG: garbage in its compressed data"
SCAN_START = 0xDA
"""The second byte of the marker that starts a scan (SOS)."""
BETWEEN_SCANS = frozenset((0xC4, 0xCC, SCAN_START, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)))
"""Second bytes of the markers of the segments that may end a scan: tables (DHT, DAC,
DQT), the next scan, a line count (DNL), a restart interval (DRI), a comment, APPn."""
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""A marker in a scan's compressed data: 0xFF not followed by 0x00 (a stuffed 0xFF byte),
a restart marker's second byte (0xD0-0xD7, within the scan) or 0xFF (a fill byte)."""


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
    """The upright pixels of the image at `path`, RGB uint8 [H, W, 3]. UnreadableImage also
    for a JPEG whose compressed data holds a marker where none can be (`CORRUPT`), which
    Pillow decodes to grey or noise without a word, or refuses as a "broken data stream".
    Garbage without such a marker is not found: Pillow ignores the warnings of libjpeg."""
    with _opened(path) as image:
        try:
            stray = _stray_marker(path) if image.format == "JPEG" else None
            if stray is not None:
                raise UnreadableImage(f"{CORRUPT} at byte {stray}")
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


def _stray_marker(jpeg: Path) -> int | None:
    """Where the first marker in the JPEG file `jpeg` lies that cannot be where it is: in a
    scan's compressed data, a marker can only end the scan, followed by the end of the
    image or by segments that may come between scans, each ending where the next marker
    begins. None when there is none (also when the file is cut short before its end
    marker: `_cut_short` tells that)."""
    with jpeg.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        at = _first_scan(data)
        while at is not None and at + 4 <= len(data):
            marker = data[at + 1]
            if marker == JPEG_END[1]:
                return None  # what follows the end (a motion photo's video) is not looked at
            if data[at] != 0xFF or marker not in BETWEEN_SCANS:
                return at
            segment, at = at, at + 2 + int.from_bytes(data[at + 2 : at + 4], "big")
            if at > len(data):  # the segment's length runs past the file's end marker
                return segment if data.find(JPEG_END, segment) >= 0 else None
            if marker == SCAN_START:
                found = _MARKER.search(data, at)  # at C speed: no Python loop over the data
                at = found.start() if found else None
            else:
                while data[at : at + 2] == b"\xff\xff":  # fill bytes before a marker
                    at += 1
        return None


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
