"""The snapshot writer thread writes off the caller's thread and never makes it wait: a
snapshot settles written, or lost when its write fails, hangs past the bound, or finds the
queue full; a snapshot given up on leaves no file behind."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pipeline.types import Snapshot
from sinks.snapshots.writer import SnapshotWriter
from sinks.snapshots.writer_thread import PendingSnapshot, SnapshotWriterThread
from tests.clock import Clock
from tests.sinks.snapshots.builders import snapshot
from tests.sinks.snapshots.hanging import HangingWriter
from tests.sinks.sql.builders import wait_for

BOUND_S = 2.0


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hanging(tmp_path: Path) -> Iterator[HangingWriter]:
    writer = HangingWriter(tmp_path, hang_on=("_1.jpg",))
    yield writer
    writer.let_go.set()


def started(writer: HangingWriter, clock: Clock, **kwargs: Any) -> SnapshotWriterThread:
    return SnapshotWriterThread(writer, timeout_s=BOUND_S, clock=clock, **kwargs)


def test_a_snapshot_is_written_on_the_writer_thread_and_settles_with_its_paths(
    tmp_path: Path, clock: Clock
) -> None:
    writer = HangingWriter(tmp_path)
    thread = started(writer, clock)
    try:
        written = thread.submit(snapshot(tmp_path, "cam", 2, full_frame=True)).wait()
    finally:
        thread.close()
    assert written.lost is None
    assert written.frame_path is not None and Path(written.frame_path).is_file()
    assert Path(written.path).is_file() and written.stored_paths[0] == written.path
    assert writer.threads == ["snapshot-writer"]


def test_whoever_holds_the_event_is_told_when_a_write_settles_but_not_of_one_given_up(
    tmp_path: Path, clock: Clock, hanging: HangingWriter
) -> None:
    settled: list[Snapshot | None] = []
    told = threading.Event()
    pendings: list[PendingSnapshot] = []

    def on_settled() -> None:  # as the detection loop: the outcome is there when told
        settled.append(pendings[-1].settle())
        told.set()

    thread = started(hanging, clock, on_settled=on_settled)
    try:
        pendings.append(thread.submit(snapshot(tmp_path, "cam", 2)))
        assert told.wait(10)
        told.clear()
        pendings.append(thread.submit(snapshot(tmp_path, "cam", 1)))  # hangs
        assert hanging.hanging.wait(10)
        clock.advance(BOUND_S)
        assert pendings[-1].settle() is not None  # given up on: its event went out lost
        hanging.let_go.set()
        assert hanging.returned.wait(10)
    finally:
        thread.close()
    assert not told.is_set()  # the late outcome is nobody's news
    (written,) = settled
    assert written is not None and written.lost is None and Path(written.path).is_file()


def test_a_write_that_hangs_is_given_up_at_the_bound_and_leaves_no_file(
    tmp_path: Path, clock: Clock, hanging: HangingWriter
) -> None:
    thread = started(hanging, clock)
    pending = thread.submit(snapshot(tmp_path, "cam", 1))
    assert hanging.hanging.wait(10)
    assert pending.settle() is None  # still being written: the caller goes on
    clock.advance(BOUND_S)
    lost = pending.settle()
    assert lost is not None and lost.lost is not None and lost.lost.transient
    assert lost.lost.reason == f"not written within 2 s: {tmp_path} does not answer"
    assert lost.stored_paths == (None, None)
    hanging.let_go.set()  # the disk answers again: what came too late is deleted
    assert hanging.returned.wait(10)
    wait_for(lambda: not list(tmp_path.rglob("*.jpg")), "the late snapshot deleted")
    thread.close()
    assert not list(tmp_path.rglob(".*.tmp"))
    assert pending.wait() is lost  # settled once, for good


def test_while_a_write_hangs_past_the_bound_new_snapshots_are_lost_at_once(
    tmp_path: Path, clock: Clock, hanging: HangingWriter
) -> None:
    thread = started(hanging, clock)
    try:
        thread.submit(snapshot(tmp_path, "cam", 1))
        assert hanging.hanging.wait(10)
        clock.advance(BOUND_S + 0.1)
        lost = thread.submit(snapshot(tmp_path, "cam", 2)).settle()
        assert lost is not None and lost.lost is not None
        assert lost.lost.reason.startswith("not written within 2 s")
    finally:
        hanging.let_go.set()
        thread.close()
    assert not (tmp_path / snapshot(tmp_path, "cam", 2).name).exists()


def test_a_full_queue_loses_the_snapshot_at_once(
    tmp_path: Path, clock: Clock, hanging: HangingWriter
) -> None:
    thread = started(hanging, clock, queue_size=1)
    try:
        thread.submit(snapshot(tmp_path, "cam", 1))
        assert hanging.hanging.wait(10)  # taken off the queue, hanging
        queued = thread.submit(snapshot(tmp_path, "cam", 2))
        lost = thread.submit(snapshot(tmp_path, "cam", 3)).settle()
        assert lost is not None and lost.lost is not None and lost.lost.transient
        assert lost.lost.reason == f"1 snapshots already wait to be written to {tmp_path}"
        hanging.let_go.set()
        written = queued.wait()  # within its bound: the clock did not move
        assert written.lost is None and Path(written.path).is_file()
    finally:
        hanging.let_go.set()
        thread.close()


def test_a_snapshot_that_cannot_be_encoded_is_lost_alone_and_the_writer_goes_on(
    tmp_path: Path, clock: Clock
) -> None:
    good = snapshot(tmp_path, "cam", 2)
    bad = Snapshot(
        3,
        good.box,
        np.zeros((4, 70_000, 3), np.uint8),
        str(tmp_path),
        snapshot(tmp_path, "cam", 1).name,
    )  # wider than JPEG allows
    thread = started(HangingWriter(tmp_path), clock)
    try:
        lost = thread.submit(bad).wait()
        written = thread.submit(good).wait()
    finally:
        thread.close()
    assert lost.lost is not None and not lost.lost.transient
    assert lost.lost.reason.startswith(f"cannot write {bad.path}: ")
    assert "\n" not in lost.lost.reason
    assert written.lost is None and Path(written.path).is_file()


def test_close_does_not_wait_for_a_write_hung_past_its_bound(
    tmp_path: Path, clock: Clock, hanging: HangingWriter, caplog: pytest.LogCaptureFixture
) -> None:
    thread = started(hanging, clock)
    thread.submit(snapshot(tmp_path, "cam", 1))
    assert hanging.hanging.wait(10)
    clock.advance(BOUND_S)
    closed = threading.Event()

    def close() -> None:
        thread.close()
        closed.set()

    closer = threading.Thread(target=close, daemon=True)
    with caplog.at_level(logging.WARNING):
        closer.start()
        assert closed.wait(10)  # the write still hangs: it is not let go before this
    assert hanging.hanging.is_set() and not hanging.let_go.is_set()
    assert f"a write to {tmp_path} has not returned after 2 s" in caplog.text


def test_a_writer_that_was_closed_loses_what_it_is_handed(tmp_path: Path) -> None:
    thread = SnapshotWriterThread(SnapshotWriter(tmp_path))
    thread.close()
    lost = thread.submit(snapshot(tmp_path, "cam", 1)).settle()
    assert lost is not None and lost.lost is not None
    assert lost.lost.reason == "the snapshot writer has stopped"
    assert not list(tmp_path.rglob("*.jpg"))


def test_the_bound_and_the_queue_size_must_be_positive(tmp_path: Path) -> None:
    writer = SnapshotWriter(tmp_path)
    with pytest.raises(ValueError, match="timeout_s must be > 0"):
        SnapshotWriterThread(writer, timeout_s=0)
    with pytest.raises(ValueError, match="queue_size must be >= 1"):
        SnapshotWriterThread(writer, queue_size=0)
