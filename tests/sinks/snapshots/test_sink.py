"""The snapshot writer writes each ended track's snapshot as JPEG at the name it carries;
the snapshots sink counts them, prunes by age, count and size, and never touches files it
did not name; nor does the `retention` command."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.types import LabelMap, StreamEnd, TrackEvent
from sinks.base import SinkError
from sinks.snapshots.retention import Retention, old_snapshots, prune_snapshots
from sinks.snapshots.sink import SnapshotSink
from sinks.snapshots.writer import SnapshotWriter
from sinks.sql.sink import SqlSink
from tests.sinks.snapshots.builders import COLOUR, ended, snapshot, summary


def test_the_crop_and_the_frame_are_written_as_jpeg_at_their_names(tmp_path: Path) -> None:
    sink = SnapshotSink(tmp_path)
    snap = SnapshotWriter(tmp_path, quality=95).save(
        snapshot(tmp_path, "lobby", 4, full_frame=True)
    )
    assert snap.lost is None and snap.stored_paths == (snap.path, snap.frame_path)
    sink.write(ended(snap, "lobby", 4))
    sink.close()
    crop = cv2.imread(snap.path)
    assert snap.frame_path is not None
    whole = cv2.imread(snap.frame_path)
    assert crop is not None and whole is not None
    assert crop.shape == snap.crop.shape and whole.shape == (96, 128, 3)
    # JPEG is lossy: close to the RGB pixels, read back as BGR
    assert np.abs(crop[..., ::-1].astype(int) - COLOUR).max() < 8
    assert sink.written == 1
    assert sink.describe() == f"snapshots {tmp_path}: 1 written"
    assert not list(tmp_path.rglob(".*.tmp"))


def test_a_whole_frame_already_encoded_is_written_as_it_is(tmp_path: Path) -> None:
    encoded = cv2.imencode(".jpg", np.zeros((96, 128, 3), np.uint8))[1].tobytes()
    snap = replace(snapshot(tmp_path, "lobby", 5, full_frame=True), frame=encoded)
    SnapshotWriter(tmp_path).save(snap)
    assert snap.frame_path is not None and Path(snap.frame_path).read_bytes() == encoded


def test_tracks_closed_by_the_stream_end_are_counted(tmp_path: Path) -> None:
    sink = SnapshotSink(tmp_path)
    snap = SnapshotWriter(tmp_path).save(snapshot(tmp_path, "cam", 2))
    sink.end(StreamEnd("cam", 10, (TrackEvent("ended", summary("cam", 2), snap),)))
    assert Path(snap.path).is_file() and sink.written == 1


def test_events_without_a_snapshot_write_nothing(tmp_path: Path) -> None:
    sink = SnapshotSink(tmp_path)
    sink.write(ended(None))
    sink.close()
    assert sink.written == 0 and list(tmp_path.iterdir()) == []


def write_files(sink: SnapshotSink, directory: Path, count: int) -> list[Path]:
    """`count` snapshots, oldest first, last written 100 s apart, the newest 100 s ago: far
    enough apart that a slow machine does not move one across an age a test sets."""
    paths = []
    now = time.time()
    writer = SnapshotWriter(directory)
    for track in range(1, count + 1):
        snap = writer.save(snapshot(directory, "cam", track))
        sink.write(ended(snap, "cam", track))
        path = Path(snap.path)
        written = now - 100 * (count + 1 - track)
        os.utime(path, (written, written))
        paths.append(path)
    return paths


def test_retention_keeps_the_newest_files_by_count(tmp_path: Path) -> None:
    sink = SnapshotSink(tmp_path, retention=Retention(max_files=3), prune_interval_s=1e9)
    paths = write_files(sink, tmp_path, 5)
    sink.close()
    assert [p.exists() for p in paths] == [False, False, True, True, True]
    assert sorted(sink.deleted) == paths[:2]


def test_retention_by_age_and_by_size(tmp_path: Path) -> None:
    sink = SnapshotSink(tmp_path, prune_interval_s=1e9)
    paths = write_files(sink, tmp_path, 4)
    now = time.time()
    assert sorted(prune_snapshots(tmp_path, Retention(max_age_s=250), now)) == paths[:2]
    newest = paths[-1].stat().st_size
    assert prune_snapshots(tmp_path, Retention(max_bytes=newest + 1), now) == [paths[2]]
    assert [p.exists() for p in paths] == [False, False, False, True]


def test_retention_touches_only_snapshot_files(tmp_path: Path) -> None:
    (tmp_path / "cam").mkdir()
    mine = tmp_path / "cam" / "notes.jpg"
    mine.write_bytes(b"x")
    other = tmp_path / "readme.txt"
    other.write_bytes(b"x")
    os.utime(mine, (0, 0))
    os.utime(other, (0, 0))
    assert prune_snapshots(tmp_path, Retention(max_age_s=1, max_files=1)) == []
    assert mine.exists() and other.exists()


def test_retention_passes_over_a_dead_link_or_a_folder_named_as_a_snapshot(
    tmp_path: Path,
) -> None:
    sink = SnapshotSink(tmp_path, prune_interval_s=1e9)
    old, new = write_files(sink, tmp_path, 2)
    name = old.name.replace("_1.jpg", "_{}.jpg")
    (old.parent / name.format(7)).symlink_to("nowhere")  # as a file gone since the listing
    (old.parent / name.format(8)).mkdir()
    # was: "cannot clean DIR: No such file or directory", and nothing deleted
    assert old_snapshots(tmp_path, time.time() - 150) == [old]
    assert not old.exists() and new.exists() and (old.parent / name.format(8)).is_dir()


def test_retention_refuses_limits_that_are_not_positive() -> None:
    with pytest.raises(ValueError, match="max_files"):
        Retention(max_files=0)


def test_retention_runs_at_most_every_interval(tmp_path: Path) -> None:
    sink = SnapshotSink(tmp_path, retention=Retention(max_files=1), prune_interval_s=1e9)
    paths = write_files(sink, tmp_path, 3)
    assert all(p.exists() for p in paths)  # pruned at the start only, so far
    sink.close()
    assert [p.exists() for p in paths] == [False, False, True]


def test_the_retention_command_deletes_snapshots_older_than_the_age(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "snaps"
    sink = SnapshotSink(folder, prune_interval_s=1e9)
    paths = write_files(sink, folder, 3)  # written 300, 200 and 100 s ago
    other = folder / "cam" / "mine.jpg"
    other.write_bytes(b"x")
    os.utime(other, (0, 0))
    assert old_snapshots(folder, time.time() - 150, dry_run=True) == paths[:2]
    assert all(p.exists() for p in paths)
    db = f"sqlite:///{tmp_path / 'det.db'}"
    SqlSink(db, LabelMap(())).close()  # a database of ours, with one run
    code = main(["retention", "--db", db, "--older-than", "250s", "--snapshot-dir", str(folder)])
    assert code == 0
    assert f"deleted 1 snapshot files from {folder}" in capsys.readouterr().out
    assert [p.exists() for p in paths] == [False, True, True] and other.exists()


def test_a_folder_that_cannot_be_made_is_one_line_at_open(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    with pytest.raises(SinkError) as raised:
        SnapshotSink(blocker / "snaps")
    assert str(raised.value) == (
        f"snapshots sink: cannot make the folder {blocker / 'snaps'}: {blocker} is not a folder"
    )


def test_another_write_error_stops_the_sink_with_one_line_naming_the_file(tmp_path: Path) -> None:
    sink = SnapshotSink(tmp_path)
    snap = snapshot(tmp_path, "cam", 1)
    (tmp_path / snap.name).mkdir(parents=True)  # a folder where the file should go
    snap = SnapshotWriter(tmp_path).save(snap)
    assert snap.lost is not None and snap.stored_paths == (None, None)
    with pytest.raises(SinkError) as raised:
        sink.write(ended(snap))
    assert str(raised.value).startswith(f"snapshots sink: cannot write {tmp_path / snap.name}: ")
    assert "\n" not in str(raised.value) and sink.lost == 0
