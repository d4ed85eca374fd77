"""The line a benchmark prints first: which CPU, how many cores, how busy, and when."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path

from pipeline.cores import cores_line


def cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform says."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def machine_line() -> str:
    """CPU, cores, load average (1, 5, 15 min) and the date: a shared machine's figures
    mean little without the load they were measured under."""
    try:
        load = "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "load average unknown"
    when = time.strftime("%Y-%m-%d %H:%M %Z")
    return f"{cpu_model()}, {cores_line()}, {load}; {when}"
