"""What the video sink tests share: frames of a moving square, writing a stream, decoding,
reading a file's fragments."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from av.video.frame import PictureType

from pipeline.types import Detections, Frame, FrameResult, LabelMap, StreamInfo
from sinks.video.sink import VideoSink
from tests.clock import Clock

LABELS = LabelMap(("background", "person", "car"))
WALL0 = 1.8e9  # wall time of frame 0 in these tests
STAMP0 = datetime.fromtimestamp(WALL0).strftime("%Y%m%d-%H%M%S")


def moving_square(index: int, width: int, height: int) -> np.ndarray:
    """Black frame with a white 20x20 square whose left edge is at x = 5 * index."""
    image = np.zeros((height, width, 3), np.uint8)
    x = 5 * index
    image[40:60, x : x + 20] = 255
    return image


def frame_result(camera: str, index: int, image: np.ndarray) -> FrameResult:
    frame = Frame(camera, index, pts=index * 0.04, wall_time=WALL0 + index * 0.04, image=image)
    return FrameResult(frame=frame, detections=Detections.empty())


def write_at(sink: VideoSink, clock: Clock, camera: str, index: int, at: float) -> None:
    """Frame `index` of a 96x64 camera (the square at 5 * (index % 15)) comes at `at`."""
    clock.now = at
    sink.write(frame_result(camera, index, moving_square(index % 15, 96, 64)))


def write_stream(
    sink: VideoSink, camera: str, frames: int, width: int, height: int, rate: Fraction
) -> None:
    sink.start(StreamInfo(camera, width, height, rate, source="synthetic"))
    for i in range(frames):
        sink.write(frame_result(camera, i, moving_square(i, width, height)))


def decode(path: Path) -> tuple[list[np.ndarray], Fraction | None]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        images = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return images, stream.average_rate


def square_left_edge(image: np.ndarray) -> int:
    bright_columns = np.flatnonzero(image[45:55].mean(axis=(0, 2)) > 128)
    return int(bright_columns[0])


def edges_on_disk(path: Path) -> list[int]:
    """Where the square is in each frame the file, as written so far, plays."""
    return [square_left_edge(image) for image in decode(path)[0]]


def _boxes(data: bytes) -> list[tuple[bytes, bytes]]:
    """The MP4 boxes laid end to end in `data`: (type, body)."""
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size = int.from_bytes(data[offset : offset + 4], "big")
        boxes.append((data[offset + 4 : offset + 8], data[offset + 8 : offset + size]))
        offset += size
    return boxes


def fragment_frames(path: Path) -> list[int]:
    """The frames in each of the file's fragments, in order (each `moof`'s `trun` counts)."""
    counts = []
    for kind, moof in _boxes(path.read_bytes()):
        if kind == b"moof":
            for traf_kind, traf in _boxes(moof):
                for run_kind, run in _boxes(traf) if traf_kind == b"traf" else []:
                    if run_kind == b"trun":  # version and flags, then the sample count
                        counts.append(int.from_bytes(run[4:8], "big"))
    return counts


def picture_types(path: Path) -> set[str]:
    """The kinds of picture the file's frames are ("I", "P", "B")."""
    with av.open(str(path)) as container:
        return {PictureType(frame.pict_type).name for frame in container.decode(video=0)}
