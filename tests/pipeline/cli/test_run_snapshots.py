"""Snapshots end to end through `python -m pipeline run`: one JPEG per ended track, of its
best-scoring box, named by the rule; its path in the `tracks` row and in `track.ended`."""

from __future__ import annotations

import math
import sqlite3
from pathlib import Path

import cv2

from sinks.snapshot_files import is_snapshot_name
from tests.conftest import VideoFactory, free_port
from tests.pipeline.cli_runs import run_cli, write_config
from tests.pipeline.test_run_e2e import Collector

MARGIN = 0.25


def test_every_ended_track_has_a_snapshot_of_its_best_box(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    video = synthetic_video("gate.mp4", frames=12, size=(160, 120), fps=10)
    port = free_port()
    collector = Collector(port, cameras=1)
    collector.start()
    config = write_config(tmp_path, {"gate": video}, port)
    folder = tmp_path / "snaps"
    with config.open("a") as text:
        text.write(
            f"  - type: snapshots\n    dir: {folder}\n    margin: {MARGIN}\n    full_frame: true\n"
        )
    proc = run_cli(config)
    out, err = proc.communicate(timeout=180)
    collector.join(30)
    assert proc.returncode == 0, err
    assert f"snapshots {folder}: " in out

    with sqlite3.connect(tmp_path / "det.db") as conn:
        rows = conn.execute(
            "SELECT track_id, best_x1, best_y1, best_x2, best_y2, snapshot_path, "
            "snapshot_frame_path FROM tracks"
        ).fetchall()
    assert rows  # the config confirms the model's boxes as tracks
    ended = {e["track_id"]: e for _, e in collector.events if e["type"] == "track.ended"}
    assert set(ended) == {r[0] for r in rows}
    for track_id, x1, y1, x2, y2, path, frame_path in rows:
        assert ended[track_id]["snapshot_path"] == path
        assert ended[track_id]["snapshot_frame_path"] == frame_path
        assert is_snapshot_name(str(Path(path).relative_to(folder)))
        crop, whole = cv2.imread(path), cv2.imread(frame_path)
        assert crop is not None and whole is not None and whole.shape == (120, 160, 3)
        # the crop is the best box (as stored) widened by the margin, within the frame
        mx, my = MARGIN * (x2 - x1), MARGIN * (y2 - y1)
        width = min(160, math.ceil(x2 + mx)) - max(0, math.floor(x1 - mx))
        height = min(120, math.ceil(y2 + my)) - max(0, math.floor(y1 - my))
        # the database keeps floats, the crop was cut from float32 boxes: a pixel either way
        assert abs(crop.shape[1] - width) <= 1 and abs(crop.shape[0] - height) <= 1
    files = sorted(folder.rglob("*.jpg"))
    assert len(files) == 2 * len(rows)
