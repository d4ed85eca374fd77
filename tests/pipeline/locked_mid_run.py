"""A run whose video folder is made read-only while it runs, for
`tests.pipeline.test_permissions`: run as `python -m tests.pipeline.locked_mid_run CONFIG
FOLDER AT` where file modes bind (`tests.pipeline.unprivileged`), it locks FOLDER once the
detector reaches frame AT and the video sink has written its first file there, and prints
the run's sink errors, one a line."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.config import parse_config
from pipeline.runner import Pipeline
from pipeline.types import Detections, Frame
from tests.pipeline.test_pipelining import EagerDetector
from tests.sinks.sql.builders import wait_for


class LockingDetector(EagerDetector):
    """Makes `folder` read-only when it reaches frame `at`, once the folder holds a file."""

    def __init__(self, folder: Path, at: int) -> None:
        super().__init__()
        self.folder = folder
        self.at = at
        self.locked = False

    def detect(self, frames: Sequence[Frame]) -> list[Detections]:
        if not self.locked and any(f.index >= self.at for f in frames):
            wait_for(lambda: any(self.folder.glob("*.mp4")), "the first video file")
            self.folder.chmod(0o555)
            self.locked = True
        return super().detect(frames)


def main(config: str, folder: str, at: str) -> None:
    summary = Pipeline(
        parse_config(Path(config).read_text()), detector=LockingDetector(Path(folder), int(at))
    ).run()
    for error in summary.sink_errors:
        print(error)


if __name__ == "__main__":
    main(*sys.argv[1:])
