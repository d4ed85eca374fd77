"""Fixtures shared by every test package: synthetic videos written with PyAV, the test
session's ONNX cache, a CPU with 8-bit dot products."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

VideoFactory = Callable[..., Path]


def free_port() -> int:
    """A TCP port of 127.0.0.1 that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_video(
    path: Path,
    frames: int = 24,
    size: tuple[int, int] = (160, 120),
    fps: int = 10,
    codec: str = "libx264",
) -> Path:
    """An MP4 of a bright rectangle moving right over a dark background; `frames` frames."""
    width, height = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(frames):
            image = np.full((height, width, 3), 30, np.uint8)
            x = 5 + (i * 3) % max(1, width - 45)
            image[height // 4 : height // 4 + 40, x : x + 30] = (230, 200, 40)
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def damaged_video(path: Path, frames: int = 60, damage: int = 1500) -> Path:
    """`write_video`'s MP4 (MPEG-4 part 2, whose decoder refuses a damaged packet rather than
    guessing it: a count to compare), 6 s at 10 fps, with `damage` bytes of noise written
    over the middle of the file (about a dozen frames' packets)."""
    write_video(path, frames=frames, codec="mpeg4")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle : middle + damage] = np.random.default_rng(7).bytes(damage)
    path.write_bytes(bytes(data))
    return path


def audio_only_file(path: Path) -> Path:
    """A WAV file FFmpeg reads, 0.1 s of silence: a real media file with no video stream."""
    with av.open(str(path), "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame(format="s16", layout="mono", samples=800)
        frame.planes[0].update(bytes(1600))
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


@pytest.fixture
def synthetic_video(tmp_path: Path) -> VideoFactory:
    """Factory: synthetic_video("name.mp4", frames=24, size=(160, 120), fps=10) -> path."""

    def make(name: str = "clip.mp4", **kwargs: object) -> Path:
        return write_video(tmp_path / name, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session", autouse=True)
def onnx_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Networks exported for onnxruntime go to a folder of this test session, not the
    user's cache; CLI runs started by the tests inherit it through the environment."""
    from detector.onnx_runtime import CACHE_ENV

    folder = tmp_path_factory.mktemp("ssd-pipeline-cache")
    old = os.environ.get(CACHE_ENV)
    os.environ[CACHE_ENV] = str(folder)
    yield folder
    if old is None:
        del os.environ[CACHE_ENV]
    else:
        os.environ[CACHE_ENV] = old


@pytest.fixture
def vnni(monkeypatch: pytest.MonkeyPatch) -> None:
    """A CPU with 8-bit dot products, where `precision: auto` runs the bundled model in int8,
    whatever CPU runs the tests. Sessions still take the kernel that sums exactly on the CPU
    that runs them (`host.int8_sums_saturate`), as a CPU with them does."""
    from detector import host

    monkeypatch.setattr(host, "has_int8_dot_products", lambda cpuinfo=None: True)
