"""Stacking a batch on several threads gives `np.stack`'s array, and the threads end."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from detector import host_copy
from detector.host_copy import MAX_COPY_THREADS, HostCopy, copy_threads
from tests.cores import pin_cores


def images(count: int, height: int = 37, width: int = 23) -> list[np.ndarray]:
    rng = np.random.default_rng(count)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
@pytest.mark.parametrize("count", [1, 2, 5, 32])
def test_stack_equals_np_stack(threads: int, count: int) -> None:
    batch = images(count)
    copy = HostCopy(threads)
    out = np.zeros((count, *batch[0].shape), np.uint8)
    try:
        assert copy.stack(batch, out) is out
    finally:
        copy.close()
    np.testing.assert_array_equal(out, np.stack(batch))


def test_stack_copies_views_with_strides() -> None:
    # a crop of a larger frame, and a frame flipped left to right: not contiguous
    big = images(1, 80, 60)[0]
    batch = [big[10:47, 5:28], big[:37, 23:0:-1], images(1)[0]]
    copy = HostCopy(4)
    out = np.empty((3, 37, 23, 3), np.uint8)
    try:
        copy.stack(batch, out)
    finally:
        copy.close()
    np.testing.assert_array_equal(out, np.stack(batch))


@pytest.mark.parametrize("frames", [1, 2, 3, 5, 8, 9, 33])
@pytest.mark.parametrize("threads", [2, 3, 8, 16])
def test_split_covers_every_row_once_in_at_most_threads_parts(frames: int, threads: int) -> None:
    rows = 7
    parts = host_copy._split(frames, rows, threads)
    assert 0 < len(parts) <= threads and all(parts)
    covered = np.zeros((frames, rows), int)
    for part in parts:
        for i, start, end in part:
            covered[i, start:end] += 1
    np.testing.assert_array_equal(covered, 1)
    if frames * rows >= threads:  # rows are cut so that every thread has a share
        assert len(parts) == threads


def test_the_copy_runs_on_the_pool_threads_too(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: set[str] = set()
    real_copyto = np.copyto

    def copyto(dst: np.ndarray, src: np.ndarray) -> None:
        seen.add(threading.current_thread().name)
        real_copyto(dst, src)

    monkeypatch.setattr(host_copy.np, "copyto", copyto)
    copy = HostCopy(3)
    try:
        copy.stack(images(6), np.empty((6, 37, 23, 3), np.uint8))
    finally:
        copy.close()
    assert threading.current_thread().name in seen
    assert len({name for name in seen if name.startswith("host-copy")}) >= 1
    assert len(seen) >= 2


def test_one_thread_has_no_pool_and_stacks_on_the_caller() -> None:
    copy = HostCopy(1)
    assert copy._pool is None
    batch = images(3)
    np.testing.assert_array_equal(
        copy.stack(batch, np.empty((3, 37, 23, 3), np.uint8)), np.stack(batch)
    )


@pytest.mark.parametrize("threads", [1, 4])
def test_images_of_another_shape_or_number_are_refused(threads: int) -> None:
    copy = HostCopy(threads)
    try:
        # (1, 23, 3) would broadcast into a slice of the output: it must not
        with pytest.raises(ValueError, match="cannot stack"):
            copy.stack([*images(1), images(1, 1, 23)[0]], np.empty((2, 37, 23, 3), np.uint8))
        with pytest.raises(ValueError, match="cannot stack"):
            copy.stack(images(2), np.empty((3, 37, 23, 3), np.uint8))
    finally:
        copy.close()


def test_close_ends_the_pool_threads() -> None:
    copy = HostCopy(4)
    copy.stack(images(8), np.empty((8, 37, 23, 3), np.uint8))
    assert any(t.name.startswith("host-copy") for t in threading.enumerate())
    copy.close()
    with pytest.raises(RuntimeError):
        copy.stack(images(8), np.empty((8, 37, 23, 3), np.uint8))


def test_zero_threads_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        HostCopy(0)


@pytest.mark.parametrize(("cores", "threads"), [(1, 1), (2, 2), (16, MAX_COPY_THREADS)])
def test_copy_threads_follow_the_usable_cores_up_to_the_cap(
    monkeypatch: pytest.MonkeyPatch, cores: int, threads: int
) -> None:
    pin_cores(monkeypatch, cores)  # of a 64-core machine
    assert copy_threads() == threads


@pytest.mark.parametrize(
    ("cores", "sharing", "threads"), [(16, 2, MAX_COPY_THREADS), (16, 4, 4), (2, 4, 1)]
)
def test_copy_threads_of_processes_sharing_the_cores_follow_their_share(
    monkeypatch: pytest.MonkeyPatch, cores: int, sharing: int, threads: int
) -> None:
    pin_cores(monkeypatch, cores)  # several GPUs' shards on one node
    assert copy_threads(sharing) == threads
