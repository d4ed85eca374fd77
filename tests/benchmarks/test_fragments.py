"""The fragments benchmark on a tiny clip: every layout's size and every kill are reported."""

from __future__ import annotations

import re

import pytest

from benchmarks.fragments import KILLED, LAYOUTS, main
from tests.conftest import VideoFactory


def test_a_tiny_run_reports_each_layouts_size_and_what_each_kill_left(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video(frames=12, size=(64, 48), fps=25)
    argv = ["--clip", str(clip), "--every", "4", "--kill-after", "3", "--interval", "0.01"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "12 frames 64x48, ultrafast, 25 fps" in out
    for layout in LAYOUTS:
        sizes = re.findall(rf"{re.escape(layout)} +(\d+\.\d+) kB/frame +x(\d\.\d+)", out)
        assert len(sizes) == 2  # every frame, and every 4th
        assert all(float(kb) > 0 for kb, _ in sizes)
    assert out.count("x1.000") == 2  # each ratio is to the first layout's size
    for name in KILLED:
        [(plays, lost)] = re.findall(rf"{re.escape(name)} +(\d+) frames play, (\d+) lost", out)
        assert int(plays) + int(lost) == 3


def test_a_kill_after_no_frame_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--kill-after", "0"])
    assert "--kill-after must be at least 1" in capsys.readouterr().err
