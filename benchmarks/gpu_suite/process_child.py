"""One process of the suite's several-processes case: the real pipeline on its share of the
cameras, its detector built (and warmed up) once, a run started each time the parent says
go, so that every process reads frames over the same seconds.

    python -m benchmarks.gpu_suite.process_child SETTINGS_JSON

Lines on stdout, each `MARK` then JSON: {"ready": true} once the detector is built and
before each run; after each run {"frames", "elapsed_s", "ended"} (`ended`: Unix seconds at
the end, `elapsed_s`: the seconds it read for) and, after the last, the peak GPU memory;
{"error": one line} where it failed. Every other line it prints goes to stderr.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

MARK = "@process@ "
"""What starts a line meant for the parent."""
MIB = 1024 * 1024


def main(argv: Sequence[str] | None = None) -> int:
    settings: dict[str, Any] = json.loads((sys.argv[1:] if argv is None else argv)[0])
    say = sys.stdout
    sys.stdout = sys.stderr  # the pipeline's own prints must not look like ours
    try:
        return _runs(settings, say)
    except Exception as error:  # told to the parent in one line; the traceback to stderr
        traceback.print_exc()
        _tell(say, {"error": f"{type(error).__name__}: {' '.join(str(error).split())}"})
        return 1


def _runs(settings: dict[str, Any], say: IO[str]) -> int:
    """The runs `settings` asks for, each when the parent says go; what they measured, on
    `say`."""
    import torch

    from pipeline.bench.end_to_end import DetectorSetup, pipeline_config
    from pipeline.build import build_detector
    from pipeline.runner import Pipeline

    setup = DetectorSetup(**settings["setup"])
    detector = None
    try:
        for _ in range(settings["repeat"]):
            with tempfile.TemporaryDirectory(prefix="ssd-process-") as tmp:
                cameras, clip = settings["copies"], settings["clip"]
                config = pipeline_config(clip, cameras, setup, Path(tmp), video=None)
                if detector is None:
                    detector = build_detector(config.detector)
                _tell(say, {"ready": True})
                if sys.stdin.readline().strip() != "go":
                    return 1
                summary = Pipeline(config, detector=detector).run(on_start=lambda line: None)
                ended = time.time()
            if not summary.ok:
                problems = [p for c in summary.cameras.values() if (p := c.problem)]
                raise RuntimeError(f"run failed: {'; '.join(problems + summary.sink_errors)}")
            _tell(say, {"frames": summary.frames, "elapsed_s": summary.elapsed_s, "ended": ended})
    finally:
        if detector is not None:
            detector.close()
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    peak = torch.cuda.max_memory_allocated() / MIB if cuda else None
    _tell(say, {"peak_gpu_memory_mib": peak})
    return 0


def _tell(out: IO[str], message: dict[str, Any]) -> None:
    out.write(MARK + json.dumps(message) + "\n")
    out.flush()


if __name__ == "__main__":
    raise SystemExit(main())
