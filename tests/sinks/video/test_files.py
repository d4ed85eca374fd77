"""Retention deletes only a camera's own files, oldest first, and `delete_old_videos` only
the video sink's files older than the cutoff."""

from __future__ import annotations

import os
import time
from fractions import Fraction
from pathlib import Path

from pipeline.types import StreamInfo
from sinks.video.files import Rotation, delete_old_videos
from sinks.video.sink import VideoSink
from tests.sinks.video.conftest import LABELS, write_stream


def _old_file(directory: Path, name: str, age_s: float) -> Path:
    path = directory / name
    path.write_bytes(b"old video")
    then = time.time() - age_s
    os.utime(path, (then, then))
    return path


def test_retention_keeps_only_the_newest_files_of_the_camera(tmp_path: Path) -> None:
    other_camera = _old_file(tmp_path, "cam10_20200101-000000.mp4", 10)
    unrelated = _old_file(tmp_path, "notes.txt", 10)
    sink = VideoSink(tmp_path, LABELS, rotation=Rotation(segment_s=0.5, max_segments=2))
    write_stream(sink, "cam1", 25, 64, 48, Fraction(10))  # 5 files of 5 frames
    sink.close()

    files = sink.files["cam1"]
    assert len(files) == 5
    assert sink.deleted == files[:3]
    assert sorted(tmp_path.iterdir()) == sorted([*files[3:], other_camera, unrelated])


def test_retention_deletes_files_older_than_max_age_when_a_camera_starts(tmp_path: Path) -> None:
    stale = _old_file(tmp_path, "cam1_20200101-000000.mp4", 3 * 3600)
    stale_2 = _old_file(tmp_path, "cam1_20200101-000000-2.mp4", 2 * 3600)
    recent = _old_file(tmp_path, "cam1_20200102-000000.mp4", 600)
    other_camera = _old_file(tmp_path, "cam2_20200101-000000.mp4", 3 * 3600)
    sink = VideoSink(tmp_path, LABELS, rotation=Rotation(max_age_s=3600))
    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))

    assert sorted(sink.deleted) == sorted([stale, stale_2])
    assert recent.exists() and other_camera.exists()
    sink.close()


def test_retention_passes_over_a_dead_link_named_as_a_video_and_deletes_the_rest(
    tmp_path: Path,
) -> None:
    stale = _old_file(tmp_path, "cam1_20200101-000000.mp4", 3 * 3600)
    dead = tmp_path / "cam1_20200101-000001.mp4"
    dead.symlink_to("moved-away.mp4")  # as a file gone since the folder was listed
    sink = VideoSink(tmp_path, LABELS, rotation=Rotation(max_age_s=3600))
    sink.start(StreamInfo("cam1", 64, 48, Fraction(25), source="synthetic"))
    sink.close()
    # was: "cannot list DIR for retention", and nothing deleted, run after run
    assert sink.deleted == [stale] and dead.is_symlink()
    stale = _old_file(tmp_path, "cam1_20200101-000002.mp4", 3 * 3600)
    assert delete_old_videos(tmp_path, time.time() - 3600) == [stale]


def test_delete_old_videos_removes_only_video_files_older_than_the_cutoff(tmp_path: Path) -> None:
    old = _old_file(tmp_path, "gate_20200101-000000.mp4", 7200)
    new = _old_file(tmp_path, "gate_20200101-010000.mp4", 60)
    not_ours = _old_file(tmp_path, "holiday.mp4", 7200)
    named_alike = _old_file(tmp_path, "gate_20200101-000000.mp4\n", 7200)  # not the sink's
    cutoff = time.time() - 3600

    assert delete_old_videos(tmp_path, cutoff, dry_run=True) == [old]
    assert old.exists()
    assert delete_old_videos(tmp_path, cutoff) == [old]
    assert sorted(tmp_path.iterdir()) == sorted([new, not_ours, named_alike])


def test_retention_of_files_written_within_one_clock_tick_keeps_the_last_written(
    tmp_path: Path,
) -> None:
    """Files whose modification times are equal (a coarse file-system clock, or written
    fast) are ordered as they were named: stamp, then the plain name before -2, -3."""
    names = ["cam1_20270115-080000.mp4", "cam1_20270115-080000-2.mp4",
             "cam1_20270115-080000-10.mp4", "cam1_20270115-080001.mp4"]  # fmt: skip
    then = time.time() - 5
    for name in names:
        (tmp_path / name).write_bytes(b"video")
        os.utime(tmp_path / name, (then, then))
    rotation = Rotation(max_segments=2)
    deleted = rotation.prune(tmp_path, "cam1", keep=None)
    assert sorted(p.name for p in deleted) == sorted(names[:2])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[2:])
