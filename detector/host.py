"""What this machine offers the detector, asked without importing torch: a GPU device
file, 8-bit dot-product instructions, ONNX Runtime and its exporter installed. Callers ask
through the module (`host.onnxruntime_available()`), so that a test can answer for it."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

INT8_DOT_PRODUCT_FLAGS = frozenset({"avx512_vnni", "avx_vnni"})
"""x86 CPU flags (Linux's /proc/cpuinfo names) of 8-bit dot-product instructions."""
ONNXRUNTIME_PACKAGES = ("onnxruntime", "onnx", "onnxscript")
"""What runtime onnxruntime needs: the runtime, and the exporter's packages."""
ONNXRUNTIME_INSTALL = f"pip install {' '.join(ONNXRUNTIME_PACKAGES)}"
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")
"""Device files without which no CUDA (NVIDIA), ROCm (AMD, /dev/kfd) or WSL (/dev/dxg) GPU is
usable: where none exists, torch sees no CUDA device, and is not imported to say so."""


def gpu_device_nodes() -> bool:
    """Whether this machine has a GPU device file (`GPU_DEVICE_NODES`)."""
    return any(Path(node).exists() for node in GPU_DEVICE_NODES)


def has_int8_dot_products(cpuinfo: str | None = None) -> bool:
    """Whether the CPU has 8-bit dot-product instructions (AVX-512 VNNI or AVX-VNNI), read
    from `cpuinfo` (the text of /proc/cpuinfo; None: this machine's, False where there is
    none). Without them ONNX Runtime's default int8 kernel sums in 16 bits, which saturate,
    so sessions there take its exact kernel (`detector.onnx_runtime.open_session`), and
    int8 gains too little for `precision: auto` (docs/performance.md, "int8 accuracy").
    """
    if cpuinfo is None:
        return _this_cpu_has_int8_dot_products()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags" and INT8_DOT_PRODUCT_FLAGS & set(value.split()):
            return True
    return False


def int8_sums_saturate() -> bool:
    """Whether ONNX Runtime's default int8 kernel sums in 16 bits, which saturate, on this
    machine's CPU: where it has no 8-bit dot products. Asked of the CPU itself, apart from
    `has_int8_dot_products` (whether int8 is worth choosing), because the kernel is the
    hardware's: a CPU with them sums exactly."""
    return not _this_cpu_has_int8_dot_products()


@functools.cache
def _this_cpu_has_int8_dot_products() -> bool:
    try:
        return has_int8_dot_products(Path("/proc/cpuinfo").read_text())
    except OSError:  # not Linux: no way to tell here, so no
        return False


def onnxruntime_available() -> bool:
    """Whether ONNX Runtime and the exporter's packages can be imported."""
    return all(importlib.util.find_spec(name) is not None for name in ONNXRUNTIME_PACKAGES)
