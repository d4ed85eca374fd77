"""`python -m pipeline zones` writes a camera's frame with a coordinate grid as a PNG of the
frame's size; the camera's configured zones and lines are drawn over it."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.cli import main
from pipeline.zone_grid import FRACTION_STEPS, grid_image
from sinks.draw import LINE_COLOR, ZONE_COLOR
from tests.conftest import VideoFactory


def config(tmp_path: Path, video: Path) -> Path:
    path = tmp_path / "cams.yaml"
    path.write_text(f"cameras:\n  - id: gate\n    source: {video}\n")
    return path


def test_the_png_has_the_frame_size_and_the_grid(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    video = synthetic_video("gate.mp4", frames=6, size=(320, 240), fps=10)
    out = tmp_path / "grid.png"
    code = main(
        [
            "zones",
            str(config(tmp_path, video)),
            "--camera",
            "gate",
            "--out",
            str(out),
            "--at-frame",
            "3",
        ]
    )
    assert code == 0
    assert capsys.readouterr().out.strip() == f"{out}: frame 3 of camera gate, 320x240 pixels"
    bgr = cv2.imread(str(out))
    assert bgr is not None
    png = bgr[..., ::-1]  # RGB
    assert png.shape == (240, 320, 3)
    # the middle grid lines are drawn where the frame's middle is: yellow over dark grey
    yellow = (png[..., 0] > 150) & (png[..., 1] > 150) & (png[..., 2] < 100)
    middle_x, middle_y = round(0.5 * 319), round(0.5 * 239)
    assert yellow[195:210, middle_x].all() and yellow[middle_y, 100:140].all()
    assert not yellow[195:210, middle_x + 8].any()  # between horizontal lines


def test_an_unknown_camera_or_a_missing_frame_is_one_error_line(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(config(tmp_path, synthetic_video("gate.mp4", frames=4)))
    assert main(["zones", cfg, "--camera", "door"]) == 2
    assert capsys.readouterr().err == f"error: no camera 'door' in {cfg} (it has: gate)\n"
    out = str(tmp_path / "x.png")
    assert main(["zones", cfg, "--camera", "gate", "--at-frame", "9", "--out", out]) == 1
    assert capsys.readouterr().err == "error: camera gate: it has no frame 9\n"
    assert not Path(out).exists()


class Cross:
    """An overlay as zones will draw them: a shape over the grid, on a new image."""

    def draw(self, image: np.ndarray) -> np.ndarray:
        out = image.copy()
        cv2.line(out, (0, 0), (out.shape[1] - 1, out.shape[0] - 1), (255, 0, 0), 3)
        return out


def test_overlays_are_drawn_over_the_grid_and_the_input_is_unchanged() -> None:
    frame = np.full((100, 200, 3), 30, np.uint8)
    gridded = grid_image(frame, [Cross()])
    assert gridded.shape == frame.shape and (frame == 30).all()
    assert tuple(gridded[50, 100]) == (255, 0, 0)  # the cross, over the middle grid lines
    assert FRACTION_STEPS == 10


def test_the_configured_zone_and_line_are_drawn_on_the_grid(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    video = synthetic_video("gate.mp4", frames=2, size=(320, 240), fps=10)
    cfg = tmp_path / "cams.yaml"
    cfg.write_text(
        f"cameras:\n  - id: gate\n    source: {video}\n"
        "    zones:\n      - {id: door, polygon: [[0.25, 0.25], [0.75, 0.25], [0.75, 0.75]]}\n"
        "    lines:\n      - {id: way, points: [[20, 10], [20, 230]], units: pixel}\n"
    )
    out = tmp_path / "grid.png"
    assert main(["zones", str(cfg), "--camera", "gate", "--out", str(out)]) == 0
    bgr = cv2.imread(str(out))
    assert bgr is not None
    png = bgr[..., ::-1].astype(int)

    def drawn(y: int, x: int, color: tuple[int, int, int]) -> bool:
        return bool(np.abs(png[y, x] - color).max() < 20)

    assert drawn(60, 200, ZONE_COLOR)  # the zone's top edge, between grid lines
    assert drawn(120, 240, ZONE_COLOR)  # its right edge
    assert drawn(120, 160, ZONE_COLOR)  # its diagonal, from (80, 60) to (240, 180)
    assert not drawn(130, 200, ZONE_COLOR)  # inside it
    assert drawn(200, 20, LINE_COLOR)  # the line, in pixels


@pytest.mark.parametrize(
    ("out", "said"),
    [
        ("{video}", "is camera gate's video"),
        ("{config}", "is the config"),
        ("{frames}/grid.png", "is among camera gate's images, where a run would read it"),
    ],
    ids=["the-video", "the-config", "into-the-image-folder"],
)
def test_an_out_that_is_what_the_camera_reads_is_refused_and_left_as_it_was(
    tmp_path: Path,
    synthetic_video: VideoFactory,
    capsys: pytest.CaptureFixture[str],
    out: str,
    said: str,
) -> None:
    video = synthetic_video("gate.mp4", frames=2)
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "0001.png"), np.zeros((16, 16, 3), np.uint8))
    source = frames if "frames" in out else video
    cfg = config(tmp_path, source)
    before = {path: path.read_bytes() for path in (video, cfg)}
    out = out.format(video=video, config=cfg, frames=frames)
    assert main(["zones", str(cfg), "--camera", "gate", "--out", out]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out: ") and said in err and err.count("\n") == 1
    assert {path: path.read_bytes() for path in before} == before  # was: a PNG over the video
    assert sorted(p.name for p in frames.iterdir()) == ["0001.png"]
