"""The live view's picture in the docs: a run seen at the server's /live/ in headless Chromium.

Runs a config (config/vtest-zones.yaml) in this process (`pipeline.runner.Pipeline`) with
its file sources played in real time, a `live` sink and an `http:` section on 127.0.0.1 and
any free port added (so the view is at /live/, beside the metrics and the API), and the
sinks that write files writing into a temporary folder. It opens the view in Debian's
Chromium (headless, through Selenium and chromedriver, as tests/sinks/live_view/test_page.py
does) and, once the view shows a frame past `--after-s` seconds of the clip while the
camera's counts hold still, saves a screenshot as a JPEG and stops the run. It prints
first the CPU, its cores, the load average and the date, and last the frames per second
the camera ran at. Picture: docs/live-view.md.

    python -m benchmarks.live_view_picture --out docs/images/live-view.jpg
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from benchmarks.machine import machine_line
from pipeline.config import (
    ConfigError,
    FileSourceConfig,
    LiveSinkConfig,
    PipelineConfig,
    SinkConfig,
    SnapshotSinkConfig,
    SqlSinkConfig,
    VideoSinkConfig,
    load_config,
)
from pipeline.config.http import HttpConfig
from pipeline.runner import Pipeline
from pipeline.summary import RunSummary

HOST = "127.0.0.1"
AFTER_S = 23.0
"""The default moment of the clip: vtest.avi's frame 230, two people in the zone and more
about the line, with their trails, and counts that hold still for the 3 s from frame 227."""
WINDOW = (880, 779)
"""The page's size in the browser (width, height): its one tile, the picture and its counts."""
JPEG_QUALITY = 80
WAIT_S = 120.0
"""Longest wait for the server to start, then for the frame past `--after-s`, then for
counts that hold still (`STEADY_S`)."""
STEADY_S = 0.5
"""How long the counts must not have changed when the picture is taken (and until it is
taken), so that the frame drawn, a little behind the counts the API gives, draws them too."""


REFRESH = """
const done = arguments[arguments.length - 1];
refresh().then(() => {
  const tile = document.querySelector(`section.tile[data-camera='${arguments[0]}']`);
  done(tile.querySelector(".fps").textContent + ", " + tile.querySelector(".frames").textContent);
});
"""
"""Run in the page: its refresh of the counts, then the camera's frame rate and count shown."""


def picture_config(config: PipelineConfig, out: Path) -> PipelineConfig:
    """`config` with its file sources played in real time, its files written into `out`,
    and its one live sink served beside the metrics and the API on 127.0.0.1 at any free
    port (at /live/)."""
    cameras = [
        camera.model_copy(update={"source": camera.source.model_copy(update={"realtime": True})})
        if isinstance(camera.source, FileSourceConfig)
        else camera
        for camera in config.cameras
    ]
    sinks: list[SinkConfig] = []
    for i, sink in enumerate(config.sinks):
        if isinstance(sink, VideoSinkConfig | SnapshotSinkConfig):
            sink = sink.model_copy(update={"dir": out / f"sink{i}"})
        elif isinstance(sink, SqlSinkConfig) and sink.url.startswith("sqlite"):
            sink = sink.model_copy(update={"url": f"sqlite:///{out / f'sink{i}.db'}"})
        elif isinstance(sink, LiveSinkConfig):
            continue  # replaced by the one below
        sinks.append(sink)
    sinks.append(LiveSinkConfig(type="live", host=HOST, port=0))
    http = HttpConfig(host=HOST, port=0)
    return config.model_copy(update={"cameras": cameras, "sinks": sinks, "http": http})


def browser_problem() -> str | None:
    """Why Chromium cannot be driven here, in one line; None when it can."""
    if shutil.which("chromium") is None or shutil.which("chromedriver") is None:
        return (
            "Debian's chromium and chromium-driver are not installed "
            "(apt-get install -y chromium chromium-driver)"
        )
    try:
        import selenium.webdriver  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


def clip_frame_rate(config: PipelineConfig, camera_id: str) -> float:
    """The frame rate of `camera_id`'s file, as its container says (10 for vtest.avi)."""
    camera = next(c for c in config.cameras if c.id == camera_id)
    if not isinstance(camera.source, FileSourceConfig):
        raise SystemExit(f"camera {camera_id}: its source is not a file")
    capture = cv2.VideoCapture(str(Path(camera.source.path).expanduser()))
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    finally:
        capture.release()
    if not fps > 0:
        raise SystemExit(f"camera {camera_id}: {camera.source.path} gives no frame rate")
    return fps


def newest_frame(view: str, camera_id: str) -> int | None:
    """The index of the frame the view shows of `camera_id` now; None before its first."""
    try:
        with urllib.request.urlopen(f"{view}cameras/{camera_id}.jpg", timeout=5) as response:
            return int(response.headers["X-Frame-Index"])
    except urllib.error.HTTPError as exc:
        if exc.code == 503:  # no frame yet
            return None
        raise


def scene_counts(view: str, camera_id: str) -> str:
    """`camera_id`'s zone and line counts as the view's API gives them now (as JSON)."""
    with urllib.request.urlopen(f"{view}api/cameras", timeout=5) as response:
        cameras = json.load(response)["cameras"]
    camera = next(c for c in cameras if c["id"] == camera_id)
    return json.dumps([camera["zones"], camera["lines"]])


def wait_for(predicate: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """`predicate`'s first true value, asked every 0.1 s; exits saying what did not come."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout_s:.0f} s waiting for {what}")


def chrome(profile: Path) -> Any:
    """Debian's Chromium, headless, through chromedriver, showing pages at `WINDOW`."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(arg)
    options.page_load_strategy = "eager"  # MJPEG images never finish loading
    service = webdriver.ChromeService(executable_path=shutil.which("chromedriver"))
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except WebDriverException as exc:
        why = browser_said(exc)
        raise SystemExit(f"cannot start Chromium through chromedriver: {why}") from None
    # the window's size includes what a headed window would draw around the page: the
    # page itself is given WINDOW
    metrics = {"width": WINDOW[0], "height": WINDOW[1], "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    return driver


def browser_said(exc: Exception) -> str:
    """The first line of what selenium (a `WebDriverException`) or the browser said: its
    messages run on into the driver's stack trace."""
    said = str(getattr(exc, "msg", None) or "").strip()
    return said.splitlines()[0] if said else type(exc).__name__


def screenshot(driver: Any, out: Path) -> tuple[int, int]:
    """The page as the browser shows it, as a JPEG at `out`; its width and height."""
    shot = cv2.imdecode(np.frombuffer(driver.get_screenshot_as_png(), np.uint8), cv2.IMREAD_COLOR)
    if shot is None:
        raise SystemExit("the browser's screenshot is not an image")
    if not cv2.imwrite(str(out), shot, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise SystemExit(f"cannot write {out}")
    return shot.shape[1], shot.shape[0]


def steady_screenshot(
    driver: Any, view: str, camera_id: str, after: int, out: Path, timeout_s: float
) -> tuple[tuple[int, int], str]:
    """A screenshot taken once the view shows `camera_id`'s frame `after` or a later one,
    while its counts hold still (`STEADY_S`), the page having just asked for them: the
    counts listed under the picture are then those it draws. Its size, and the frame
    rate and count the page shows."""
    deadline = time.monotonic() + timeout_s
    counts, since = scene_counts(view, camera_id), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = scene_counts(view, camera_id)
        if now != counts:
            counts, since = now, time.monotonic()
        elif (
            time.monotonic() - since >= STEADY_S and (newest_frame(view, camera_id) or -1) >= after
        ):
            # the page's own refresh (it runs every second): the counts and fps it lists now
            shown = driver.execute_async_script(REFRESH, camera_id)
            size = screenshot(driver, out)
            if scene_counts(view, camera_id) == counts:
                return size, shown
    raise SystemExit(
        f"timed out after {timeout_s:.0f} s waiting for camera {camera_id}'s frame {after} "
        f"with counts that held still for {STEADY_S} s"
    )


class Run:
    """`Pipeline.run` in a thread of its own, stopped (as Ctrl-C stops it) by `stop`."""

    def __init__(self, config: PipelineConfig, config_source: str) -> None:
        self.pipeline = Pipeline(config, config_source=config_source)
        self.summary: RunSummary | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="pipeline")
        self._thread.start()

    def _run(self) -> None:
        try:
            self.summary = self.pipeline.run(on_start=print)
        except BaseException as exc:  # reported by `view` or `stop`, in the main thread
            self.error = exc

    def view(self) -> str | None:
        """The live view's address once the server listens; exits if the run ended first."""
        if not self._thread.is_alive():
            raise SystemExit(f"the run ended before its server started: {self.error}")
        url = self.pipeline.http_url
        return f"{url}live/" if url else None

    def stop(self) -> RunSummary:
        """Stops the run and waits for it to end; exits if it failed."""
        self.pipeline.stop.set()
        self._thread.join()
        if self.summary is None:
            raise SystemExit(f"the run failed: {self.error}")
        return self.summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path("config/vtest-zones.yaml"))
    parser.add_argument("--camera", help="the camera to wait for (default: the first)")
    parser.add_argument(
        "--after-s", type=float, default=AFTER_S, help=f"seconds into the clip (default {AFTER_S})"
    )
    parser.add_argument("--out", type=Path, required=True, help="the JPEG to write")
    args = parser.parse_args(argv)
    if not args.out.parent.is_dir():
        parser.error(f"--out: no folder {args.out.parent}")
    if args.after_s < 0:
        parser.error("--after-s must be at least 0")
    try:
        config = load_config(args.config)  # a missing clip is a one-line error here
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None
    if (problem := browser_problem()) is not None:
        raise SystemExit(problem)
    from selenium.common.exceptions import WebDriverException  # there: browser_problem

    camera_id = args.camera or config.cameras[0].id
    if camera_id not in {c.id for c in config.cameras}:
        parser.error(f"--camera: the config has no camera {camera_id}")
    after = round(args.after_s * clip_frame_rate(config, camera_id))

    print(machine_line())
    with tempfile.TemporaryDirectory(prefix="live-view-picture-") as folder:
        run = Run(picture_config(config, Path(folder)), str(args.config))
        try:
            view = wait_for(run.view, WAIT_S, "the run's server")
            driver = chrome(Path(folder) / "chromium-profile")
            try:
                driver.get(view)
                (width, height), shown = steady_screenshot(
                    driver, view, camera_id, after, args.out, args.after_s + WAIT_S
                )
            except WebDriverException as exc:  # a page whose elements were renamed, say
                raise SystemExit(f"the browser: {browser_said(exc)}") from None
            finally:
                driver.quit()
        finally:
            summary = run.stop()
    stats = summary.cameras[camera_id]
    print(f"{args.out}: {width}x{height}, camera {camera_id} past frame {after} ({view})")
    print(
        f"camera {camera_id}: {shown} in the view when taken; "
        f"{stats.frames} frames in {summary.elapsed_s:.1f} s, "
        f"{stats.frames / max(summary.elapsed_s, 1e-9):.1f} frames/s over the run"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
