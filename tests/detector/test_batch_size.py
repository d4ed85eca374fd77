"""`batch_size: auto`: the batch size is settled per device and runtime from one table
(`AUTO_BATCH_SIZE`), said in the start line, and a size that was asked for is kept."""

from __future__ import annotations

import pytest

from detector import host, options
from detector.errors import ModelConfigError
from detector.options import AUTO_BATCH_SIZE, DetectorOptions, auto_batch_size
from detector.request import DEFAULTS, DetectorRequest


@pytest.fixture
def onnxruntime_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "onnxruntime_available", lambda: True)


def test_auto_is_the_default_batch_size() -> None:
    assert DEFAULTS.batch_size == "auto"


@pytest.mark.parametrize(
    ("runtime", "precision"), [("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("torch", "fp32")]
)
def test_auto_on_the_cpu_takes_the_cpu_entry_for_the_runtime_that_runs_and_says_why(
    no_cuda: None, vnni: None, onnxruntime_here: None, runtime: str, precision: str
) -> None:
    request = DetectorRequest(runtime=runtime, precision=precision)  # type: ignore[arg-type]
    resolved = DetectorOptions.resolve(request)
    size, why = AUTO_BATCH_SIZE[("cpu", resolved.runtime)]
    assert resolved.batch_size == size
    assert resolved.reasons["batch_size"] == f"{size}: {why}"
    assert f"batch {size};" in resolved.describe()
    assert "batch_size: " in resolved.describe()


def test_auto_on_cuda_takes_a_larger_batch_than_on_the_cpu(cuda_present: None) -> None:
    cuda = DetectorOptions.resolve(DetectorRequest(runtime="torch"))
    cpu = DetectorOptions.resolve(DetectorRequest(device="cpu", runtime="torch"))
    assert cuda.batch_size == AUTO_BATCH_SIZE[("cuda", "torch")][0]
    assert cuda.batch_size > cpu.batch_size
    assert "on CUDA" in cuda.reasons["batch_size"]


def test_a_fallback_to_torch_settles_the_batch_size_for_torch(
    no_cuda: None, onnxruntime_here: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = {**AUTO_BATCH_SIZE, ("cpu", "torch"): (3, "torch's own")}
    monkeypatch.setattr(options, "AUTO_BATCH_SIZE", table)
    on_ort = DetectorOptions.resolve(DetectorRequest(precision="fp32"))
    assert on_ort.runtime == "onnxruntime"
    fallback = on_ort.without_auto_onnxruntime("no kernel")
    assert fallback is not None and fallback.runtime == "torch"
    assert (fallback.batch_size, fallback.reasons["batch_size"]) == (3, "3: torch's own")


def test_every_device_and_runtime_that_can_run_has_an_auto_batch_size() -> None:
    for device in ("cpu", "cuda:1"):
        for runtime in ("torch", "compile"):
            size, why = auto_batch_size(device, runtime)
            assert size >= 1 and why
    assert auto_batch_size("cpu", "onnxruntime")[0] >= 1


@pytest.mark.parametrize("size", [1, 8, 1024])
def test_a_batch_size_asked_for_is_kept_without_a_reason(no_cuda: None, size: int) -> None:
    resolved = DetectorOptions.resolve(DetectorRequest(batch_size=size))
    assert resolved.batch_size == size
    assert "batch_size" not in resolved.reasons
    assert f"batch {size};" in resolved.describe()


@pytest.mark.parametrize("size", [0, 1025, -1, "many", "8"])
def test_a_batch_size_out_of_bounds_or_not_auto_is_refused(size: object) -> None:
    with pytest.raises(ModelConfigError, match="batch_size"):
        DetectorRequest(batch_size=size)  # type: ignore[arg-type]


def test_auto_is_taken_in_any_case() -> None:
    assert DetectorRequest(batch_size="Auto").batch_size == "auto"  # type: ignore[arg-type]
