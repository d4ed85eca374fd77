"""Frames sampled from a video file by PyAV, decoding no further than the last one taken."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt


class NotAVideoError(ValueError):
    """A file no frame can be decoded from; the message is one line saying why."""


def sample_frames(path: Path, count: int) -> list[npt.NDArray[np.uint8]]:
    """Up to `count` RGB frames [H, W, 3] spread evenly over the video file at `path`
    (`count=1`: its first frame, the file opened and one frame decoded).

    Raises:
        NotAVideoError: FFmpeg cannot open or decode it, or it holds no video frame.
    """
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise NotAVideoError("it holds no video stream")
            stream = container.streams.video[0]
            # Every k-th frame, k from the declared length (absent in some containers: then
            # the first `count` frames).
            step = max(1, (stream.frames or count) // count)
            images = []
            for i, frame in enumerate(container.decode(stream)):
                if i % step == 0:
                    # One swscale thread, as the readers use (pipeline.sources): PyAV
                    # otherwise starts and joins a thread per core for every frame.
                    images.append(frame.to_ndarray(format="rgb24", threads=1))
                    if len(images) == count:
                        break
    except av.FFmpegError as exc:  # its str() repeats the errno and the path
        raise NotAVideoError(f"cannot decode it: {exc.strerror or type(exc).__name__}") from None
    if not images:
        raise NotAVideoError("it holds no frames")
    return images
