"""Image files as training sees them: upright, as their EXIF orientation says.

Cameras store a photo as shot and tag how to turn it; annotation tools, OpenCV's imread
(which `pipeline` uses for image folders) and most training code show it turned, so boxes
are drawn on the turned image. Sizes and pixels here are those of the turned image.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps

from detector.training.jpeg import CUT_SHORT, CorruptJpeg, cut_short, decode_checked

log = logging.getLogger(__name__)

BROKEN_LINK = "a broken symbolic link (or a loop of them)"
"""What a path is that exists but leads to no file or folder."""
JPEGS = ("JPEG", "MPO")
"""Pillow's formats of JPEG files: an MPO (a camera's multi-picture file: a JPEG with more
images after its end) is checked, and decoded, as its first image."""
SIXTEEN_BIT_GREY = ("I;16", "I;16L", "I;16B", "I;16N", "I")
"""Pillow's modes of 16-bit greyscale images (PNG, TIFF; "I" as older Pillow versions opened
them, 32-bit "I" images being refused on opening): decoded to their top 8 bits, as OpenCV's
imread (and so `run` on a folder of images) reads them; Pillow's own conversion to RGB
clips them instead, turning all but the darkest pixels white."""
WIDE_MODES = {"I": "32-bit integer", "F": "32-bit floating-point"}
"""Pillow's modes of images with no one way to 8-bit colour (their range is not stated)."""
SWAPS_SIDES = (5, 6, 7, 8)
"""EXIF orientations that turn the image by 90 degrees (width and height swap)."""


class UnreadableImage(Exception):
    """An image file that is missing or cannot be decoded; the message says why."""


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of the upright image at `path`, from its header. UnreadableImage
    also for a JPEG cut short, which only decoding would find otherwise."""
    with _opened(path) as image:
        if image.format in JPEGS and cut_short(path):
            raise UnreadableImage(CUT_SHORT)
        width, height = image.size
        try:
            orientation = image.getexif().get(0x0112)  # a PNG's may follow its pixels: decoded
        except (OSError, ValueError) as e:
            raise UnreadableImage(f"unreadable image ({type(e).__name__}: {e})") from None
        if orientation in SWAPS_SIDES:
            return height, width
        return width, height


def decode_rgb(path: Path) -> npt.NDArray[np.uint8]:
    """The upright pixels of the image at `path`, RGB uint8 [H, W, 3]. A JPEG with garbage
    in its compressed data (`jpeg.CORRUPT`), or data that ends early (`jpeg.ENDS_EARLY`,
    `jpeg.SCANS_MISSING`), is decoded as libjpeg decodes it, and named in a warning, once
    (`warn_corrupt`); one too broken to decode is UnreadableImage saying where its garbage
    lies."""
    with _opened(path) as image:
        try:
            if image.format not in JPEGS:
                return _upright_rgb(image)
            pixels, problem = decode_checked(path, _upright_rgb)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            raise UnreadableImage(f"unreadable image ({type(e).__name__}: {e})") from None
        except CorruptJpeg as e:
            raise UnreadableImage(f"unreadable image: {e}") from None
    if problem is not None:
        warn_corrupt(path, problem)
    return pixels


@functools.cache
def warn_corrupt(path: Path, problem: str) -> None:
    """Names a JPEG with garbage in its compressed data, or data that ends before its
    image, once a process (the loader's workers each once). Training goes on with it as
    decoded, as other tools do (libjpeg only warns): datasets in wide use hold a few such
    files, and a few wrong blocks in one image cost less than a run refused."""
    log.warning("%s: %s; used as it decodes (copy it again if it was broken)", path, problem)


def _upright_rgb(image: Image.Image) -> npt.NDArray[np.uint8]:
    """The pixels of `image`, decoded, turned upright, RGB uint8 [H, W, 3]."""
    upright = ImageOps.exif_transpose(image)
    if upright.mode in SIXTEEN_BIT_GREY:
        top = (np.asarray(upright).astype(np.uint16) >> 8).astype(np.uint8)
        return np.repeat(top[..., None], 3, axis=2)
    return np.array(upright.convert("RGB"))


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


def _stored_in_16_bits(image: Image.Image) -> bool:
    """Whether `image`'s file stores 16-bit pixels (its decoder's raw mode says so)."""
    tiles = image.tile if isinstance(image, ImageFile.ImageFile) else []
    for tile in tiles:
        args = tile[3]  # (codec, extents, offset, args); args: the raw mode, or it first
        rawmode = args if isinstance(args, str) else (args or ("",))[0]
        if "16" not in str(rawmode):
            return False
    return bool(tiles)


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
        if image.mode in WIDE_MODES and not _stored_in_16_bits(image):
            raise UnreadableImage(
                f"a {WIDE_MODES[image.mode]} image, not one of 8 or 16 bits a channel: "
                "convert it to 8 bits"
            )
        yield image
