"""What reading an HTTP camera through the pipeline's feed costs: the CPU time a frame takes
to read as a camera's reader reads it (`AVSource.frames`: demux, decode, RGB), through the
feed (`pipeline.http_camera`, how `http(s)://` cameras are read: one connection, each MJPEG part
bounded) and through FFmpeg's own HTTP client straight into its demuxer (how they were read
before: MJPEG unbounded, other formats found on a second request).

A server in a process of its own sends `--frames` frames of the bundled sample clip, scaled
to `--size`, as fast as loopback takes them: JPEG parts of an MJPEG stream (`--body mjpeg`)
or H.264 in MPEG-TS (`--body mpegts`, encoded once by libx264 before the rounds). The two
ways take turns within a round, and each figure is the median, then the least (the one other
work on the machine moves least), of the rounds of this process's CPU time a frame once the
stream is open (its FFmpeg threads included, the server's not).

    python -m benchmarks.mjpeg_feed [--frames 300] [--rounds 5] [--size 1920x1080]
                                    [--body mjpeg|mpegts] [--kbps 4000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import multiprocessing.queues
import resource
import socket
import statistics
import time
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import cv2

from benchmarks.machine import machine_line
from pipeline.sources import AVSource, SourceError

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "pedestrians.mp4"
WAYS = ("feed", "ffmpeg")
"""The pipeline's feed, and FFmpeg's HTTP client straight into the demuxer."""
BODIES = {"mjpeg": "mpjpeg", "mpegts": "mpegts"}
"""What the server sends, and FFmpeg's demuxer for it."""
TS_EXTRA = 16
"""Frames sent past `--frames` in MPEG-TS: FFmpeg's HTTP client takes the server's close
for an error, and read by FFmpeg alone the frames its decoder still holds then are lost (the
feed decodes them first)."""


def sample_jpeg(size: tuple[int, int]) -> bytes:
    """A frame of the sample clip, scaled to `size`, as a JPEG of quality 90."""
    capture = cv2.VideoCapture(str(SAMPLE))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read a frame of {SAMPLE}")
    picture = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return bytes(cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 90])[1])


def sample_ts(size: tuple[int, int], frames: int, kbps: int) -> bytes:
    """`frames` frames of the sample clip (from its start again at its end), scaled to
    `size`, as H.264 (libx264, veryfast, about `kbps` kbit/s as a camera sends, a key frame
    a second) in MPEG-TS at 25 fps."""
    out_buffer = io.BytesIO()
    with av.open(str(SAMPLE)) as clip, av.open(out_buffer, "w", format="mpegts") as out:
        stream = out.add_stream("libx264", rate=Fraction(25), options={"preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        stream.gop_size = 25
        stream.bit_rate = kbps * 1000
        pictures = [f.reformat(size[0], size[1], "yuv420p") for f in clip.decode(video=0)]
        for index in range(frames):
            picture = pictures[index % len(pictures)]
            picture.pts = None
            out.mux(stream.encode(picture))
        out.mux(stream.encode(None))
    return out_buffer.getvalue()


def serve(body: str, payload: bytes, frames: int, ports: multiprocessing.queues.Queue[int]) -> None:
    """Listens on a loopback port (put on `ports`) and answers each connection with
    `frames` parts of the JPEG `payload` and one more (`body` mjpeg), or with the MPEG-TS
    `payload` (mpegts), then closes it (FFmpeg's HTTP client takes the close for an error,
    and what it was reading is lost)."""
    if body == "mjpeg":
        kind = b"multipart/x-mixed-replace; boundary=frame"
        part = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + payload + b"\r\n"
        parts = [part] * (frames + 1)
    else:
        kind = b"video/mp2t"
        parts = [payload[i : i + 65536] for i in range(0, len(payload), 65536)]
    listener = socket.create_server(("127.0.0.1", 0))
    ports.put(listener.getsockname()[1])
    while True:
        client, _ = listener.accept()
        with client, contextlib.suppress(OSError):  # a client that left early
            client.recv(65536)
            client.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + kind + b"\r\n\r\n")
            for part in parts:
                client.sendall(part)


def cpu_ms_a_frame(url: str, way: str, demuxer: str) -> tuple[float, int]:
    """This process's CPU ms a frame reading the stream at `url` one `way` (its opening left
    out), and the frames; `demuxer`: FFmpeg's for the stream."""
    # a format given is FFmpeg's HTTP client straight into the demuxer: the feed is only
    # for a camera whose format FFmpeg is left to find
    source = AVSource(url, live=True, timeout_s=10, format=None if way == "feed" else demuxer)
    source.open()  # not counted: once a connection
    before = resource.getrusage(resource.RUSAGE_SELF)
    frames = 0
    try:
        for _ in source.frames():
            frames += 1
    except SourceError:
        pass  # the server closed the connection: FFmpeg's HTTP says "Input/output error"
    finally:
        source.close()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return 1000 * cpu / max(1, frames), frames


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.mjpeg_feed")
    parser.add_argument("--frames", type=int, default=300, help="frames a round, each way")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size", default="1920x1080", help="the frames' WIDTHxHEIGHT")
    parser.add_argument("--body", choices=sorted(BODIES), default="mjpeg", help="the stream")
    parser.add_argument("--kbps", type=int, default=4000, help="MPEG-TS: H.264's bit rate")
    args = parser.parse_args(argv)
    width, height = (int(n) for n in args.size.lower().split("x"))
    print(machine_line())
    if args.body == "mjpeg":
        payload = sample_jpeg((width, height))
        size = f"{len(payload) / 1000:.0f} kB JPEG"
    else:
        payload = sample_ts((width, height), args.frames + TS_EXTRA, args.kbps)
        size = f"{len(payload) / 1000 / (args.frames + TS_EXTRA):.0f} kB a frame of H.264"
    print(f"{args.frames} frames of {width}x{height}, {size} ({args.body}) a round")
    context = multiprocessing.get_context("spawn")  # a fresh process: no threads forked
    ports: multiprocessing.queues.Queue[int] = context.Queue()
    server = context.Process(
        target=serve, args=(args.body, payload, args.frames, ports), daemon=True
    )
    server.start()
    url = f"http://127.0.0.1:{ports.get(timeout=60)}/video"
    try:
        figures: dict[str, list[float]] = {way: [] for way in WAYS}
        for _ in range(args.rounds):
            for way in WAYS:
                cpu_ms, frames = cpu_ms_a_frame(url, way, BODIES[args.body])
                if frames < args.frames:
                    raise SystemExit(f"{way}: {frames} frames of {args.frames}")
                figures[way].append(cpu_ms)
                time.sleep(0.05)
    finally:
        server.kill()
        server.join()
    for name, pick in (("median", statistics.median), ("least", min)):
        figure = {way: pick(values) for way, values in figures.items()}
        for way in WAYS:
            print(f"{way:>8}: {figure[way]:.3f} CPU-ms a frame ({name} of {args.rounds} rounds)")
        print(f"   ratio: {figure['feed'] / figure['ffmpeg']:.3f} (feed / ffmpeg, {name})")


if __name__ == "__main__":
    main()
