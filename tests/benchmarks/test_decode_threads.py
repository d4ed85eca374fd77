"""The decoder threads benchmark decodes a 1080p clip under every setting for each camera
count and prints a row for each figure."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from benchmarks import decode_threads


def test_the_benchmark_prints_every_figure_of_every_setting_for_each_camera_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the clip's cache
    missing = tmp_path / "no-vtest.avi"
    argv = ["--cameras", "1", "2", "--frames", "3", "--rounds", "1", "--vtest", str(missing)]
    decode_threads.main(argv)
    out = capsys.readouterr().out
    assert "1920x1080 H.264 (gradients.mp4)" in out
    assert "no-vtest" not in out
    for cameras in ("1 cameras", "2 cameras"):
        header = next(line for line in out.splitlines() if line.strip().startswith(cameras))
        assert header.split()[2:] == [s.name for s in decode_threads.SETTINGS]
    for _, label in decode_threads.ROWS:
        rows = [line for line in out.splitlines() if line.strip().startswith(label)]
        assert len(rows) == 2
        assert len(rows[0].split()) - len(label.split()) == len(decode_threads.SETTINGS)
    fps = next(line for line in out.splitlines() if "frames/s" in line).split()[1:]
    assert all(float(f) > 0 for f in fps)


def test_a_decoder_gives_every_frame_asked_for_and_says_how_many_it_held_back(
    tmp_path: Path,
) -> None:
    clip = tmp_path / "clip.mp4"
    decode_threads.write_clip(clip, 6, (64, 48))
    for setting in decode_threads.SETTINGS:
        frames, held = decode_threads.decode(str(clip), setting, 4)
        assert frames == 4
        assert held >= 0
