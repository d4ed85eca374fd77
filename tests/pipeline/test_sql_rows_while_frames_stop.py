"""In a run, a live camera whose frames stop (its source blocked, or reconnecting) still has
the rows of its last frames stored once they have waited the SQL sink's `flush_interval_s`,
while the run goes on: no later message has to come to make them due."""

from __future__ import annotations

import contextlib
import sqlite3
import time
from pathlib import Path

import pytest

from pipeline import source_check
from pipeline.config import parse_config
from pipeline.runner import Pipeline
from tests.pipeline.stalling import OneBox, Running, Stalling

FRAMES = 8


def _stored_frames(db: Path) -> list[int]:
    """The frames of the detections table's rows (none before the table exists)."""
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        try:
            return [f for (f,) in conn.execute("SELECT frame FROM detections ORDER BY frame")]
        except sqlite3.OperationalError:  # the table is not there yet
            return []


@pytest.mark.parametrize("pause", ["source-blocks", "reconnecting"])
def test_a_camera_whose_frames_stop_has_its_last_rows_stored_while_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pause: str
) -> None:
    source = Stalling(blocks=pause == "source-blocks", frames=FRAMES)
    monkeypatch.setattr(source_check, "make_source", lambda c, *_: source)
    db = tmp_path / "rows.db"
    config = parse_config(
        "cameras:\n  - id: cam\n    source: rtsp://camera.test/stream\n"
        "    reconnect: {initial_delay_s: 0.01}\n"
        f"sinks:\n  - type: sql\n    url: sqlite:///{db}\n    flush_interval_s: 0.1\n"
    )
    detector = OneBox()
    with Running(Pipeline(config, detector=detector), source) as run:
        assert source.stalled.wait(10), "the camera never stalled"
        stored: list[int] = []
        for _ in range(500):  # 10 s at most; a row waits 0.1 s
            stored = _stored_frames(db)
            if stored and stored == detector.seen:
                break
            time.sleep(0.02)
        still_running = run.alive and not source.resume.is_set()
    assert still_running
    assert detector.seen and stored == detector.seen
    assert run.summary is not None and run.summary.sink_errors == []
    assert _stored_frames(db) == stored  # the end of the run stored none twice
