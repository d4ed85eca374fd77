"""Which names are snapshot names: what the live view and the API serve from the snapshots
folder, and what retention deletes there."""

from __future__ import annotations

import pytest

from sinks.snapshot_files import is_snapshot_name

GOOD = "lobby/20261204-120000-123_42.jpg"


def test_a_name_the_snapshots_sink_makes_is_a_snapshot_name() -> None:
    assert is_snapshot_name(GOOD)
    assert is_snapshot_name("lobby/20261204-120000-123_42-frame.jpg")


@pytest.mark.parametrize(
    "name",
    [
        GOOD + "\n",  # `$` in a pattern would take it
        "lobby\n/20261204-120000-123_42.jpg",
        "../lobby/20261204-120000-123_42.jpg",
        "/lobby/20261204-120000-123_42.jpg",
        "lobby/sub/20261204-120000-123_42.jpg",
        "lobby/20261204-120000-123_42.png",
    ],
)
def test_anything_else_is_not_a_snapshot_name(name: str) -> None:
    assert not is_snapshot_name(name)
