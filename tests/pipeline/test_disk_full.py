"""A run whose output disk fills up: the summary tells the truth about every output.

The disk is a small tmpfs of the test's own, filled for real once the video shows frames
(skipped where mounting is not allowed).
"""

from __future__ import annotations

import io
import re
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import av

from pipeline.config import parse_config
from pipeline.progress import Progress
from pipeline.runner import Pipeline
from pipeline.types import Detections, Frame
from tests.conftest import VideoFactory
from tests.pipeline.test_pipelining import EagerDetector
from tests.sinks.small_disk import SmallDisk, small_disk
from tests.sinks.sql.builders import wait_for
from tests.sinks.video.conftest import decode

FRAMES = 60


class DiskFillingDetector(EagerDetector):
    """Fills `disk` when it reaches frame `at`, once the video file holds a playable frame."""

    def __init__(self, disk: SmallDisk, at: int) -> None:
        super().__init__()
        self.disk = disk
        self.at = at
        self.filled = False

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        if not self.filled and any(f.index >= self.at for f in frames):
            wait_for(self._video_plays, "the video to hold a playable frame")
            self.disk.fill()
            self.filled = True
        return super().detect(frames)

    def _video_plays(self) -> bool:
        files = list((self.disk.path / "video").glob("*.mp4"))
        try:
            return bool(files) and len(decode(files[0])[0]) > 0
        except av.error.InvalidDataError:  # read while a fragment is half written: not yet
            return False


def test_summary_counts_exactly_the_video_frames_and_the_rows_lost_on_a_full_disk(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    clip = synthetic_video("clip.mp4", frames=FRAMES, fps=10)
    with small_disk(tmp_path / "disk", "2m") as disk:
        url = f"sqlite:///{disk.path / 'det.db'}"
        config = parse_config(
            f"cameras:\n  - id: cam\n    source: {clip}\n"
            "detector:\n  batch_size: 2\n"
            f"sinks:\n  - type: video\n    dir: {disk.path / 'video'}\n"
            f"  - type: sql\n    url: {url}\n    spool_dir: {disk.path / 'spool'}\n"
            # memory holds every row of the run: a writer thread that falls behind (a
            # loaded machine) never moves rows to the spool file while the disk has room,
            # where they would be kept, not lost, and the counts below would vary with it
            "    batch_size: 5\n    buffer_rows: 100\n    close_timeout_s: 0.3\n"
        )
        summary = Pipeline(config, detector=DiskFillingDetector(disk, at=30)).run()
        out = io.StringIO()
        Progress(["cam"], enabled=False).print_summary(summary, out)
        disk.free()
        with sqlite3.connect(disk.path / "det.db") as conn:
            (stored,) = conn.execute("SELECT count(*) FROM detections").fetchone()
        text = out.getvalue()

    assert summary.cameras["cam"].detections == FRAMES  # one box a frame
    video = re.search(
        rf"  -> video {re.escape(str(disk.path / 'video'))}: 1 file\(s\), 1 cut short by an "
        r"error, (\d+) frames lost \(camera 'cam' (\d+)\)\n"
        r"       cam_[\d-]+\.mp4: (\d+) frames, cut short\n",
        text,
    )
    assert video is not None, text
    assert video[1] == video[2] and int(video[1]) + int(video[3]) == FRAMES
    sql = re.search(
        rf"  -> sql {re.escape(url)}: (\d+) detections, \d+ tracks written "
        r"\(disk full \d+ time\(s\); (\d+) detections(, \d+ tracks)?( and the run's end)? lost\)",
        text,
    )
    assert sql is not None, text
    written, lost = int(sql[1]), int(sql[2])
    assert written == stored and written + lost == FRAMES
    assert "ridden out" not in text
    (video_error, sql_error) = summary.sink_errors
    assert video_error.startswith(f"video sink: {video[1]} frames lost (camera 'cam' {video[1]}): ")
    assert f"disk full: the file system at {disk.path}" in video_error
    assert f"sql sink: {lost} detections" in sql_error
