"""Which shard runs which camera."""

from __future__ import annotations

import pytest

from pipeline.cluster.assign import assign, shard_of

CAMERAS = [f"cam{i}" for i in range(60)]
SHARDS = ["shard-0", "shard-1", "shard-2"]


def test_every_camera_goes_to_exactly_one_shard_and_all_shards_get_some() -> None:
    plan = assign(CAMERAS, SHARDS)
    placed = [c for cams in plan.values() for c in cams]
    assert sorted(placed) == sorted(CAMERAS)
    assert all(plan[s] for s in SHARDS)


def test_the_same_camera_lands_on_the_same_shard_whatever_the_order() -> None:
    assert assign(CAMERAS, SHARDS) == {
        s: sorted(c, key=CAMERAS.index) for s, c in assign(CAMERAS[::-1], SHARDS[::-1]).items()
    }


def test_when_a_shard_goes_only_its_cameras_move() -> None:
    before = {c: shard_of(c, SHARDS) for c in CAMERAS}
    survivors = ["shard-0", "shard-2"]
    after = {c: shard_of(c, survivors) for c in CAMERAS}
    moved = {c for c in CAMERAS if before[c] != after[c]}
    assert moved == {c for c in CAMERAS if before[c] == "shard-1"}


def test_no_shard_left_is_said() -> None:
    with pytest.raises(ValueError, match="no shard left to run camera 'cam0'"):
        shard_of("cam0", [])
