"""`keep_freed_frames`: freed frame buffers reused instead of handed back to the system."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline import runner
from pipeline.config import parse_config
from pipeline.frame_memory import USER_SETTINGS
from tests.conftest import VideoFactory
from tests.pipeline.test_pipelining import EagerDetector

ROOT = Path(__file__).resolve().parents[2]

# Frames of 1080p RGB, 8 alive at a time as in a run's queues: the page faults each new
# frame costs once the process has warmed up, and what `keep_freed_frames` answered.
_FAULTS = textwrap.dedent(
    """
    import json, resource, sys
    import numpy as np
    from pipeline.frame_memory import keep_freed_frames
    kept = keep_freed_frames() if sys.argv[1] == "keep" else None
    def frames(n):
        live = []
        for i in range(n):
            image = np.empty((1080, 1920, 3), np.uint8)
            image.fill(i)
            live = [*live[-7:], image]
    frames(16)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    frames(32)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 32
    print(json.dumps({"kept": kept, "faults": faults}))
    """
)

glibc_only = pytest.mark.skipif(
    not (getattr(os, "confstr", lambda _: "")("CS_GNU_LIBC_VERSION") or "").startswith("glibc"),
    reason="tunes glibc's malloc",
)


def _frames_in_fresh_process(mode: str, **env: str) -> dict[str, object]:
    """`_FAULTS` run in a new Python (malloc's settings are the whole process's)."""
    clean = {k: v for k, v in os.environ.items() if k not in USER_SETTINGS}
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode],
        env={**clean, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@glibc_only
def test_new_frames_reuse_freed_memory_instead_of_faulting_in_fresh_pages() -> None:
    glibc = _frames_in_fresh_process("glibc")
    kept = _frames_in_fresh_process("keep")
    assert kept["kept"] is True
    # glibc maps every 6.2 MB frame anew (page faults on first write); kept, none.
    assert float(glibc["faults"]) > 50  # type: ignore[arg-type]
    assert float(kept["faults"]) < 5  # type: ignore[arg-type]


@glibc_only
def test_a_user_s_own_malloc_settings_are_left_to_rule() -> None:
    ruled = _frames_in_fresh_process("keep", MALLOC_TRIM_THRESHOLD_="131072")
    assert ruled["kept"] is False


def test_a_run_keeps_freed_frame_memory(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []

    def keep_freed_frames() -> bool:
        calls.append("kept")
        return True

    monkeypatch.setattr(runner, "keep_freed_frames", keep_freed_frames)
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n")
    assert runner.Pipeline(config, detector=EagerDetector()).run().ok
    assert len(calls) == 1
