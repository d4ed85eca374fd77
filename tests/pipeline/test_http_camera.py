"""An HTTP camera is read on one connection, through a feed that bounds each MJPEG part: a
camera whose part never ends is dropped once the part passes the bound, in one line naming
the camera, and is reconnected as any live camera while the others keep going, while the
largest picture a camera may have passes at JPEG's worst; a stop still ends a read at once;
a camera that serves one client at a time streams MPEG-TS; a stream cut short while it is
opened plays what came, and one that breaks later every frame that came before the break
(MJPEG: every whole picture); the body's bytes, not its Content-Type, tell its format; an
HLS playlist is left to FFmpeg's own requests, as an MP4 file is. Loopback servers only
(`tests.pipeline.http_servers`)."""

from __future__ import annotations

import http.server
import io
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import ClassVar

import av
import cv2
import numpy as np
import pytest

from pipeline import http_camera
from pipeline.batching import Batcher
from pipeline.config.base import BYTES_PER_MB
from pipeline.frame_queue import FrameQueue, QueuePolicy
from pipeline.http_camera import PART_BYTES_PER_PIXEL, PART_LIMIT
from pipeline.readers import Backoff, CameraReader
from pipeline.sources import AVSource, SourceError
from pipeline.types import MAX_FRAME_PIXELS, CameraStatus
from tests.pipeline.http_servers import (
    MJPEG,
    SEND_BUFFER,
    MjpegServer,
    OneClientServer,
    jpeg,
    mpegts,
    part,
)

RECEIVE_BUFFER = 256 * 1024
"""The client's socket receive buffer (FFmpeg's `recv_buffer_size`), instead of the kernel's
autotuning up to tens of MB: with the server's send buffer, all that the kernel holds
between what the server counts as sent and what the feed took."""
SLACK = 2 * (SEND_BUFFER + RECEIVE_BUFFER) + 2**20
"""What may be sent past the bound before the connection drops: the kernel's buffers (Linux
doubles what is asked) and the demuxer's read-ahead."""
BOUND = 8 * BYTES_PER_MB
"""The bound of a part where a test sends parts that never end: what it does, not its size
(180 MB, a second or more of loopback traffic each time), is what those tests check."""


@pytest.fixture
def small_bound(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(http_camera, "PART_LIMIT", BOUND)
    return BOUND


def _reader(
    camera_id: str,
    url: str,
    stop: threading.Event,
    cond: threading.Condition,
    timeout_s: float = 10,
) -> tuple[CameraReader, list[CameraStatus]]:
    options = {"recv_buffer_size": str(RECEIVE_BUFFER)}
    source = AVSource(url, live=True, options=options, timeout_s=timeout_s)
    statuses: list[CameraStatus] = []
    reader = CameraReader(
        camera_id,
        source,
        FrameQueue(camera_id, 4, QueuePolicy.DROP_OLDEST, cond),
        stop,
        on_open=lambda _info: None,
        on_status=statuses.append,
        backoff=Backoff(initial_s=0.05, max_s=0.05, jitter=0.0),
    )
    return reader, statuses


def _stream_until(
    reader: CameraReader,
    statuses: list[CameraStatus],
    stop: threading.Event,
    ready: Callable[[], bool],
    then_s: float = 0.0,
    wait_s: float = 10.0,
) -> None:
    """Starts `reader`, waits until `ready()` (`wait_s` at most), `then_s` more, then stops
    it and sees it end within 5 s."""
    reader.start()
    deadline = time.monotonic() + wait_s
    while not ready():
        assert time.monotonic() < deadline, [(s.state, s.message) for s in statuses]
        time.sleep(0.01)
    time.sleep(then_s)
    stop.set()
    reader.join(5)
    assert not reader.is_alive()


def _frames_until_break(
    url: str, timeout_s: float, format: str | None = None
) -> tuple[int, SourceError]:
    """The frames the HTTP camera at `url` gives until its stream breaks, and what it
    breaks with (the camera would reconnect)."""
    source = AVSource(url, live=True, format=format, timeout_s=timeout_s)
    source.open()
    frames = 0
    try:
        with pytest.raises(SourceError) as caught:
            for _ in source.frames():
                frames += 1
    finally:
        source.close()
    return frames, caught.value


@pytest.mark.parametrize(
    ("good_parts", "declared", "failed"),
    [
        (3, None, "reading {url} failed"),
        (0, None, "cannot open {url}"),
        (3, 2**31 - 1, "reading {url} failed"),  # its header says 2 GB: FFmpeg would wait
    ],
    ids=["after-good-parts", "first-part", "declared-2-GB-long"],
)
def test_a_camera_whose_mjpeg_part_never_ends_is_dropped_at_the_bound_while_another_goes_on(
    caplog: pytest.LogCaptureFixture,
    small_bound: int,
    good_parts: int,
    declared: int | None,
    failed: str,
) -> None:
    caplog.set_level(logging.INFO, logger="pipeline.readers")
    stop, cond = threading.Event(), threading.Condition()
    frames: Counter[str] = Counter()
    good_after_drop = 0
    with (
        MjpegServer(good_parts, endless=True, declared=declared) as bad,
        MjpegServer(None, interval_s=0.02) as good,
    ):
        bad_reader, bad_statuses = _reader("gate", bad.url(), stop, cond)
        good_reader, good_statuses = _reader("yard", good.url(), stop, cond)
        readers = [bad_reader, good_reader]
        for reader in readers:
            reader.start()
        batcher = Batcher([r.queue for r in readers], cond, batch_size=4, max_wait=0.01)
        deadline = time.monotonic() + 30
        # dropped twice: the camera reconnected after the first time, as live cameras do
        while (drops := [s.state for s in bad_statuses].count("reconnecting")) < 2 or (
            good_after_drop < 5
        ):
            assert time.monotonic() < deadline, (bad.endless_sent, frames)
            batch = batcher.next_batch(until=time.monotonic() + 0.1)
            assert batch is not None
            for item in batch.items:
                frames[item.frame.camera_id] += 1
                good_after_drop += item.frame.camera_id == "yard" and drops > 0
        stop.set()
        while batcher.next_batch() is not None:
            pass
        for reader in readers:
            reader.join(5)
            assert not reader.is_alive()
    # what the server sent of each part that never ended: those dropped reached the bound;
    # one the stop cut short (the camera had reconnected) may not have
    at_bound = [sent for sent in bad.endless_sent if small_bound - 4096 <= sent]
    assert len(at_bound) >= drops
    assert all(sent <= small_bound + SLACK for sent in bad.endless_sent)
    assert bad_reader.frames_decoded >= good_parts  # the parts before the endless one came
    dropped = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("camera gate reconnecting")
    ]
    assert len(dropped) >= 2
    where = failed.format(url=bad.url())
    reason = "an MJPEG part passed 8 MB without its boundary"
    assert set(dropped) == {f"camera gate reconnecting: {where}: {reason}; retrying in 0.05 s"}
    assert [s.state for s in bad_statuses][-1] == "stopped"
    assert [s.state for s in good_statuses] == ["connecting", "streaming", "stopped"]


def test_the_part_bound_holds_the_largest_frame_a_camera_may_have_as_jpeg_s_worst_picture() -> None:
    # pure noise at quality 100 with no chroma subsampling: the most bytes a pixel JPEG takes
    noise = np.random.default_rng(5).integers(0, 256, (480, 640, 3), np.uint8)
    sampling = [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444]
    encoded = cv2.imencode(".jpg", noise, [cv2.IMWRITE_JPEG_QUALITY, 100, *sampling])[1]
    worst = len(encoded) / (640 * 480)
    assert 4 < worst <= PART_BYTES_PER_PIXEL
    assert worst * MAX_FRAME_PIXELS <= PART_LIMIT


def test_parts_as_long_as_an_8k_camera_s_most_detailed_pictures_pass() -> None:
    # a 7680x4320 picture of noise is 39 MB at quality 95: these parts are 40 MB each
    stop, cond = threading.Event(), threading.Condition()
    picture = jpeg(padding=40 * BYTES_PER_MB)
    with MjpegServer(None, picture=picture, interval_s=0.05) as camera:
        reader, statuses = _reader("gate", camera.url(), stop, cond)
        _stream_until(reader, statuses, stop, lambda: reader.frames_decoded >= 3, wait_s=20)
    assert [s.state for s in statuses] == ["connecting", "streaming", "stopped"]
    assert reader.queue.error is None


def test_a_stop_ends_a_read_inside_a_part_that_never_ends_at_once() -> None:
    # a slow camera: its part would take minutes to reach the bound, and data keeps coming
    # (no timeout); the stop is seen between two network reads
    stop, cond = threading.Event(), threading.Condition()
    with MjpegServer(2, endless=True, chunk=1024, chunk_delay_s=0.02) as slow:
        reader, statuses = _reader("gate", slow.url(), stop, cond)
        # then inside the endless part; its timeout_s is 10 s, and the bound minutes away
        _stream_until(reader, statuses, stop, lambda: reader.queue.frames_in >= 2, then_s=0.2)
    assert [s.state for s in statuses] == ["connecting", "streaming", "stopped"]
    assert reader.queue.error is None


def test_a_camera_silent_inside_a_part_is_said_to_give_no_answer_in_timeout_s() -> None:
    stop, cond = threading.Event(), threading.Condition()
    with MjpegServer(2, endless=True, chunk=1024, chunk_delay_s=60) as silent:
        reader, statuses = _reader("gate", silent.url(), stop, cond, timeout_s=0.3)
        reader.start()
        deadline = time.monotonic() + 10
        while "reconnecting" not in [s.state for s in statuses]:
            assert time.monotonic() < deadline, [s.state for s in statuses]
            time.sleep(0.01)
        stop.set()
        reader.join(5)
    assert [s.state for s in statuses][:3] == ["connecting", "streaming", "reconnecting"]
    assert statuses[2].message == (
        f"reading {silent.url()} failed: no answer within 0.3 s (timeout_s); retrying in 0.05 s"
    )


def test_a_camera_that_serves_one_client_at_a_time_streams_mpeg_ts_on_one_connection() -> None:
    # the answer looked at for an MJPEG boundary is the one FFmpeg reads: a second request
    # would get this camera's 503
    stop, cond = threading.Event(), threading.Condition()
    with OneClientServer(mpegts(120)) as camera:
        reader, statuses = _reader("gate", camera.url(), stop, cond)
        _stream_until(reader, statuses, stop, lambda: reader.queue.frames_in >= 20)
    assert [s.state for s in statuses] == ["connecting", "streaming", "stopped"]
    assert reader.queue.error is None
    assert camera.connections == 1


@pytest.mark.parametrize(
    ("format", "least"), [(None, 8), ("mpegts", 1)], ids=["feed", "ffmpeg-alone"]
)
def test_a_stream_cut_short_while_ffmpeg_probes_it_plays_what_came_then_says_why(
    format: str | None, least: int
) -> None:
    # all 8 frames come, and the connection breaks, before FFmpeg has seen enough to know
    # the stream's details: read through the feed, it opens, plays every frame that came
    # and fails in FFmpeg's words for the break, as FFmpeg reading the URL alone does
    with OneClientServer(mpegts(8), piece=1 << 20, hold=False) as camera:
        frames, error = _frames_until_break(camera.url(), 5, format)
    assert frames >= least  # FFmpeg alone loses those its decoder held at the break
    assert str(error) == f"reading {camera.url()} failed: Input/output error"
    assert camera.connections == 1


@pytest.mark.parametrize(
    ("hold", "why"),
    [(False, "Input/output error"), (True, "no answer within 1 s (timeout_s)")],
    ids=["connection-closed", "camera-silent"],
)
def test_an_mpeg_ts_stream_that_breaks_plays_every_frame_that_came_before_it_says_why(
    hold: bool, why: str
) -> None:
    # the stream breaks about 200 frames in (20 s of it, long after it opened), inside a TS
    # packet: FFmpeg reading the URL alone loses the frames its demuxer and decoder hold at
    # the break; read through the feed, every frame whose bytes came is decoded first
    body = mpegts(300)
    cut = body[: len(body) * 2 // 3 + 100]
    with av.open(io.BytesIO(cut), format="mpegts") as received:
        came = sum(1 for _ in received.decode(video=0))
    with OneClientServer(cut, hold=hold) as camera:
        frames, error = _frames_until_break(camera.url(), 1)
    assert came > 150
    assert frames == came
    assert str(error) == f"reading {camera.url()} failed: {why}"
    assert camera.connections == 1


def test_an_mjpeg_stream_cut_inside_a_part_plays_every_whole_part_and_not_the_cut_one() -> None:
    # the cut part would be a picture with its lower half missing
    picture = part(jpeg((640, 480)))
    with OneClientServer(picture * 30 + picture[: len(picture) // 2], MJPEG, hold=False) as camera:
        frames, error = _frames_until_break(camera.url(), 5)
    assert frames == 30
    assert str(error) == f"reading {camera.url()} failed: Input/output error"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [("mpeg-ts", MJPEG), ("mjpeg", b"video/mp2t"), ("mpeg-ts", b"text/html")],
    ids=["mpeg-ts-said-mjpeg", "mjpeg-said-mpeg-ts", "mpeg-ts-said-a-web-page"],
)
def test_a_stream_whose_content_type_names_another_format_plays_as_its_bytes_say(
    body: str, content_type: bytes
) -> None:
    # the demuxer is chosen from the body's bytes, which cannot be wrong, not from the
    # header, which can
    sent = mpegts(30) if body == "mpeg-ts" else part(jpeg()) * 30
    with OneClientServer(sent, content_type, piece=1 << 20, hold=False) as camera:
        frames, _ = _frames_until_break(camera.url(), 5)
    assert frames == 30


def noise_mp4(path: Path, frames: int) -> bytes:
    """An MP4 of `frames` 320x240 frames of noise (about 34 kB each), its index last."""
    pictures = np.random.default_rng(3).integers(0, 256, (frames, 240, 320, 3), np.uint8)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(25))
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        for picture in pictures:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        out.mux(stream.encode(None))
    return path.read_bytes()


class FileServer(http.server.BaseHTTPRequestHandler):
    """Answers GET with `files[path]` (body, Content-Type), a `Range: bytes=A-[B]` asked
    included, as a web server serves files; every path asked is appended to `asked`."""

    files: ClassVar[dict[str, tuple[bytes, str]]] = {}
    asked: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.asked.append(self.path)
        body, kind = self.files[self.path]
        asked_range = self.headers.get("Range", "")
        first, _, last = asked_range.removeprefix("bytes=").partition("-")
        if asked_range.startswith("bytes=") and first:
            end = int(last) + 1 if last else len(body)
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {first}-{end - 1}/{len(body)}")
            body = body[int(first) : end]
        else:
            self.send_response(200)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the test's output, not the server's


@pytest.mark.parametrize("kind", ["hls", "mp4"])
def test_an_hls_playlist_or_an_mp4_file_is_left_to_ffmpeg_s_own_requests(
    kind: str, tmp_path: Path
) -> None:
    # HLS: the segments are further URLs. MP4: PyAV writes the index last, after 1 MB of
    # noise, and FFmpeg reads it first, then the frames before it (read on the first
    # response alone, the stream opens and fails at its first frame: "Invalid data")
    playlist = (
        b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:3\n#EXT-X-MEDIA-SEQUENCE:0\n"
        b"#EXTINF:3.0,\nsegment0.ts\n#EXT-X-ENDLIST\n"
    )
    files = {
        "/live.m3u8": (playlist, "application/vnd.apple.mpegurl"),
        "/segment0.ts": (mpegts(30), "video/mp2t"),
        "/clip.mp4": (noise_mp4(tmp_path / "clip.mp4", 30), "video/mp4"),
    }
    path = "/live.m3u8" if kind == "hls" else "/clip.mp4"
    handler: type[FileServer] = type("Handler", (FileServer,), {"files": files, "asked": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:
        source = AVSource(
            f"http://127.0.0.1:{server.server_address[1]}{path}", live=True, timeout_s=10
        )
        opened = source.open()
        frames = sum(1 for _ in source.frames())
        source.close()
    finally:
        server.shutdown()
        server.server_close()
        serving.join(5)
    assert (opened.width, opened.height) == ((64, 48) if kind == "hls" else (320, 240))
    assert frames == 30
    # looked at once, then asked again by FFmpeg (and for HLS, its segment)
    assert handler.asked[:2] == [path, path]
