"""Which shard runs which camera: rendezvous (highest random weight) hashing.

A camera goes to the shard with the highest hash of (camera, shard): the same camera lands
on the same shard for as long as that shard lives, and when a shard goes, only its cameras
move (each to the survivor that scores next highest for it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence


def _weight(camera_id: str, shard: str) -> int:
    digest = hashlib.blake2b(f"{camera_id}\0{shard}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_of(camera_id: str, shards: Sequence[str]) -> str:
    """The shard of `shards` that runs `camera_id`; raises ValueError when there is none."""
    if not shards:
        raise ValueError(f"no shard left to run camera {camera_id!r}")
    return max(shards, key=lambda shard: (_weight(camera_id, shard), shard))


def assign(camera_ids: Iterable[str], shards: Sequence[str]) -> dict[str, list[str]]:
    """Every shard's cameras, in the order given (a shard may get none)."""
    plan: dict[str, list[str]] = {shard: [] for shard in shards}
    for camera_id in camera_ids:
        plan[shard_of(camera_id, shards)].append(camera_id)
    return plan
