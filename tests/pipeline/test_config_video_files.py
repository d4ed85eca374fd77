"""A video file's size and header say, before anything of it is decoded, whether it can be
played: empty, no video stream in it, or a header FFmpeg cannot open; a file damaged further
on passes (its camera plays what decodes)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import av
import pytest

from pipeline.config.video_files import video_header_problem
from pipeline.sources import AVSource
from tests.conftest import SHARED_DATA, audio_only_file, damaged_video, write_video


def test_an_empty_file_is_said_to_be_empty(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("empty.mp4").write_bytes(b"")
    assert video_header_problem("empty.mp4") == "empty file (0 bytes): 'empty.mp4'"


def test_a_text_file_named_like_a_video_is_said_to_be_no_video_in_ffmpeg_s_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("notes.mp4").write_text("a shopping list, not a recording\n" * 20)
    assert video_header_problem("notes.mp4") == (
        "not a video (cannot open it: Invalid data found when processing input): 'notes.mp4'"
    )


def test_a_media_file_without_a_video_stream_is_said_to_hold_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    audio_only_file(Path("sound.wav"))
    assert video_header_problem("sound.wav") == (
        "not a video (it holds no video stream): 'sound.wav'"
    )


def test_a_file_damaged_after_its_header_passes(tmp_path: Path) -> None:
    damaged = damaged_video(tmp_path / "damaged.mp4")
    assert video_header_problem(str(damaged)) is None
    assert AVSource(str(damaged), live=False, file=True).problem() is None


def test_the_partly_playable_megamind_bugy_clip_passes() -> None:
    clip = SHARED_DATA / "Megamind_bugy.avi"
    if not clip.exists():
        pytest.skip(f"{clip} is not here")
    assert AVSource(str(clip), live=False, file=True).problem() is None


def test_a_header_that_does_not_come_in_time_is_not_judged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A file on a network mount that does not answer: the run's start does not wait on it.
    clip = write_video(tmp_path / "clip.mp4", frames=2, size=(32, 32))
    answer = threading.Event()
    av_open = av.open

    def hanging_open(*args: Any, **kwargs: Any) -> Any:
        answer.wait()
        return av_open(*args, **kwargs)

    monkeypatch.setattr(av, "open", hanging_open)
    try:
        assert video_header_problem(str(clip), wait_s=0.05) is None
    finally:
        answer.set()  # the read left behind ends


def test_a_live_source_s_header_is_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_open(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("a live source was opened before the run")

    monkeypatch.setattr(av, "open", no_open)
    assert AVSource("rtsp://camera.test/stream", live=True).problem() is None
    assert AVSource("/dev/video0", live=True, format="v4l2").problem() is None
