"""Damage as a bad sector or a broken copy leaves it in an image file."""

from __future__ import annotations

import numpy as np


def with_garbage(jpeg: bytes, garbage: bytes, end: int | None = None) -> bytes:
    """`jpeg` with `garbage` written over the middle of its compressed data (of its first
    image: before `end`, where more images follow)."""
    scan = jpeg.index(b"\xff\xda")
    start = scan + 2 + int.from_bytes(jpeg[scan + 2 : scan + 4], "big")
    middle = (start + (len(jpeg) if end is None else end) - len(garbage)) // 2
    return jpeg[:middle] + garbage + jpeg[middle + len(garbage) :]


def ending_early(jpeg: bytes, kept: int) -> bytes:
    """`jpeg` cut after `kept` bytes and given its end marker back, as a copy or a tool
    that closes what it could not write: a whole file whose compressed data ends early."""
    return jpeg[:kept].rstrip(b"\xff") + b"\xff\xd9"  # no fill byte left to be a marker


def random_bytes(count: int, seed: int, high: int = 256) -> bytes:
    """`count` random bytes below `high`, as a bad sector or a broken copy leaves them."""
    return np.random.default_rng(seed).integers(0, high, count, dtype=np.uint8).tobytes()


def broken_huffman_tables(jpeg: bytes) -> bytes:
    """`jpeg` with its first Huffman table's code counts overwritten past what any table
    holds: its header reads, its decoder refuses it ("Bogus Huffman table definition")."""
    table = jpeg.index(b"\xff\xc4") + 5  # past the marker, length, and class and id byte
    return jpeg[:table] + b"\xff" * 16 + jpeg[table + 16 :]
