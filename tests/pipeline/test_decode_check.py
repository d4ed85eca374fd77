"""`validate` decodes whole video files as `run` reads them: damaged packets are counted
where they are, as `run` skips them, and a file whose frames end early is named."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from pipeline.config import parse_config
from pipeline.decode_check import FileDecode, decode_cameras, decode_file
from pipeline.sources import AVSource
from tests.conftest import SHARED_DATA, damaged_video, write_video


def test_damage_in_the_middle_is_found_where_it_is_and_the_rest_decoded(tmp_path: Path) -> None:
    found = decode_file(str(damaged_video(tmp_path / "damaged.mp4")))
    assert found.corrupt > 0 and found.playable and found.declared == 60
    assert found.frames == 60 - found.corrupt  # one frame a packet: the rest all decode
    assert found.corrupt_from_s is not None and found.corrupt_to_s is not None
    assert 1.0 < found.corrupt_from_s <= found.corrupt_to_s < 5.9  # in the middle of 6 s
    line = found.damage()
    assert line is not None and line.startswith(f"{tmp_path / 'damaged.mp4'}: ")
    assert f"{found.corrupt} damaged packets between 00:00:0" in line and "; playable (" in line


def test_run_skips_exactly_the_packets_validate_counts(tmp_path: Path) -> None:
    path = str(damaged_video(tmp_path / "damaged.mp4"))
    source = AVSource(path, live=False)
    source.open()
    read = sum(1 for _ in source.frames())  # what a run's reader gets
    source.close()
    found = decode_file(path)
    assert source.decode_errors == found.corrupt > 0
    assert read == found.frames


def test_a_clean_file_has_no_damage(tmp_path: Path) -> None:
    found = decode_file(str(write_video(tmp_path / "clean.mp4", frames=30)))
    assert found == FileDecode(str(tmp_path / "clean.mp4"), 30, 30, last_s=2.9)
    assert found.damage() is None


@pytest.mark.skipif(not (SHARED_DATA / "Megamind_bugy.avi").is_file(), reason="no shared data")
def test_the_packed_b_frames_of_megamind_bugy_decode_in_full() -> None:
    # Its "bug" is xvid's packed B-frames, out of order in the AVI: FFmpeg decodes all.
    found = decode_file(str(SHARED_DATA / "Megamind_bugy.avi"))
    assert (found.frames, found.declared, found.damage()) == (270, 270, None)


@pytest.mark.parametrize(
    ("found", "line"),
    [
        (FileDecode("a.mp4", 59, 60, 1, 2.0, 2.4), "a.mp4: 1 damaged packet at 00:00:02; "
         "playable (run skips them: 59 frames decode of the 60 it declares)"),
        (FileDecode("a.avi", 24, 60, last_s=2.3), "a.avi: 36 of the 60 frames it declares are "
         "missing (the last one decoded is at 00:00:02); playable (24 frames)"),
        (FileDecode("a.mkv", 1, None, 3, 61.0, 3725.0), "a.mkv: 3 damaged packets between "
         "00:01:01 and 01:02:05; playable (run skips them: 1 frame decode)"),
        (FileDecode("a.mp4", 30, 60, last_s=3.0, failure="I/O error", stopped_at_s=3.0),
         "a.mp4: reading stops at 00:00:03, after 30 frames: I/O error; run fails this "
         "camera there"),
    ],
    ids=["one-packet", "frames-end-early", "no-declared-count", "reading-stops"],
)  # fmt: skip
def test_the_damage_line_says_where_and_whether_run_plays_the_file(
    found: FileDecode, line: str
) -> None:
    assert found.damage() == line


def config_of(tmp_path: Path, clip: Path) -> str:
    return (
        f"cameras:\n  - id: lobby\n    source: {clip}\n"
        f"  - id: gate\n    source: rtsp://127.0.0.1:9/never-read\n"
    )


@pytest.mark.parametrize("terminal", [True, False])
def test_a_progress_bar_shows_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, terminal: bool
) -> None:
    class Stderr(io.StringIO):
        def isatty(self) -> bool:
            return terminal

    stderr = Stderr()
    monkeypatch.setattr("sys.stderr", stderr)
    config = parse_config(config_of(tmp_path, write_video(tmp_path / "c.mp4", frames=30)))
    found = decode_cameras(config.cameras)
    assert list(found) == ["lobby"]  # the stream is live: never read to an end
    assert ("decoding lobby" in stderr.getvalue()) is terminal
