"""A database written by real runs (two cameras, two runs, with snapshots) for the API's
tests, and the app over it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, insert

from pipeline.config import parse_config
from pipeline.runner import Pipeline
from pipeline.web.app import create_app
from sinks.sql.models import LineCrossingRow, ZoneVisit
from tests.conftest import write_video
from tests.pipeline.test_pipelining import EagerDetector


@pytest.fixture(scope="session")
def stored(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The URL of a SQLite database two runs wrote, snapshots included."""
    folder = tmp_path_factory.mktemp("stored")
    clip = write_video(folder / "clip.mp4", frames=12, size=(96, 64))
    url = f"sqlite:///{folder / 'detections.db'}"
    config = parse_config(
        f"cameras:\n  - id: lobby\n    source: {clip}\n  - id: door\n    source: {clip}\n"
        f"sinks:\n  - type: sql\n    url: {url}\n"
        f"  - type: snapshots\n    dir: {folder / 'snapshots'}\n"
    )
    for _ in range(2):
        summary = Pipeline(config, detector=EagerDetector()).run()
        assert summary.ok
    _add_scene_rows(url)
    return url


T0 = datetime(2026, 11, 21, 10, 0, tzinfo=timezone.utc)


def _add_scene_rows(url: str) -> None:
    """Line crossings and zone visits of both runs, as the analytics would store them."""
    crossings = [  # run, camera, line, track, label, direction, minutes after T0
        (1, "door", "gate", 1, "person", "in", 1),
        (1, "door", "gate", 2, "person", "in", 2),
        (1, "door", "gate", 2, "person", "out", 3),
        (1, "door", "gate", 3, "car", "in", 40),
        (2, "lobby", "desk", 1, "person", "out", 5),
        (2, "door", "gate", 1, "Person", "in", 7),
    ]
    visits = [  # run, camera, zone, track, label, entered and left (minutes after T0)
        (1, "lobby", "queue", 1, "person", 0, 20),
        (1, "lobby", "queue", 2, "person", 10, 50),
        (1, "lobby", "queue", 2, "person", 55, 56),
        (2, "door", "porch", 4, "car", 3, 4),
    ]
    engine = create_engine(url)
    with engine.begin() as conn:
        for run, camera, line, track, label, direction, minute in crossings:
            sides = ("left", "right") if direction == "in" else ("right", "left")
            conn.execute(
                insert(LineCrossingRow).values(
                    run_id=run, camera=camera, line=line, track_id=track, label=label,
                    label_id=1, direction=direction, from_side=sides[0], to_side=sides[1],
                    frame=minute, time=T0 + timedelta(minutes=minute),
                )
            )  # fmt: skip
        for run, camera, zone, track, label, entered, left in visits:
            conn.execute(
                insert(ZoneVisit).values(
                    run_id=run, camera=camera, zone=zone, track_id=track, label=label,
                    label_id=1, entered_frame=entered, entered_at=T0 + timedelta(minutes=entered),
                    last_frame=left - 1, last_time=T0 + timedelta(minutes=left - 1),
                    left_frame=left, left_at=T0 + timedelta(minutes=left),
                    dwell_s=(left - 1 - entered) * 60.0, at_stream_end=False,
                )
            )  # fmt: skip
    engine.dispose()


@pytest.fixture
def client(stored: str) -> Iterator[TestClient]:
    with TestClient(create_app(db=stored)) as test_client:
        yield test_client


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))
