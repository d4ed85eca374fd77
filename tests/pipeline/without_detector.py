"""`python -m pipeline ARGS` whose detector is never built, for
`tests.pipeline.test_permissions`: run as `python -m tests.pipeline.without_detector ARGS`
where file modes bind (`tests.pipeline.unprivileged`), it fails with `DETECTOR_BUILT` on
stderr if the run goes on to build its detector."""

from __future__ import annotations

import sys

import pipeline.runner
from pipeline.cli import main

DETECTOR_BUILT = "the run went on to build its detector"


def refuse_to_build(*args: object) -> None:
    raise SystemExit(DETECTOR_BUILT)


if __name__ == "__main__":
    pipeline.runner.build_run_detector = refuse_to_build  # type: ignore[assignment]
    sys.exit(main(sys.argv[1:]))
