"""The live view picture's run, without a browser: the config it runs and its one-line refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import live_view_picture
from benchmarks.live_view_picture import main, picture_config
from pipeline.config import (
    FileSourceConfig,
    LiveSinkConfig,
    SqlSinkConfig,
    VideoSinkConfig,
    parse_config,
)

CONFIG = """
cameras:
  - id: campus
    source: clip.avi
    zones:
      - id: road
        polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]]
detector:
  model: person_ssdlite
sinks:
  - type: video
    dir: out/video
  - type: sql
    url: sqlite:///out/run.db
  - type: live
    port: 8080
"""


def test_the_run_serves_one_live_view_on_a_free_local_port_beside_the_api(
    tmp_path: Path,
) -> None:
    config = parse_config(CONFIG, check_sources=False)
    built = picture_config(config, tmp_path)
    lives = [s for s in built.sinks if isinstance(s, LiveSinkConfig)]
    assert [(s.host, s.port) for s in lives] == [("127.0.0.1", 0)]  # the config's own replaced
    server = built.server()
    assert server is not None and (server.host, server.port) == ("127.0.0.1", 0)
    assert built.http is not None  # the view is at /live/, as in the picture
    assert [s.type for s in config.sinks] == ["video", "sql", "live"]  # the input is unchanged


def test_the_clip_plays_in_real_time_and_the_files_go_to_the_given_folder(
    tmp_path: Path,
) -> None:
    config = parse_config(CONFIG, check_sources=False)
    built = picture_config(config, tmp_path)
    (camera,) = built.cameras
    assert isinstance(camera.source, FileSourceConfig)
    assert camera.source.realtime and camera.source.path == "clip.avi"
    assert camera.zones == config.cameras[0].zones
    video = next(s for s in built.sinks if isinstance(s, VideoSinkConfig))
    sql = next(s for s in built.sinks if isinstance(s, SqlSinkConfig))
    assert video.dir.parent == tmp_path
    assert sql.url == f"sqlite:///{tmp_path / 'sink1.db'}"
    source = config.cameras[0].source
    assert isinstance(source, FileSourceConfig) and not source.realtime


def test_a_missing_clip_is_refused_in_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "vtest-zones.yaml"
    path.write_text(CONFIG.replace("clip.avi", str(tmp_path / "vtest.avi")))
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(path), "--out", str(tmp_path / "view.jpg")])
    message = str(exc.value.code)
    assert "file not found" in message and "vtest.avi" in message
    assert "\n" not in message
    assert not (tmp_path / "view.jpg").exists()


def test_a_missing_browser_is_refused_in_one_line_before_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = tmp_path / "clip.avi"
    clip.write_bytes(b"not played: the run never starts")
    path = tmp_path / "vtest-zones.yaml"
    path.write_text(CONFIG.replace("clip.avi", str(clip)))
    monkeypatch.setattr(live_view_picture.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit) as exc:
        main(["--config", str(path), "--out", str(tmp_path / "view.jpg")])
    assert exc.value.code == (
        "Debian's chromium and chromium-driver are not installed "
        "(apt-get install -y chromium chromium-driver)"
    )


def test_a_browser_that_does_not_start_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.common.exceptions import SessionNotCreatedException

    def fails(**_: object) -> None:
        raise SessionNotCreatedException(
            "session not created: Chrome failed to start: exited normally.\n"
            "  (DevToolsActivePort file doesn't exist)\nStacktrace:\n#0 0x55d0 <unknown>"
        )

    monkeypatch.setattr(webdriver, "Chrome", fails)
    with pytest.raises(SystemExit) as exc:
        live_view_picture.chrome(tmp_path / "profile")
    assert exc.value.code == (
        "cannot start Chromium through chromedriver: session not created: Chrome failed to "
        "start: exited normally."
    )
