"""Two batches detected at once on the CPU (`Detector.workers`): the same detections as one
at a time, in submission order, with the cores shared out and errors passed on."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest
import torch

from detector import host
from detector.engine import Detector
from detector.errors import ModelConfigError
from detector.ssd import SSD
from detector.timing import StageTimes
from pipeline.config import ConfigError, parse_config
from pipeline.types import Frame, LabelMap
from tests.cores import pin_cores
from tests.detector.building import make_detector
from tests.detector.test_engine_paths import assert_same_detections, two_batches

pytestmark = pytest.mark.skipif(
    not host.onnxruntime_available(), reason="onnxruntime, onnx or onnxscript missing"
)

PERSON = LabelMap(("background", "person"))


def detector(person: SSD, workers: int) -> Detector:
    return make_detector(
        person, PERSON, score_threshold=0.05, runtime="onnxruntime", workers=workers
    )


def meeting_forward(det: Detector, parties: int, timeout_s: float) -> threading.Barrier:
    """Makes every forward pass of `det` wait until `parties` of them are running at once."""
    barrier = threading.Barrier(parties, timeout=timeout_s)
    real = det.network

    def forward(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        barrier.wait()
        return real(images)

    det.network = forward
    return barrier


def test_two_workers_give_the_detections_of_one_in_submission_order(person: SSD) -> None:
    first, second = two_batches()
    one = detector(person, 1)
    expected = [one.detect(first), one.detect(second)]
    two = detector(person, 2)
    assert two.pipelined and two.workers == 2
    pending = [two.submit(first), two.submit(second)]
    assert_same_detections(pending[0].result(), expected[0])
    assert_same_detections(pending[1].result(), expected[1])
    assert_same_detections(two.detect(second), expected[1])
    assert two.submit([]).result() == []


def test_two_workers_run_two_batches_at_the_same_time(person: SSD) -> None:
    first, second = two_batches()
    two = detector(person, 2)
    meeting_forward(two, parties=2, timeout_s=30)
    # Each forward pass waits for the other: they only finish if both run at once.
    pending = [two.submit(first), two.submit(second)]
    assert [len(p.result()) for p in pending] == [len(first), len(second)]


def test_one_worker_detects_one_batch_at_a_time(person: SSD) -> None:
    one = detector(person, 1)
    assert not one.pipelined
    meeting_forward(one, parties=2, timeout_s=0.5)
    with pytest.raises(threading.BrokenBarrierError):
        one.submit(two_batches()[0])  # alone at the barrier: nothing else is running


def test_an_error_in_a_worker_surfaces_from_result(person: SSD) -> None:
    two = detector(person, 2)

    def broken(images: torch.Tensor) -> Any:
        raise RuntimeError("network broke")

    two.network = broken
    pending = two.submit(two_batches()[0])  # returns: the worker fails later
    with pytest.raises(RuntimeError, match="network broke"):
        pending.result()


def test_stage_times_add_up_over_both_workers(person: SSD) -> None:
    two = detector(person, 2)
    two.stage_times = StageTimes()
    first, second = two_batches()
    for pending in [two.submit(first), two.submit(second), two.submit(first)]:
        pending.result()
    times = two.stage_times
    assert (times.batches, times.images) == (3, 2 * len(first) + len(second))
    assert times.prepare_s > 0 and times.forward_s > 0 and times.postprocess_s > 0


@pytest.mark.parametrize(
    ("cores", "workers", "threads"), [(1, 2, 1), (2, 2, 1), (8, 2, 4), (8, 1, 8)]
)
def test_workers_share_the_cores_between_their_onnxruntime_runs(
    person: SSD, monkeypatch: pytest.MonkeyPatch, cores: int, workers: int, threads: int
) -> None:
    pin_cores(monkeypatch, cores)  # of a 64-core machine, as in a container
    det = detector(person, workers)
    assert det.workers == workers and det.pipelined == (workers > 1)
    assert det.network.threads == threads  # type: ignore[attr-defined]


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_one_batch_at_a_time_by_default(person: SSD, runtime: str) -> None:
    det = make_detector(person, PERSON, runtime=runtime)
    assert det.workers == 1 and not det.pipelined


@pytest.mark.parametrize("runtime", ["torch", "compile"])
def test_two_workers_without_onnxruntime_are_a_config_error(person: SSD, runtime: str) -> None:
    with pytest.raises(ModelConfigError, match="workers 2 needs runtime onnxruntime"):
        make_detector(person, PERSON, runtime=runtime, workers=2)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("  workers: 2\n  runtime: torch\n", "workers 2 needs runtime onnxruntime"),
        ("  workers: 2\n  device: cuda\n", "workers 2 needs runtime onnxruntime"),
        ("  workers: 3\n", "less than or equal to 2"),
        ("  workers: 0\n", "greater than or equal to 1"),
    ],
)
def test_bad_workers_in_the_config_name_the_detector_section(lines: str, message: str) -> None:
    text = "cameras:\n  - id: a\n    source: a.mp4\ndetector:\n" + lines
    with pytest.raises(ConfigError) as error:
        parse_config(text, source="cams.yaml")
    assert message in str(error.value) and "detector" in str(error.value)


def test_closing_a_detector_ends_its_worker_threads(person: SSD) -> None:
    """A run that built its detector closes it at its end: no worker thread outlives it."""
    two = detector(person, 2)
    frame = Frame("cam", 0, 0.0, 0.0, np.zeros((48, 64, 3), np.uint8))
    assert len(two.submit([frame]).result()) == 1
    workers = [t for t in threading.enumerate() if t.name.startswith("detect")]
    assert workers
    two.close()
    assert not any(t.is_alive() for t in workers)
    with pytest.raises(RuntimeError):
        two.submit([frame])
