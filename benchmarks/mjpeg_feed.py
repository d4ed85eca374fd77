"""What bounding each MJPEG part costs: the CPU time a frame of an HTTP MJPEG camera takes
to read as a camera's reader reads it (`AVSource.frames`: demux, decode, RGB), through the
feed that bounds each part (`pipeline.mjpeg`, how `http(s)://` cameras are read) and
through FFmpeg's own HTTP client straight into its mpjpeg demuxer (how they were read
before, unbounded).

A server in a process of its own sends `--frames` JPEG frames of the bundled sample clip,
scaled to `--size`, as fast as loopback takes them; the two ways take turns within a round,
and each figure is the median, then the least (the one other work on the machine moves
least), of the rounds of this process's CPU time a frame once the stream is open (its FFmpeg
threads included, the server's not).

    python -m benchmarks.mjpeg_feed [--frames 300] [--rounds 5] [--size 1920x1080]
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import multiprocessing.queues
import resource
import socket
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import cv2

from benchmarks.machine import machine_line
from pipeline.sources import AVSource, SourceError

SAMPLE = Path(__file__).resolve().parents[1] / "samples" / "pedestrians.mp4"
WAYS = ("bounded", "ffmpeg")
"""The feed that bounds each part, and FFmpeg's HTTP client straight into mpjpeg."""


def sample_jpeg(size: tuple[int, int]) -> bytes:
    """A frame of the sample clip, scaled to `size`, as a JPEG of quality 90."""
    capture = cv2.VideoCapture(str(SAMPLE))
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise SystemExit(f"cannot read a frame of {SAMPLE}")
    picture = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    return bytes(cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 90])[1])


def serve(jpeg: bytes, frames: int, ports: multiprocessing.queues.Queue[int]) -> None:
    """Listens on a loopback port (put on `ports`) and answers each connection with
    `frames` parts of `jpeg` and one more, then closes it (FFmpeg's HTTP client takes the
    close for an error, and the part it was reading is lost)."""
    part = b"--frame\r\nContent-Type: image/jpeg\r\n\r\n" + jpeg + b"\r\n"
    listener = socket.create_server(("127.0.0.1", 0))
    ports.put(listener.getsockname()[1])
    while True:
        client, _ = listener.accept()
        with client, contextlib.suppress(OSError):  # a client that left early
            client.recv(65536)
            client.sendall(
                b"HTTP/1.1 200 OK\r\n"
                b"Content-Type: multipart/x-mixed-replace; boundary=frame\r\n\r\n"
            )
            for _ in range(frames + 1):
                client.sendall(part)


def cpu_ms_a_frame(url: str, way: str) -> tuple[float, int]:
    """This process's CPU ms a frame reading the stream at `url` one `way` (its opening left
    out), and the frames."""
    # format="mpjpeg" is FFmpeg's HTTP client straight into the demuxer: the feed is only
    # for a camera whose format FFmpeg is left to find
    source = AVSource(url, live=True, timeout_s=10, format=None if way == "bounded" else "mpjpeg")
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
    parser.add_argument("--size", default="1920x1080", help="the JPEG frames' WIDTHxHEIGHT")
    args = parser.parse_args(argv)
    width, height = (int(n) for n in args.size.lower().split("x"))
    jpeg = sample_jpeg((width, height))
    print(machine_line())
    print(f"{args.frames} frames of {width}x{height}, {len(jpeg) / 1000:.0f} kB JPEG a round")
    context = multiprocessing.get_context("spawn")  # a fresh process: no threads forked
    ports: multiprocessing.queues.Queue[int] = context.Queue()
    server = context.Process(target=serve, args=(jpeg, args.frames, ports), daemon=True)
    server.start()
    url = f"http://127.0.0.1:{ports.get(timeout=60)}/video"
    try:
        figures: dict[str, list[float]] = {way: [] for way in WAYS}
        for _ in range(args.rounds):
            for way in WAYS:
                cpu_ms, frames = cpu_ms_a_frame(url, way)
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
        print(f"   ratio: {figure['bounded'] / figure['ffmpeg']:.3f} (bounded / ffmpeg, {name})")


if __name__ == "__main__":
    main()
