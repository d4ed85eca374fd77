from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
import pytest

from detector.training.jpeg import CUT_SHORT
from pipeline.build import make_source
from pipeline.config import (
    ConfigError,
    DeviceSourceConfig,
    FileSourceConfig,
    ImagesSourceConfig,
    StreamSourceConfig,
    parse_config,
)
from pipeline.frame_queue import FrameQueue, QueuePolicy
from pipeline.image_source import NOT_AN_IMAGE, ImageFolderSource
from pipeline.readers import CameraReader
from pipeline.runner import Pipeline
from pipeline.sources import AVSource, SourceError, decoder_threads_for
from pipeline.summary import RunSummary
from pipeline.types import CameraStatus
from pipeline.urls import infer_kind
from tests.conftest import VideoFactory
from tests.cores import pin_cores
from tests.pipeline.test_pipelining import EagerDetector


def test_source_kind_is_inferred_from_the_string(tmp_path: Path) -> None:
    assert infer_kind("rtsp://cam/1") == "stream"
    assert infer_kind("HTTPS://cam/mjpeg") == "stream"
    assert infer_kind("udp://@:1234") == "stream"
    assert infer_kind("/dev/video0") == "device"
    assert infer_kind(str(tmp_path)) == "images"
    assert infer_kind("frames/*.jpg") == "images"
    assert infer_kind("clips/a.mp4") == "file"


def test_config_string_sources_become_typed_sources(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.mp4").write_bytes(b"x")
    (tmp_path / "imgs").mkdir()
    cfg = parse_config(
        "cameras:\n"
        "  - {id: f, source: a.mp4}\n"
        "  - {id: s, source: 'rtsp://u:p@cam/1'}\n"
        "  - {id: d, source: /dev/video0}\n"
        "  - {id: i, source: imgs}\n"
        "  - id: o\n    source: {type: stream, url: 'rtsp://cam/2', options: {rtsp_transport: tcp}}\n"
    )
    kinds = [type(c.source) for c in cfg.cameras]
    assert kinds == [
        FileSourceConfig,
        StreamSourceConfig,
        DeviceSourceConfig,
        ImagesSourceConfig,
        StreamSourceConfig,
    ]
    assert [c.live for c in cfg.cameras] == [False, True, True, False, True]


def test_config_errors_about_sources_point_at_the_source_and_mask_passwords(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline.config import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        parse_config(
            "cameras:\n  - id: a\n    source: missing.mp4\n"
            "  - id: b\n    source: {type: stream, url: 'ftp://u:hunter2@h/x'}\n"
            "  - id: c\n    source: {type: file, path: missing.mp4, looop: true}\n"
            "  - id: d\n    source: 'rtsp://u:hunter2@[::1/x'\n"
        )
    problems = info.value.problems
    assert problems[0].startswith(
        "cameras[0].source (camera a, line 3): file not found: 'missing.mp4'"
    )
    assert problems[1].startswith(
        "cameras[1].source.url (camera b, line 5): unsupported stream URL 'ftp://u:***@h/x'"
    )
    assert any(
        p.startswith(
            "cameras[2].source.looop (camera c, line 7): unknown key (did you mean 'loop'?)"
        )
        for p in problems
    )
    assert (
        "cameras[3].source (camera d, line 9): stream URL 'rtsp://u:***@[::1/x': "
        "its host '[::1' opens '[' without closing it"
    ) in problems
    assert "hunter2" not in str(info.value)


def test_unreachable_stream_names_the_host_and_masks_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    source = AVSource("rtsp://admin:hunter2@127.0.0.1:9/cam", live=True, timeout_s=2)
    with pytest.raises(SourceError) as info:
        source.open()
    message = str(info.value)
    assert message.startswith("cannot open rtsp://admin:***@127.0.0.1:9/cam:")
    assert "hunter2" not in message
    assert source.name == "rtsp://admin:***@127.0.0.1:9/cam"


def test_image_folder_source_reads_images_in_name_order_and_skips_bad_ones(tmp_path: Path) -> None:
    for i in (2, 0, 1):
        image = np.zeros((24, 32, 3), np.uint8)
        image[:, :, 2] = 40 * (i + 1)  # red channel, written as BGR
        cv2.imwrite(str(tmp_path / f"f{i:03d}.png"), image)
    (tmp_path / "f001b.jpg").write_bytes(b"not an image")
    (tmp_path / "notes.txt").write_text("ignored")
    source = ImageFolderSource(str(tmp_path), fps=5)
    opened = source.open()
    assert (opened.width, opened.height, opened.frame_rate, opened.total_frames) == (32, 24, 5, 4)
    frames = list(source.frames())
    assert [int(f.image[0, 0, 0]) for f in frames] == [40, 80, 120]  # RGB: red first
    assert [f.pts for f in frames] == [0.0, 0.2, 0.6]  # the bad image keeps its slot in time
    assert source.decode_errors == 1
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(str(tmp_path / "*.gif"), fps=5).open()


def test_an_image_source_whose_first_image_is_unreadable_is_refused_by_validate_as_by_run(
    tmp_path: Path,
) -> None:
    from pipeline.config import ConfigError

    (tmp_path / "f000.jpg").write_bytes(b"not an image")
    cv2.imwrite(str(tmp_path / "f001.png"), np.zeros((24, 32, 3), np.uint8))
    with pytest.raises(SourceError, match=r"cannot read the image .*f000.jpg, the first"):
        ImageFolderSource(str(tmp_path), fps=5).open()
    text = f"cameras:\n  - id: a\n    source: {{type: images, path: '{tmp_path}'}}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, probe_sources=True)
    assert info.value.problems == [
        f"cameras[0].source.path (camera a, line 3): cannot read the image "
        f"'{tmp_path / 'f000.jpg'}', the first, which sets the frame size: {NOT_AN_IMAGE}"
    ]
    parse_config(text)  # `run` leaves it to the camera, which fails alone


def write_jpegs(folder: Path, count: int) -> list[Path]:
    """`count` JPEGs of noise (which takes many bytes) in `folder`; their paths."""
    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), np.uint8)
    paths = [folder / f"f{i:03d}.jpg" for i in range(count)]
    for path in paths:
        cv2.imwrite(str(path), noise)
    return paths


def cut_short(path: Path) -> None:
    """`path` cut to half its bytes, as a copy or an upload that did not finish leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_jpeg_cut_short_in_an_image_folder_is_skipped_with_a_warning_naming_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    paths = write_jpegs(tmp_path, 3)
    cut_short(paths[1])
    paths[1].rename(tmp_path / "f001.png")  # a JPEG by its bytes, whatever its name
    source = ImageFolderSource(str(tmp_path), fps=5)
    source.open()
    with caplog.at_level(logging.WARNING):
        frames = list(source.frames())
    assert [f.pts for f in frames] == [0.0, 0.4] and source.decode_errors == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"{tmp_path}: skipped unreadable image f001.png: {CUT_SHORT}"
    ]
    assert "JPEG" not in capfd.readouterr().err  # libjpeg's own "Premature end of JPEG file"


def test_an_image_folder_whose_first_jpeg_is_cut_short_says_so_in_validate_and_run(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    first = write_jpegs(tmp_path, 2)[0]
    cut_short(first)
    why = f"cannot read the image {{}}, the first, which sets the frame size: {CUT_SHORT}"
    with pytest.raises(SourceError) as opening:
        ImageFolderSource(str(tmp_path), fps=5).open()
    assert str(opening.value) == why.format(first)
    text = f"cameras:\n  - id: a\n    source: {{type: images, path: '{tmp_path}'}}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text, probe_sources=True)
    assert info.value.problems == [
        f"cameras[0].source.path (camera a, line 3): {why.format(repr(str(first)))}"
    ]
    assert "JPEG" not in capfd.readouterr().err


def test_device_source_opens_v4l2_with_the_configured_capture_options(
    tmp_path: Path, synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No V4L2 device can exist in this sandbox (no /dev/video*, no v4l2loopback), so the
    # device is faked: av.open is intercepted and answers with a synthetic clip.
    clip = synthetic_video(frames=5)
    calls: list[dict[str, Any]] = []
    real_open = av.open

    def fake_open(url: str, **kwargs: Any) -> Any:
        calls.append({"url": url, **kwargs})
        return real_open(str(clip))

    monkeypatch.setattr(av, "open", fake_open)
    cfg = parse_config(
        "cameras:\n  - id: usb\n    source: {type: device, path: /dev/video0, width: 640, "
        "height: 480, fps: 30, input_format: mjpeg}\n"
    )
    source = make_source(cfg.cameras[0].source)
    assert source.live
    source.open()
    assert len(list(source.frames())) == 5
    source.close()
    assert calls == [
        {
            "url": "/dev/video0",
            "mode": "r",
            "format": "v4l2",
            "options": {"video_size": "640x480", "framerate": "30", "input_format": "mjpeg"},
            "timeout": 10.0,
        }
    ]


def test_missing_device_reconnects_then_fails_with_a_clear_message() -> None:
    from pipeline.readers import Backoff

    statuses: list[CameraStatus] = []
    queue = FrameQueue("usb", 4, QueuePolicy.DROP_OLDEST, threading.Condition())
    reader = CameraReader(
        "usb",
        AVSource("/dev/video99", live=True, format="v4l2", timeout_s=1),
        queue,
        threading.Event(),
        on_open=lambda info: None,
        on_status=statuses.append,
        backoff=Backoff(0.01, 0.01, 0.0, max_attempts=2),
    )
    reader.run()
    assert [s.state for s in statuses] == ["connecting", "reconnecting", "failed"]
    assert queue.error is not None
    assert queue.error.startswith("camera usb: cannot open /dev/video99:")
    assert "gave up after 2 attempts" in queue.error


def test_log_lines_never_show_passwords(caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.cli import MaskCredentials

    handler = logging.StreamHandler()
    handler.addFilter(MaskCredentials())
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "failed %s", ("rtsp://a:pw@h/1",), None
    )
    assert handler.filter(record)
    assert record.getMessage() == "failed rtsp://a:***@h/1"


@pytest.fixture
def silent_server() -> Iterator[int]:
    """The port of a server that accepts connections and never sends a byte (a camera hung
    after its TCP handshake)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    done = threading.Event()

    def accept() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        done.set()
        server.close()
        for conn in held:
            conn.close()


@pytest.mark.parametrize("scheme", ["rtsp", "http", "tcp"])
def test_a_stream_that_accepts_and_never_answers_is_said_to_give_no_answer_in_timeout_s(
    silent_server: int, scheme: str
) -> None:
    # FFmpeg's own words for this were "Immediate exit requested" or "Invalid data found".
    url = f"{scheme}://127.0.0.1:{silent_server}/cam"
    with pytest.raises(SourceError) as info:
        AVSource(url, live=True, timeout_s=0.2).open()
    assert str(info.value) == f"cannot open {url}: no answer within 0.2 s (timeout_s)"


@pytest.mark.parametrize(
    ("cameras", "cores", "threads"),
    [(1, 2, 0), (1, 16, 0), (15, 16, 0), (2, 2, 1), (16, 16, 1), (16, 2, 1), (3, 1, 1)],
)
def test_decoders_get_one_thread_once_cameras_match_the_cores_and_ffmpeg_s_choice_before(
    cameras: int, cores: int, threads: int
) -> None:
    assert decoder_threads_for(cameras, cores) == threads


def test_the_decoder_rule_counts_the_cores_this_process_may_use_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pin_cores(monkeypatch, 2)  # of a 64-core machine, as in a container
    assert [decoder_threads_for(n) for n in (1, 2)] == [0, 1]


@pytest.mark.parametrize(("threads", "expected"), [(0, 0), (1, 1), (2, 2)])
def test_a_video_source_opens_its_decoder_with_the_threads_it_is_given(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch, threads: int, expected: int
) -> None:
    clip = synthetic_video("clip.mp4", frames=3, size=(64, 48))
    opened: list[Any] = []
    real_open = av.open

    def spying_open(url: str, **kwargs: Any) -> Any:
        opened.append(real_open(url, **kwargs))
        return opened[-1]

    monkeypatch.setattr(av, "open", spying_open)
    cfg = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\n")
    source = make_source(cfg.cameras[0].source, threads)
    source.open()
    stream = opened[0].streams.video[0]
    assert (stream.thread_type.name, stream.thread_count) == ("AUTO", expected)  # 0: FFmpeg's
    assert len(list(source.frames())) == 3
    source.close()


def test_a_web_page_where_a_camera_should_answer_is_named_as_no_video() -> None:
    # a camera's login page, or a wrong path on its web server: 200, HTML, then closed
    page = b"<html><body>" + b"<p>Please log in</p>" * 100 + b"</body></html>"
    answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
        b"Connection: close\r\n\r\n" % len(page) + page
    )
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    requests = 0

    def serve() -> None:
        nonlocal requests
        with contextlib.suppress(OSError):  # closed by the test
            while True:
                client, _ = server.accept()
                with client:
                    client.recv(65536)
                    requests += 1
                    client.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    source = AVSource(f"http://user:secret@127.0.0.1:{port}/video", live=True, timeout_s=5)
    with pytest.raises(SourceError) as caught:
        source.open()
    server.shutdown(socket.SHUT_RDWR)  # ends its accept()
    thread.join(5)
    server.close()
    # one request: FFmpeg looks for a format in the answer it has, and finds no video
    assert requests == 1
    assert str(caught.value) == (
        f"cannot open http://user:***@127.0.0.1:{port}/video: Invalid data found when "
        "processing input: the server answered with no video (a web page? check the URL)"
    )


def test_a_link_loop_as_a_file_source_is_named_as_one_by_validate_and_by_its_reader(
    tmp_path: Path,
) -> None:
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)  # ln -s loop.mp4 loop.mp4: "file not found" would send one looking
    with pytest.raises(ConfigError) as info:
        parse_config(f"cameras:\n  - id: loop\n    source: {loop}\n")  # as validate loads it
    why = f"a link that leads back to itself, not a file: '{loop}'"
    assert info.value.problems == [f"cameras[0].source (camera loop, line 3): {why}"]
    with pytest.raises(SourceError) as opening:
        AVSource(str(loop), live=False, file=True).open()  # as run's reader opens it
    assert str(opening.value) == why


def release_readers(fifo: Path) -> None:
    """Lets a reader that waits on `fifo` for a writer go: a writer comes and goes at once."""
    with contextlib.suppress(OSError):  # ENXIO: nobody waits
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_a_named_pipe_as_a_file_source_is_refused_by_validate_and_by_run_alike(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    # FFmpeg would wait on the pipe for a writer forever, and the run with it.
    clip = synthetic_video("good.mp4", frames=3, size=(64, 48))
    fifo = tmp_path / "camera.pipe"
    os.mkfifo(fifo)
    text = f"cameras:\n  - id: good\n    source: {clip}\n  - id: pipe\n    source: {fifo}\n"
    with pytest.raises(ConfigError) as info:
        parse_config(text)  # as validate loads it
    assert info.value.problems == [f"cameras[1].source (camera pipe, line 5): not a file: '{fifo}'"]

    pipeline = Pipeline(parse_config(text, check_sources=False), detector=EagerDetector())
    summaries: list[RunSummary] = []
    run = threading.Thread(target=lambda: summaries.append(pipeline.run()), daemon=True)
    run.start()
    run.join(30)
    try:
        assert not run.is_alive(), "the run waits for a writer on the pipe"
    finally:
        pipeline.stop.set()
        release_readers(fifo)
    (summary,) = summaries
    assert summary.cameras["pipe"].status == f"FAILED: camera pipe: not a file: '{fifo}'"
    assert summary.cameras["pipe"].frames == 0
    assert summary.cameras["good"].ok and summary.cameras["good"].frames == 3


def _mpegts(path: Path, sizes: list[tuple[int, int]], frames: int = 3) -> Path:
    """An MPEG-TS file whose frames come at each of `sizes` in turn (TS streams join end to
    end, as a camera's stream does when its resolution is changed)."""
    parts = []
    for width, height in sizes:
        part = path.with_suffix(f".{width}.ts")
        with av.open(str(part), "w", format="mpegts") as out:
            stream = out.add_stream("libx264", rate=10)
            stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
            for i in range(frames):
                image = np.full((height, width, 3), 40 * i, np.uint8)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
            out.mux(stream.encode(None))
        parts.append(part.read_bytes())
    path.write_bytes(b"".join(parts))
    return path


def test_a_video_whose_frames_change_size_gives_every_frame_the_first_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = AVSource(str(_mpegts(tmp_path / "cam.ts", [(64, 48), (128, 96)])), live=False)
    assert (source.open().width, source.open().height) == (64, 48)
    shapes = {raw.image.shape for raw in source.frames()}
    source.close()
    # was: frames of 128x96 after the first 64x48 ones, so that zones and lines (made pixels
    # of 64x48) and the stored boxes of a camera no longer matched
    assert shapes == {(48, 64, 3)}
    assert "frames now come at 128x96, not the 64x48 it started with" in caplog.text


def test_a_stream_that_comes_back_at_another_size_keeps_the_first(tmp_path: Path) -> None:
    clip = _mpegts(tmp_path / "cam.ts", [(64, 48)])
    source = AVSource(str(clip), live=True)
    source.open()
    source.close()
    _mpegts(clip, [(96, 72)])  # reconnected after its resolution was changed
    opened = source.open()
    shapes = {raw.image.shape for raw in source.frames()}
    source.close()
    assert (opened.width, opened.height) == (64, 48) and shapes == {(48, 64, 3)}


def test_a_later_image_of_another_size_in_a_folder_is_scaled_to_the_first(tmp_path: Path) -> None:
    cv2.imwrite(str(tmp_path / "1.png"), np.zeros((48, 64, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "2.png"), np.zeros((100, 30, 3), np.uint8))
    source = ImageFolderSource(str(tmp_path), fps=10)
    source.open()
    assert [raw.image.shape for raw in source.frames()] == [(48, 64, 3), (48, 64, 3)]


def test_a_file_claiming_frames_larger_than_8k_fails_as_it_opens(tmp_path: Path) -> None:
    clip = tmp_path / "huge.y4m"  # a raw video's header says the size; one frame's start
    clip.write_bytes(b"YUV4MPEG2 W10000 H10000 F25:1 Ip C420jpeg\nFRAME\n" + bytes(1000))
    source = AVSource(str(clip), live=False, file=True)
    with pytest.raises(SourceError) as refused:  # was: frames of 300 MB, dozens queued
        source.open()
    assert str(refused.value).startswith(
        f"{clip}: frames of 10000x10000 are more than a camera may have (40,000,000 pixels"
    )


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("missing.mp4", "file not found: 'missing.mp4' (relative to "),
        ("{type: file, path: folder}", "not a file: 'folder'"),
        ("{type: file, path: camera.pipe}", "not a file: 'camera.pipe'"),
        ("{type: images, path: folder}", "no images (.bmp, .jpeg, .jpg, .png, .tif, .tiff, "),
        ("'nowhere/*.jpg'", "no images (.bmp, .jpeg, .jpg, .png, .tif, .tiff, "),
    ],
    ids=["missing-file", "folder-as-file", "pipe-as-file", "folder-without-images", "no-match"],
)
def test_a_source_that_cannot_open_says_why_before_opening_in_the_words_opening_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "camera.pipe")
    config = parse_config(f"cameras:\n  - id: a\n    source: {source}\n", check_sources=False)
    opened = make_source(config.cameras[0].source)
    problem = opened.problem()
    assert problem is not None and problem.startswith(expected)
    with pytest.raises(SourceError) as info:
        opened.open()
    assert str(info.value) == problem


def test_run_and_validate_say_alike_that_a_video_file_may_not_be_read(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = str(synthetic_video("hidden.mp4", frames=2, size=(64, 48)))
    opens = os.open

    def refused(path: Any, flags: int, *args: Any) -> int:  # as a mode refuses a user (not root)
        if os.fspath(path) == clip:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), clip)
        return opens(path, flags, *args)

    monkeypatch.setattr(os, "open", refused)
    line = f"file not readable (Permission denied): '{clip}'"
    assert AVSource(clip, live=False, file=True).problem() == line  # was: "cannot open ..."
    with pytest.raises(ConfigError) as validated:
        parse_config(f"cameras:\n  - id: a\n    source: {clip}\n")
    assert validated.value.problems == [f"cameras[0].source (camera a, line 3): {line}"]


def test_only_files_and_image_folders_are_checked_before_opening(
    synthetic_video: VideoFactory, tmp_path: Path
) -> None:
    # A stream or a device may come up later: nothing is said of it before it is opened.
    cv2.imwrite(str(tmp_path / "0.png"), np.zeros((8, 8, 3), np.uint8))
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    assert AVSource(str(clip), live=False, file=True).problem() is None
    assert ImageFolderSource(str(tmp_path), fps=5).problem() is None
    assert AVSource("rtsp://127.0.0.1:9/cam", live=True).problem() is None
    assert AVSource("/dev/video99", live=True, format="v4l2").problem() is None
