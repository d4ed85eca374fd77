"""An HTTP MJPEG camera is read through a feed that bounds each part: a camera whose part
never ends is dropped once the part passes the bound, in one line naming the camera, and is
reconnected as any live camera while the others keep going; a stop still ends a read at
once. Loopback servers only (`tests.pipeline.mjpeg_server`)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import pytest

from pipeline.batching import Batcher
from pipeline.frame_queue import FrameQueue, QueuePolicy
from pipeline.mjpeg import PART_LIMIT
from pipeline.readers import Backoff, CameraReader
from pipeline.sources import AVSource
from pipeline.types import CameraStatus
from tests.pipeline.mjpeg_server import SEND_BUFFER, MjpegServer

RECEIVE_BUFFER = 256 * 1024
"""The client's socket receive buffer (FFmpeg's `recv_buffer_size`), instead of the kernel's
autotuning up to tens of MB: with the server's send buffer, all that the kernel holds
between what the server counts as sent and what the feed took."""
SLACK = 2 * (SEND_BUFFER + RECEIVE_BUFFER) + 2**20
"""What may be sent past the bound before the connection drops: the kernel's buffers (Linux
doubles what is asked) and the demuxer's read-ahead."""


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
    caplog: pytest.LogCaptureFixture, good_parts: int, declared: int | None, failed: str
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
    assert bad.endless_sent  # what the server sent of each part that never ended
    assert all(PART_LIMIT - 4096 <= sent <= PART_LIMIT + SLACK for sent in bad.endless_sent)
    assert bad_reader.frames_decoded >= good_parts  # the parts before the endless one came
    dropped = [
        r.getMessage()
        for r in caplog.records
        if r.getMessage().startswith("camera gate reconnecting")
    ]
    assert len(dropped) >= 2
    where = failed.format(url=bad.url())
    reason = "an MJPEG part passed 32 MB without its boundary"
    assert set(dropped) == {f"camera gate reconnecting: {where}: {reason}; retrying in 0.05 s"}
    assert [s.state for s in bad_statuses][-1] == "stopped"
    assert [s.state for s in good_statuses] == ["connecting", "streaming", "stopped"]


def test_a_stop_ends_a_read_inside_a_part_that_never_ends_at_once() -> None:
    # a slow camera: its part would take minutes to reach the bound, and data keeps coming
    # (no timeout); the stop is seen between two network reads
    stop, cond = threading.Event(), threading.Condition()
    with MjpegServer(2, endless=True, chunk=1024, chunk_delay_s=0.02) as slow:
        reader, statuses = _reader("gate", slow.url(), stop, cond)
        reader.start()
        deadline = time.monotonic() + 10
        while reader.queue.frames_in < 2:
            assert time.monotonic() < deadline, [s.state for s in statuses]
            time.sleep(0.01)
        time.sleep(0.2)  # inside the endless part
        stop.set()
        reader.join(5)  # its timeout_s is 10 s, and the bound minutes away
    assert not reader.is_alive()
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
