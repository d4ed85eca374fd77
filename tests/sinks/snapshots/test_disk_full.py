"""A full disk does not stop the snapshots sink: snapshots without room are lost (marked,
their paths null where stored) and counted, writing goes on once there is room, and the run
ends with one line naming the full file system. The disk is filled for real: a small tmpfs
(skipped where mounting is refused).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sinks.base import SinkError
from sinks.snapshots.sink import SnapshotSink
from sinks.snapshots.writer import SnapshotWriter
from tests.sinks.small_disk import SmallDisk, small_disk
from tests.sinks.snapshots.builders import ended, snapshot


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    with small_disk(tmp_path / "disk", "2m") as mounted:
        yield mounted


def test_a_full_disk_drops_and_counts_snapshots_then_writing_resumes(disk: SmallDisk) -> None:
    folder = disk.path / "snapshots"
    sink = SnapshotSink(folder)
    writer = SnapshotWriter(folder, room_check_s=0.0)
    sink.write(ended(writer.save(snapshot(folder, "cam", 1)), "cam", 1))
    disk.fill()
    for track in (2, 3):
        lost = writer.save(snapshot(folder, "cam", track, size=256, full_frame=True))
        assert lost.lost is not None and lost.lost.transient
        assert lost.stored_paths == (None, None) and not Path(lost.path).exists()
        sink.write(ended(lost, "cam", track))  # no raise
    assert (sink.written, sink.lost) == (1, 2)
    disk.free()
    fits = writer.save(snapshot(folder, "cam", 4))
    sink.write(ended(fits, "cam", 4))
    assert Path(fits.path).is_file() and fits.stored_paths[0] == fits.path
    assert sink.written == 2
    assert not list(folder.rglob(".*.tmp"))  # no half-written file left behind
    with pytest.raises(SinkError) as raised:
        sink.close()
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("snapshots sink: 2 snapshots lost: disk full: the file system at")
    assert str(disk.path) in message
