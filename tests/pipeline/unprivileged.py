"""Running `python -m pipeline` where file modes bind, for permission tests.

Root ignores file modes (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH), so as root the command
runs under `setpriv` with those capabilities (and CAP_FOWNER) dropped from its bounding set:
it keeps uid 0, and so reads the interpreter and site-packages wherever they are installed
(often a 0700 home that a user such as `nobody` cannot enter), but a folder of mode 0o555
or a file of mode 0o000 refuses it as it refuses any user. Run by another user, the command
runs as that user, whom the modes already bind. Where neither holds (root without
`setpriv`, or a container that does not let capabilities be dropped) the tests skip.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.pipeline.cli_runs import ROOT

DROP = ("--bounding-set=-dac_override,-dac_read_search,-fowner",)


def run_unprivileged(
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
    module: str = "pipeline",
) -> subprocess.CompletedProcess[str]:
    """`python -m pipeline *args` (or another `module`) from the repository, file modes
    binding it (see the module); `env` is added to this process's environment."""
    return subprocess.run(
        [*_prefix(), sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def _prefix() -> list[str]:
    if os.geteuid() != 0:
        return []
    reason = _why_modes_cannot_bind_root()
    if reason is not None:
        pytest.skip(reason)
    setpriv = shutil.which("setpriv")
    assert setpriv is not None
    return [setpriv, *DROP]


@functools.cache
def _why_modes_cannot_bind_root() -> str | None:
    """None where `setpriv` makes root obey file modes here; else why it does not."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return "run as root, and setpriv (util-linux) is missing to drop root's file access"
    with tempfile.TemporaryDirectory() as folder:
        os.chmod(folder, 0o555)
        probe = os.path.join(folder, "probe")
        done = subprocess.run(
            [setpriv, *DROP, sys.executable, "-c", f"open({probe!r}, 'w')"],
            capture_output=True,
            text=True,
        )
        os.chmod(folder, 0o755)
    if "PermissionError" not in done.stderr:
        return f"setpriv {' '.join(DROP)} does not make root obey file modes here: {done.stderr}"
    return None


def error_lines(stderr: str) -> list[str]:
    """The lines of `stderr` that report an error: `error: ...` (the command's own, or
    argparse's `prog: error: ...`) or a log line at ERROR."""
    return [line for line in stderr.splitlines() if "error: " in line or " ERROR " in line]


def read_only(path: Path) -> Path:
    """`path` (a folder) made read-only for everyone, its owner included."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o555)
    return path


def unreadable(path: Path) -> Path:
    """`path` (a file) made unreadable for everyone, its owner included."""
    path.chmod(0o000)
    return path
