"""The look at every camera's file before a run's detector is prepared: all cameras at
once, so that files whose header, stat or open does not come (a network mount that does not
answer) hold the start about one header wait in all."""

from __future__ import annotations

import functools
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import pipeline.sources
from pipeline.config.video_files import _HeaderRead, video_header_problem
from pipeline.image_source import ImageFolderSource
from pipeline.source_check import check_sources
from pipeline.sources import AVSource, FailedSource, Source
from tests.conftest import VideoFactory

WAIT_S = 0.5
"""The header wait of these tests (a run's: `HEADER_WAIT_S`)."""


@pytest.fixture
def hung_headers(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every header read hangs (until the test ends) as on a mount that does not answer,
    and is waited for `WAIT_S`; the paths read, as they start."""
    release = threading.Event()
    started: list[str] = []

    def hang(read: _HeaderRead) -> None:
        started.append(read.path)
        release.wait()

    monkeypatch.setattr(_HeaderRead, "run", hang)
    bounded = functools.partial(video_header_problem, wait_s=WAIT_S)
    monkeypatch.setattr(pipeline.sources, "video_header_problem", bounded)
    yield started
    release.set()  # the reads left behind end


def test_files_whose_header_does_not_come_hold_the_start_one_wait_in_all(
    synthetic_video: VideoFactory, hung_headers: list[str]
) -> None:
    clips = [str(synthetic_video(f"{i}.mp4", frames=1)) for i in range(6)]
    sources: dict[str, Source] = {
        f"cam{i}": AVSource(clip, live=False, file=True) for i, clip in enumerate(clips)
    }
    began = time.monotonic()
    checked = check_sources(sources, wait_s=WAIT_S)

    # one after another, 6 waits (3 s); generous for a busy machine
    assert time.monotonic() - began < 2 * WAIT_S
    assert sorted(hung_headers) == sorted(clips)
    assert checked.failed == {} and checked.sources == sources  # not judged: left to readers


def test_the_errors_come_in_the_cameras_order_as_they_did_one_by_one(
    tmp_path: Path,
    synthetic_video: VideoFactory,
    hung_headers: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    (tmp_path / "empty.mp4").touch()
    sources: dict[str, Source] = {
        "slow": AVSource(str(synthetic_video("slow.mp4", frames=1)), live=False, file=True),
        "gone": AVSource(str(tmp_path / "gone.mp4"), live=False, file=True),
        "stopped": AVSource(str(tmp_path / "stopped.mp4"), live=False, file=True),
        "empty": AVSource(str(tmp_path / "empty.mp4"), live=False, file=True),
        "live": AVSource("rtsp://127.0.0.1:9/cam", live=True),
    }
    with caplog.at_level(logging.ERROR, logger="pipeline.source_check"):
        checked = check_sources(sources, skip={"stopped"}, wait_s=WAIT_S)

    failed = {
        "gone": f"camera gone: file not found: '{tmp_path / 'gone.mp4'}'",
        "empty": f"camera empty: empty file (0 bytes): '{tmp_path / 'empty.mp4'}'",
    }
    assert checked.failed == failed and list(checked.failed) == ["gone", "empty"]
    assert [r.getMessage() for r in caplog.records] == list(failed.values())
    assert list(checked.sources) == list(sources)  # each camera where it was
    assert [type(s) for s in checked.sources.values()] == [
        AVSource,
        FailedSource,
        AVSource,
        FailedSource,
        AVSource,
    ]
    assert not checked.none_left(stopped={"stopped"})
    assert checked.none_left(stopped={"slow", "stopped", "live"})


@pytest.fixture
def dead_mount(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder whose stat hangs (until the test ends), as a network mount that does not
    answer: anything under it, and it, waits; every other path answers as before."""
    mount = tmp_path / "nfs"
    release = threading.Event()
    real_stat = os.stat

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).startswith(str(mount)):
            release.wait()
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)
    yield mount
    release.set()  # the checks left behind end


def test_a_mount_whose_stat_hangs_holds_the_start_one_wait_and_fails_no_camera(
    tmp_path: Path,
    synthetic_video: VideoFactory,
    dead_mount: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    sources: dict[str, Source] = {
        "hung_file": AVSource(str(dead_mount / "a.mp4"), live=False, file=True),
        "hung_images": ImageFolderSource(str(dead_mount / "frames"), fps=5.0),
        "gone": AVSource(str(tmp_path / "gone.mp4"), live=False, file=True),
        "good": AVSource(str(synthetic_video("good.mp4", frames=1)), live=False, file=True),
        "no_images": ImageFolderSource(str(tmp_path), fps=5.0),
    }
    began = time.monotonic()
    with caplog.at_level(logging.INFO, logger="pipeline.source_check"):
        checked = check_sources(sources, wait_s=WAIT_S)

    # unbounded, it would wait as long as the mount does (here: for ever); generous
    assert time.monotonic() - began < 2 * WAIT_S
    assert checked.failed == {
        "gone": f"camera gone: file not found: '{tmp_path / 'gone.mp4'}'",
        "no_images": f"camera no_images: {ImageFolderSource(str(tmp_path), 5.0).problem()}",
    }
    for hung in ("hung_file", "hung_images"):  # not judged: left to their readers
        assert checked.sources[hung] is sources[hung]
    assert checked.sources["good"] is sources["good"]
    not_checked = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert not_checked == [
        f"camera {cid}: its source did not answer within {WAIT_S:g} s; not checked before the run"
        for cid in ("hung_file", "hung_images")
    ]


def test_a_check_left_behind_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    # A stat that never ends, in a process that then ends: it exits, not waits on the check.
    script = f"""
import os, threading
from pipeline.source_check import check_sources
from pipeline.sources import AVSource
real_stat = os.stat
def stat(path, *args, **kwargs):
    if str(path).startswith({str(tmp_path / "nfs")!r}):
        threading.Event().wait()
    return real_stat(path, *args, **kwargs)
os.stat = stat
source = AVSource({str(tmp_path / "nfs" / "a.mp4")!r}, live=False, file=True)
print(check_sources({{"cam": source}}, wait_s=0.1).failed)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert (done.returncode, done.stdout) == (0, "{}\n"), done.stderr
