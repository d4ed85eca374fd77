"""The clip a bench run reads: its default, its frame size, a re-encoded copy at another
size, and the time its decoding takes."""

from __future__ import annotations

import time
from pathlib import Path

DEFAULT_CLIP = "samples/pedestrians.mp4"


def frame_size(clip: str) -> str:
    """ "W x H" of the clip's video stream."""
    import av

    with av.open(clip) as container:
        ctx = container.streams.video[0].codec_context
        return f"{ctx.width}x{ctx.height}"


def scaled_clip(
    clip: str, size: tuple[int, int], folder: Path, max_frames: int | None = None
) -> str:
    """`clip` re-encoded as H.264 (libx264 veryfast, CRF 23) at `size` (W, H) into `folder`:
    to measure at a resolution the clip does not have (`--scale 1920x1080`). `max_frames`:
    only the first ones (None: all)."""
    import av

    width, height = size
    path = folder / f"scaled_{width}x{height}.mp4"
    with av.open(clip) as inp, av.open(str(path), "w") as out:
        source = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=source.average_rate or 25)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for index, frame in enumerate(inp.decode(source)):
            if max_frames is not None and index >= max_frames:
                break
            scaled = frame.reformat(width=width, height=height, format="yuv420p")
            scaled.pts = None  # numbered by the encoder at the stream's rate
            out.mux(stream.encode(scaled))
        out.mux(stream.encode(None))
    return str(path)


def decode_ms_per_frame(clip: str, max_frames: int | None = None) -> tuple[float, int]:
    """Busy time of decoding `clip` to RGB with the pipeline's own source, ms per frame."""
    from pipeline.sources import AVSource

    source = AVSource(clip, live=False)
    source.open()
    frames, started = 0, time.perf_counter()
    try:
        for _ in source.frames():
            frames += 1
            if max_frames is not None and frames >= max_frames:
                break
    finally:
        source.close()
    return 1000 * (time.perf_counter() - started) / max(frames, 1), frames
