"""Running the pipeline's command line on a generated config, for end-to-end tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def write_config(tmp_path: Path, cameras: dict[str, Path], port: int, subscribers: int = 1) -> Path:
    cams = "".join(f"  - id: {cid}\n    source: {path}\n" for cid, path in cameras.items())
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n{cams}"
        # the bundled model finds no people in rectangles: keep its 3 best boxes a frame, and
        # let their low-scoring tracks be confirmed, so every stage has something to carry
        "detector:\n  model: person_ssdlite\n  device: cpu\n"
        "  batch_size: 4\n  score_threshold: 0.0\n  max_detections: 3\n"
        "tracker:\n  sigma_h: 0.0\n  t_min: 2\n"
        f"sinks:\n  - type: video\n    dir: {tmp_path / 'video'}\n"
        f"  - type: zmq\n    endpoint: tcp://127.0.0.1:{port}\n    wait_for_subscribers: {subscribers}\n"
        f"  - type: sql\n    url: sqlite:///{tmp_path / 'det.db'}\n"
    )
    return config


def run_cli(config: Path, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", "run", str(config), "--no-progress"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )
