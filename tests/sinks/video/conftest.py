"""What the video sink tests share: frames of a moving square, writing a stream, decoding."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from pipeline.types import Detections, Frame, FrameResult, LabelMap, StreamInfo
from sinks.video.sink import VideoSink

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
