"""JPEG files checked by their structure where Pillow does not look: cut short, with
garbage in their compressed data, or with compressed data that ends before their image.

Pillow decodes a JPEG cut short or with garbage in it to grey or noise, or refuses it as a
"broken data stream"; libjpeg warns of most such garbage ("Corrupt JPEG data"), but Pillow
ignores its warnings. What is checked here costs a look at the file's last bytes, a search
of its compressed data for markers (at C speed), a read of its scan headers, and how far
into its data the decoder reads: no second decoding, but of a file found damaged.

The decoder of a JPEG of several scans (a progressive one) reads all of them before it
decodes a pixel, so how far it reads tells nothing there: in such a JPEG a marker where
none can be is found, and data that ends before its last scan (its scan headers leave
coefficients without their last bits), but not garbage without a marker, nor data that
ends early within its last scan. libjpeg warns of those, and Pillow neither raises nor
tells (`ImageFile.LOAD_TRUNCATED_IMAGES`, off, is about files whose bytes run out: those
are found as cut short); finding them would take a decoder that tells its warnings, and a
second decoding.
"""

from __future__ import annotations

import io
import mmap
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NamedTuple, TypeVar, cast

from PIL import Image

Decoded = TypeVar("Decoded")

JPEG_END = b"\xff\xd9"
"""The marker a whole JPEG ends with (EOI); its compressed data cannot hold these bytes."""
CUT_SHORT = "a JPEG cut short (a copy or download that did not finish?)"
CORRUPT = "a corrupt JPEG: garbage in its compressed data"
ENDS_EARLY = "a corrupt JPEG: its compressed data ends before its image does (the rest is grey)"
SCANS_MISSING = (
    "a corrupt JPEG: its compressed data ends before its last scans (its image lacks the "
    "detail or colour they add)"
)
SCAN_START = 0xDA
"""The second byte of the marker that starts a scan (SOS)."""
BETWEEN_SCANS = frozenset((0xC4, 0xCC, SCAN_START, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)))
"""Second bytes of the markers of the segments that may end a scan: tables (DHT, DAC,
DQT), the next scan, a line count (DNL), a restart interval (DRI), a comment, APPn."""
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
"""A marker in a scan's compressed data: 0xFF not followed by 0x00 (a stuffed 0xFF byte),
a restart marker's second byte (0xD0-0xD7, within the scan) or 0xFF (a fill byte)."""
HELD_BACK = 16
"""Bytes at the end of a JPEG's compressed data that its decoder must ask for: one that
completes the image without them has been thrown out of step by garbage (libjpeg: "N
extraneous bytes before marker 0xd9"). A few bytes more than the image needs, which some
encoders leave, are let pass."""
READ_AHEAD = 8
"""Bytes past the end of a JPEG's compressed data that its decoder may read without needing
them (libjpeg reads up to 64 bits ahead; of 800 whole JPEGs, it read at most 7): one that
asks for more ran out of data (libjpeg: "Corrupt JPEG data: premature end of data
segment") and decodes the rest of its image grey. They are given as zero bytes, the zero
bits libjpeg pads with: a JPEG that ran out within them (in its last block or so) passes,
those blocks decoded from zero bits where libjpeg leaves all but the first grey. Only a
decoder that stops when its image is complete tells this: that of a JPEG of one
Huffman-coded scan, as Pillow reads it."""
ONE_SCAN_FRAMES = frozenset((0xC0, 0xC1))
"""Second bytes of the markers that start the frames of Huffman-coded sequential JPEGs
(SOF0 baseline, SOF1 extended); a progressive (SOF2) or arithmetic-coded one is checked
for data that ends early only by its scans (`SCANS_MISSING`)."""
DCT_FRAMES = frozenset((0xC0, 0xC1, 0xC2, 0xC9, 0xCA))
"""Second bytes of the markers that start frames of 64 coefficients a block, not
hierarchical: those whose scans are checked for coefficients left without their last bits
(`SCANS_MISSING`)."""
ALL_COEFFICIENTS = (1 << 64) - 1


class CorruptJpeg(Exception):
    """A JPEG with garbage in its compressed data; the message says where."""


class _RanOut(Exception):
    """The decoder of a JPEG asked for more than its compressed data holds."""


def cut_short(jpeg: Path) -> bool:
    """Whether the JPEG file `jpeg` lacks its end marker after its first scan. Reads its
    last bytes only, unless more follows the marker (a motion photo's video, padding):
    then the file, from its first scan on."""
    with jpeg.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        file.seek(max(0, size - 64))
        if file.read().rstrip(b"\0").endswith(JPEG_END):
            return False
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            scan = first_scan(data)
            return scan is not None and data.find(JPEG_END, scan) < 0


def decode_checked(
    jpeg: Path, decode: Callable[[Image.Image], Decoded]
) -> tuple[Decoded, str | None]:
    """`decode` of the JPEG file `jpeg`, opened anew, and what is wrong with its compressed
    data (None: nothing found): a marker that cannot be where it is, its decoder completing
    the image before the last `HELD_BACK` bytes of the data, (one scan) asking for more
    than `READ_AHEAD` bytes past its end, or its scans ending before its image has every
    coefficient's last bit. A file cut short, or one the decoder refuses, is
    left to Pillow to refuse (CorruptJpeg with Pillow's reason where garbage was found)."""
    with _mapped(jpeg) as data:
        try:
            span, problem = compressed_span(data), None
        except CorruptJpeg as e:
            span, problem = None, str(e)
        held = _HeldBack(data, span)
        try:
            # IO[bytes] as Pillow reads it; not buffered, which would read on past a hold
            with Image.open(cast(IO[bytes], held)) as image:
                decoded = decode(image)
        except _RanOut:
            with Image.open(jpeg) as image:  # as Pillow decodes it, the rest grey
                return decode(image), ENDS_EARLY
        except (OSError, ValueError) as e:
            if problem is None:
                raise
            raise CorruptJpeg(
                f"{problem}; too broken to decode ({type(e).__name__}: {e})"
            ) from None
        if span and not held.asked:
            problem = f"{CORRUPT} (its image was complete before its data ended)"
        elif span and not span.complete:
            problem = SCANS_MISSING
        return decoded, problem


@contextmanager
def _mapped(path: Path) -> Iterator[mmap.mmap]:
    """The bytes of the file at `path`, mapped read-only, not copied."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        yield data


class Span(NamedTuple):
    """Where the compressed data of a JPEG lies, whether its decoder stops as soon as its
    image is complete (one Huffman-coded scan), and whether its scans give every coefficient
    of every component its last bit (a JPEG that ends before its last scans does not)."""

    start: int
    end: int
    one_scan: bool
    complete: bool = True


def compressed_span(data: mmap.mmap) -> Span | None:
    """Where the compressed data of the JPEG `data` lies: from where its first scan's data
    begins to where its last one ends, before the marker (and any fill bytes) after it. None
    when it is cut short before its end marker, or its header is malformed (decoding says
    so). CorruptJpeg where a marker lies that cannot be where it is: in a scan's
    compressed data, a marker can only end the scan, followed by the end marker or by
    segments that may come between scans, each ending where the next marker begins."""
    at, frame, components = _header(data)
    start, end, scans = None, 0, 0
    done = dict.fromkeys(components, 0)  # component: its coefficients given their last bit
    while at is not None and at + 2 <= len(data):
        marker = data[at + 1]
        if data[at] == 0xFF and marker == JPEG_END[1] and start is not None:
            # what follows (a motion photo's video, an MPO's next image) is not looked at
            complete = frame not in DCT_FRAMES or all(
                bits & ALL_COEFFICIENTS == ALL_COEFFICIENTS for bits in done.values()
            )
            return Span(start, end, scans == 1 and frame in ONE_SCAN_FRAMES, complete)
        if data[at] != 0xFF or marker not in BETWEEN_SCANS:
            raise CorruptJpeg(f"{CORRUPT} at byte {at}")
        if at + 4 > len(data):
            return None
        segment, at = at, at + 2 + int.from_bytes(data[at + 2 : at + 4], "big")
        if at > len(data):  # the segment's length runs past the file's end marker
            if data.find(JPEG_END, segment) >= 0:
                raise CorruptJpeg(f"{CORRUPT} at byte {segment}")
            return None
        if marker == SCAN_START:
            start, scans = at if start is None else start, scans + 1
            _note_scan(data[segment + 4 : at], done)
            found = _MARKER.search(data, at)  # at C speed: no Python loop over the data
            if found is None:
                return None
            scan, at = at, found.start()
            end = at
            while end > scan and data[end - 1] == 0xFF:  # fill bytes before the marker
                end -= 1
        else:
            while data[at : at + 2] == b"\xff\xff":  # fill bytes before a marker
                at += 1
    return None


def _note_scan(header: bytes, done: dict[int, int]) -> None:
    """Marks in `done` the coefficients that the scan of `header` (its SOS segment past the
    length) gives their last bit: Ss to Se of its components, where its Al is 0."""
    count = header[0] if header else 0
    if len(header) < 4 + 2 * count or header[3 + 2 * count] & 0x0F:
        return
    first, last = header[1 + 2 * count], header[2 + 2 * count]
    bits = (1 << (last + 1)) - (1 << first) if first <= last else 0
    for component in header[1 : 1 + 2 * count : 2]:
        if component in done:
            done[component] |= bits


def first_scan(data: mmap.mmap) -> int | None:
    """Where the first scan (SOS marker) of the JPEG `data` begins: past the header
    segments, whose embedded thumbnails hold end markers of their own; the end of `data`
    when it ends before one; None when a segment is malformed (decoding will say)."""
    return _header(data)[0]


def _header(data: mmap.mmap) -> tuple[int | None, int | None, bytes]:
    """`first_scan` of the JPEG `data`, the second byte of the marker of its frame (SOFn)
    before it (None: none seen), and the ids of the frame's components."""
    at, frame, components = 2, None, b""  # past the start marker
    while at + 4 <= len(data):
        if data[at] != 0xFF:
            return None, frame, components
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker == SCAN_START:
            return at, frame, components
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            at += 2
        else:
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # not DHT, DAC
                frame = marker
                # length, precision, height, width, count, then (id, sampling, table) each
                components = data[at + 10 : at + 10 + 3 * data[at + 9] : 3]
            at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return len(data), frame, components


class _HeldBack(io.RawIOBase):
    """The bytes of a JPEG file as its decoder reads them, a read stopping short `HELD_BACK`
    bytes before the end of its compressed data `span` (the decoder asks again for what
    follows): `asked` tells whether it ever read past. Past the end of the data of one
    scan, `READ_AHEAD` zero bytes (no marker; an image complete reads them unused) and
    then _RanOut: the decoder needs more than the data holds."""

    def __init__(self, data: mmap.mmap, span: Span | None) -> None:
        super().__init__()
        self.data, self.at, self.asked = data, 0, False
        self.hold = max(span.start, span.end - HELD_BACK) if span else len(data)
        self.end = span.end if span and span.one_scan else None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.at

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self.at, os.SEEK_END: len(self.data)}[whence]
        self.at = max(0, base + offset)
        return self.at

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        end = min(self.at + len(buffer), len(self.data))
        if self.end is not None:
            if self.at >= self.end + READ_AHEAD and len(buffer):
                raise _RanOut
            end = min(self.at + len(buffer), self.end + READ_AHEAD)
        if self.at < self.hold < end:
            end = self.hold
        count = max(0, end - self.at)
        view = memoryview(buffer)
        data_end = min(end, len(self.data) if self.end is None else self.end)
        copied = max(0, data_end - self.at)
        view[:copied] = self.data[self.at : self.at + copied]
        view[copied:count] = bytes(count - copied)  # zero bits, as libjpeg pads with
        self.at += count
        self.asked = self.asked or self.at > self.hold
        return count
