"""`serve` stops on SIGINT and SIGTERM with the exit status `run` gives: 128 + the signal."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from sinks.sql.database import DatabaseUrl, make_engine
from sinks.sql.schema import create_schema
from tests.conftest import free_port
from tests.pipeline.cli_runs import ROOT


@pytest.fixture
def database(tmp_path: Path) -> str:
    """The URL of a SQLite database holding the pipeline's tables, no rows."""
    url = f"sqlite:///{tmp_path / 'detections.db'}"
    engine = make_engine(DatabaseUrl(url))
    try:
        create_schema(engine)
    finally:
        engine.dispose()
    return url


def answers(url: str, process: subprocess.Popen[str], deadline: float) -> int:
    """The status `url` answers with once the server is up; fails with its stderr if the
    process ended first."""
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(process.communicate()[1]) from None
            time.sleep(0.2)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_serve_stopped_by_a_signal_exits_128_plus_it(database: str, sig: signal.Signals) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--db", database, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert answers(f"http://127.0.0.1:{port}/healthz", process, time.monotonic() + 60) == 200
    finally:
        process.send_signal(sig)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 128 + sig, stderr
    assert f"{sig.name}: stopping" in stderr and "Traceback" not in stderr
