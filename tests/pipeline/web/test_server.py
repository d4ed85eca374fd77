"""The HTTP server on a real socket: a run's /healthz, /metrics and /api/status, and the
`serve` command."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.cli import main
from pipeline.config import parse_config
from pipeline.runner import Pipeline
from tests.conftest import free_port, write_video
from tests.pipeline.cli_runs import ROOT
from tests.pipeline.test_pipelining import EagerDetector


def get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(
    url: str, until: float, process: subprocess.Popen[str], token: str | None = None
) -> tuple[int, str]:
    """`get(url)` once the server answers; fails with the process's stderr if it ended."""
    while True:
        try:
            return get(url, token)
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None:
                raise AssertionError(process.communicate()[1]) from None
            if time.monotonic() > until:
                raise
            time.sleep(0.2)


def test_a_run_with_a_failed_camera_fails_healthz_and_its_metrics_say_which(
    tmp_path: Path,
) -> None:
    clip = write_video(tmp_path / "clip.mp4", frames=20, size=(96, 64))
    port = free_port()
    config = parse_config(
        f"cameras:\n  - id: good\n    source: {{type: file, path: {clip}, loop: true, realtime: true}}\n"
        f"  - id: broken\n    source: {tmp_path / 'missing.mp4'}\n"
        f"sinks:\n  - type: sql\n    url: sqlite:///{tmp_path / 'det.db'}\n"
        f"http:\n  port: {port}\n",
        check_sources=False,
    )
    pipeline = Pipeline(config, detector=EagerDetector())
    seen: dict[str, object] = {}

    def watch() -> None:
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while True:  # the broken camera fails once the readers start
                try:
                    status, body = get(f"{base}/healthz")
                except (urllib.error.URLError, ConnectionError):
                    status, body = 0, ""
                if status == 503 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            seen["healthz"] = (status, body)
            seen["metrics"] = get(f"{base}/metrics")[1]
            seen["status"] = get(f"{base}/api/status")[1]
        finally:
            pipeline.stop.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    summary = pipeline.run()
    watcher.join()
    assert not summary.ok
    healthz = seen["healthz"]
    assert isinstance(healthz, tuple)
    status, body = healthz
    assert status == 503
    problems = json.loads(body)["problems"]
    assert problems == [summary.cameras["broken"].error]
    values = {
        (s.name, s.labels.get("camera")): s.value
        for family in text_string_to_metric_families(str(seen["metrics"]))
        for s in family.samples
    }
    assert values[("ssd_camera_ok", "broken")] == 0
    assert values[("ssd_camera_ok", "good")] == 1
    cameras = {c["camera"]: c for c in json.loads(str(seen["status"]))["cameras"]}
    assert cameras["broken"]["status"].startswith("FAILED: camera broken")
    assert cameras["good"]["ok"] is True


def serve(db: str, port: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "serve", "--db", db, "--port", str(port), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serve_answers_over_a_stored_database_until_ctrl_c(stored: str) -> None:
    port = free_port()
    token = "a-token-of-sixteen-or-more"
    process = serve(stored, port, "--token", token)
    try:
        base = f"http://127.0.0.1:{port}"
        status, _ = wait_for(f"{base}/api/runs", time.monotonic() + 30, process)
        assert status == 401
        status, body = get(f"{base}/api/runs", token)
        assert status == 200 and json.loads(body)["total"] == 2
        status, page = get(f"{base}/", token)
        assert status == 200 and "Runs (2)" in page
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 130, stderr  # Ctrl-C, as `run` says it
    assert f"at http://127.0.0.1:{port}/" in stderr
    assert token not in stderr


def test_serve_of_a_missing_database_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "none.db"
    assert main(["serve", "--db", f"sqlite:///{missing}", "--port", "0"]) == 1
    stderr = capsys.readouterr().err
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and "none.db" in stderr
    assert not missing.exists()


def test_serve_refuses_to_listen_beyond_loopback_without_a_token(
    stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--db", stored, "--host", "0.0.0.0"]) == 2
    stderr = capsys.readouterr().err
    assert "--token" in stderr and stderr.count("\n") == 1
    # what serve takes, not the config's words (`allow_unauthenticated: true`, `auth`)
    assert "--allow-unauthenticated" in stderr
    assert "allow_unauthenticated" not in stderr and "auth`" not in stderr


def test_serve_refusing_a_host_names_its_own_options_not_the_configs(
    stored: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", "--db", stored, "--host", "0.0.0.0"]) == 2
    stderr = capsys.readouterr().err
    assert "--allow-unauthenticated" in stderr and "PIPELINE_HTTP_TOKEN" in stderr
    assert "allow_unauthenticated:" not in stderr and "LIVE_PASSWORD" not in stderr
    assert "cameras" not in stderr  # serve shows stored data, no camera


def test_validate_names_the_http_port_another_program_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import preflight

    monkeypatch.setattr(preflight, "check_detector", lambda config: ("1 class", {}))  # not its test
    clip = write_video(tmp_path / "clip.mp4", frames=2, size=(64, 48))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = tmp_path / "cams.yaml"
        config.write_text(f"cameras:\n  - id: cam\n    source: {clip}\nhttp:\n  port: {port}\n")
        assert main(["validate", str(config)]) == 1
    stderr = capsys.readouterr().err
    assert f"http: cannot listen on 127.0.0.1:{port}" in stderr


def test_serve_fails_in_one_line_when_uvicorn_cannot_serve_the_bound_socket(
    stored: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.web import server

    def unservable(host: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # uvicorn needs a stream
        sock.bind((host, port))
        return sock

    monkeypatch.setattr(server, "bind", unservable)
    assert main(["serve", "--db", stored, "--port", "0"]) == 1
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("error: http server: cannot serve on the bound socket: ")


def test_run_refuses_an_http_port_another_program_holds_before_preparing_the_detector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def prepares(*args: object, **kwargs: object) -> None:
        raise AssertionError("the run went on to prepare the detector")

    monkeypatch.setattr("pipeline.runner.build_run_detector", prepares)
    clip = write_video(tmp_path / "clip.mp4", frames=2, size=(64, 48))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = tmp_path / "cams.yaml"
        config.write_text(f"cameras:\n  - id: cam\n    source: {clip}\nhttp:\n  port: {port}\n")
        assert main(["run", str(config), "--no-progress"]) == 1
    stderr = capsys.readouterr().err
    assert stderr == f"error: http: cannot listen on 127.0.0.1:{port}: Address already in use\n"


def test_a_run_whose_server_cannot_serve_its_socket_stops_before_reading_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.web import beside_run
    from pipeline.web.server import ServerError

    def unservable(host: str, port: int) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # uvicorn needs a stream
        sock.bind((host, port))
        return sock

    monkeypatch.setattr(beside_run, "bind", unservable)
    clip = write_video(tmp_path / "clip.mp4", frames=2, size=(64, 48))
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\nhttp:\n  port: 0\n")
    with pytest.raises(ServerError) as refused:
        Pipeline(config, detector=EagerDetector()).run()
    assert str(refused.value).startswith("http server: cannot serve on the bound socket: ")
    assert "\n" not in str(refused.value)


def test_a_server_failing_during_the_run_is_failed_in_the_summary_and_the_cameras_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    from pipeline.cli.run import run_exit_status
    from pipeline.progress import Progress

    async def breaks(self: uvicorn.Server) -> None:
        raise RuntimeError("the event loop broke")

    monkeypatch.setattr(uvicorn.Server, "main_loop", breaks)  # once it serves
    clip = write_video(tmp_path / "clip.mp4", frames=6, size=(64, 48))
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {clip}\nhttp:\n  port: {free_port()}\n"
        f"sinks:\n  - type: video\n    dir: {tmp_path / 'video'}\n"
    )
    summary = Pipeline(config, detector=EagerDetector()).run()
    assert summary.frames == 6 and all(c.ok for c in summary.cameras.values())
    assert not summary.sink_errors and len(list((tmp_path / "video").glob("*.mp4"))) == 1
    assert summary.server_error == (
        "http server failed: RuntimeError: the event loop broke; it serves nothing more in this run"
    )
    assert not summary.ok and run_exit_status(summary, None) == 1
    printed = io.StringIO()
    Progress(["cam"], enabled=False).print_summary(summary, printed)
    assert f"  {summary.server_error}\n" in printed.getvalue()
