"""The index page in a real headless browser, served beside the API (under /live/): a live,
moving tile per camera, with the counts of its zones and lines listed under the picture."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipeline.types import (
    FrameResult,
    LineCrossing,
    LineShape,
    SceneLayout,
    StreamInfo,
    ZoneOccupancy,
    ZoneShape,
)
from tests.sinks.live_view.conftest import HEIGHT, WIDTH, ServedView, moving_frame

LOBBY_SCENE = SceneLayout(
    (ZoneShape("door", ((5.0, 5.0), (100.0, 5.0), (100.0, 60.0), (5.0, 60.0))),),
    (LineShape("gate", (200.0, 10.0), (200.0, 200.0), "in", "out"),),
)


def lobby_frame(index: int) -> FrameResult:
    """A lobby frame with two people in the door zone, and one crossing of the gate line
    at frame 1."""
    analytics: tuple[ZoneOccupancy | LineCrossing, ...] = (
        ZoneOccupancy("lobby", "door", ((1, 2),), index, 0.0),
    )
    if index == 1:
        analytics += (
            LineCrossing("lobby", "gate", 3, 1, "in", "left", "right", frame=1, time=0.0),
        )
    return replace(moving_frame("lobby", index), analytics=analytics)


@pytest.fixture
def beside_api() -> Iterator[ServedView]:
    view = ServedView(under="/live")
    yield view
    view.close()


def _chrome(tmp_path: Path) -> Any:
    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or chromedriver is None:
        pytest.skip(
            "Debian's chromium and chromium-driver are not installed "
            "(apt-get install -y chromium chromium-driver; .ci/run does it)"
        )
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1100,700",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    options.page_load_strategy = "eager"  # MJPEG images never finish loading
    service = webdriver.ChromeService(executable_path=chromedriver)
    return webdriver.Chrome(options=options, service=service)


def _wait(predicate: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_browser_shows_a_live_moving_tile_per_camera_with_its_counts(
    beside_api: ServedView, tmp_path: Path
) -> None:
    live = beside_api
    driver = _chrome(tmp_path)
    stop = threading.Event()

    def feed() -> None:
        live.start(StreamInfo("lobby", WIDTH, HEIGHT, Fraction(25), "synthetic", scene=LOBBY_SCENE))
        live.start(StreamInfo("gate", WIDTH, HEIGHT, Fraction(25), "synthetic"))
        for i in range(25 * 60):  # at most a minute
            if stop.is_set():
                return
            live.write(lobby_frame(i))
            live.write(moving_frame("gate", 2 * i))
            time.sleep(0.04)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        driver.get(live.url)
        _wait(
            lambda: driver.execute_script(
                "const imgs = [...document.querySelectorAll('img.feed')];"
                "return imgs.length === 2 && imgs.every(i => i.naturalWidth === 320);"
            ),
            30,
            "two tiles showing 320-pixel-wide frames",
        )
        tiles = _wait(
            lambda: driver.execute_script(
                "const t = [...document.querySelectorAll('section.tile')].map(s => [s.dataset.camera,"
                " s.querySelector('.status').textContent, s.querySelector('.fps').textContent]);"
                "return t.every(x => x[1] === 'live' && parseFloat(x[2]) > 0) ? t : null;"
            ),
            15,
            "both tiles live with an fps",
        )
        assert sorted(t[0] for t in tiles) == ["gate", "lobby"]
        counts = driver.execute_script(
            "return [...document.querySelectorAll('section.tile')].map(s => [s.dataset.camera,"
            " [...s.querySelectorAll('.counts span')].map(i => [i.className, i.textContent])]);"
        )
        assert dict(counts) == {
            "lobby": [["zone", "door 2 inside (2 person)"], ["line", "gate in 1, out 0"]],
            "gate": [],  # a camera without zones or lines lists none
        }

        img = driver.find_element("css selector", "section.tile[data-camera=lobby] img.feed")

        def screenshot() -> np.ndarray:
            shot = cv2.imdecode(np.frombuffer(img.screenshot_as_png, np.uint8), cv2.IMREAD_COLOR)
            assert shot is not None
            return shot

        first = screenshot()

        def changed() -> tuple[np.ndarray] | None:
            shot = screenshot()
            return None if np.array_equal(shot, first) else (shot,)

        (later,) = _wait(changed, 10, "the lobby tile to change")
        assert first.shape == later.shape and first.shape[0] > 100

        # the white square moved: its columns differ between the two screenshots
        def square_columns(image: np.ndarray) -> set[int]:
            rows = image[int(image.shape[0] * 0.38) : int(image.shape[0] * 0.55)]  # y 90..130
            return set(np.flatnonzero(rows.min(axis=(0, 2)) > 200).tolist())

        assert square_columns(first) and square_columns(first) != square_columns(later)
        (tmp_path / "live-view.png").write_bytes(driver.get_screenshot_as_png())
    finally:
        stop.set()
        driver.quit()
        feeder.join(timeout=10)
