"""A database written by real runs (two cameras, two runs, with snapshots) for the API's
tests, and the app over it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from pipeline.config import parse_config
from pipeline.runner import Pipeline
from pipeline.web.app import create_app
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
        summary = Pipeline(config, detector=EagerDetector()).run()  # type: ignore[arg-type]
        assert summary.ok
    return url


@pytest.fixture
def client(stored: str) -> Iterator[TestClient]:
    with TestClient(create_app(db=stored)) as test_client:
        yield test_client


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))
