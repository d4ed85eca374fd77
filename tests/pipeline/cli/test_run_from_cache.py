"""A run whose network ONNX Runtime runs from the cache starts without importing torch."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipeline.build import build_run_detector
from pipeline.config import load_config
from tests.conftest import VideoFactory
from tests.pipeline.cli_runs import ROOT

RUN_AND_REPORT = (
    "import sys\n"
    "from pipeline.cli import main\n"
    "code = main(['run', sys.argv[1], '--no-progress'])\n"
    "print('torch imported:', 'torch' in sys.modules)\n"
    "sys.exit(code)\n"
)


def test_a_run_on_a_cached_network_never_imports_torch(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    clip = synthetic_video("clip.mp4", frames=6, size=(96, 64))
    config = tmp_path / "cams.yaml"
    config.write_text(
        f"cameras:\n  - id: lobby\n    source: {clip}\n"
        "detector:\n  device: cpu\n  runtime: onnxruntime\n  precision: fp32\n"
        "  score_threshold: 0.0\n  max_detections: 2\n"
        f"sinks:\n  - type: sql\n    url: sqlite:///{tmp_path / 'det.db'}\n"
    )
    # A first run (here, in-process) builds the detector with torch and keeps its network.
    build_run_detector(load_config(config).detector)

    run = subprocess.run(
        [sys.executable, "-c", RUN_AND_REPORT, str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    assert "lobby   6" in run.stdout  # every frame detected
    assert "torch imported: False" in run.stdout
