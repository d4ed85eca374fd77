"""`python -m pipeline run` with a zone and a line: the annotated MP4's frames show them."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np

from pipeline.cli import main
from sinks.draw import LINE_COLOR, ZONE_COLOR
from tests.conftest import VideoFactory


def test_the_mp4_shows_the_zone_outline_and_the_line_on_every_frame(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    video = synthetic_video("gate.mp4", frames=4, size=(320, 240), fps=10)
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: gate\n    source: {video}\n"
        "    zones:\n      - {id: door, polygon: [[0.25, 0.5], [0.75, 0.5], [0.75, 0.9], [0.25, 0.9]]}\n"
        "    lines:\n      - {id: way, points: [[0.9, 0.1], [0.9, 0.9]]}\n"
        "detector:\n  model: person_ssdlite\n  device: cpu\n"
        f"sinks:\n  - type: video\n    dir: {tmp_path / 'video'}\n"
    )
    assert main(["run", str(config), "--no-progress"]) == 0
    (mp4,) = (tmp_path / "video").glob("gate_*.mp4")
    with av.open(str(mp4)) as container:
        frames = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert len(frames) == 4

    def drawn(image: np.ndarray, y: int, x: int, color: tuple[int, int, int]) -> bool:
        return bool(np.abs(image[y, x] - color).max() < 45)  # H.264 blurs colours a little

    for image in frames:
        assert drawn(image, 180, 80, ZONE_COLOR) and drawn(image, 180, 240, ZONE_COLOR)
        assert drawn(image, 216, 160, ZONE_COLOR)  # the bottom edge, at y = 0.9 * 240
        assert drawn(image, 60, 288, LINE_COLOR)
        assert (np.abs(image[170:200, 120:200] - 30) < 12).all()  # inside: the dark background
