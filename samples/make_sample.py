"""Rebuild samples/pedestrians.mp4 from OpenCV's vtest.avi (see samples/README.md).

Usage: python samples/make_sample.py ../shared/data/vtest.avi samples/pedestrians.mp4
"""

from __future__ import annotations

import sys

import av

FRAMES = 200  # 20 s at vtest.avi's 10 fps: enough to see people walk in and out


def main(src: str, dst: str) -> None:
    with av.open(src) as inp, av.open(dst, "w") as out:
        in_stream = inp.streams.video[0]
        stream = out.add_stream("libx264", rate=in_stream.average_rate)
        stream.width = in_stream.codec_context.width
        stream.height = in_stream.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "26", "preset": "slow"}
        for i, frame in enumerate(inp.decode(in_stream)):
            if i >= FRAMES:
                break
            frame.pts = None  # let the encoder number frames at the stream's rate
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
