"""`DetectorOptions.resolve` settles every `auto` choice of a `DetectorRequest` on this
machine and says why; what was asked for is kept, with no reason to give; fallbacks say
what runs instead and why; the request's rules hold of what `auto` picked."""

from __future__ import annotations

import pytest
import torch

from detector import host
from detector.errors import ModelConfigError
from detector.options import AUTO_BATCH_SIZE, CPU_MICRO_BATCH, DetectorOptions
from detector.request import DetectorRequest
from tests.cores import pin_cores


@pytest.fixture
def onnxruntime_here(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "onnxruntime_available", lambda: True)


@pytest.fixture
def no_onnxruntime(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "onnxruntime_available", lambda: False)


def test_auto_on_a_vnni_cpu_runs_the_bundled_model_in_int8_on_onnxruntime_and_says_why(
    no_cuda: None, vnni: None, onnxruntime_here: None
) -> None:
    resolved = DetectorOptions.resolve(DetectorRequest(model="person_ssdlite"))
    assert resolved.device == torch.device("cpu")
    assert (resolved.runtime, resolved.precision, resolved.workers) == ("onnxruntime", "int8", 1)
    assert resolved.micro_batch is None
    assert dict(resolved.reasons) == {
        "device": "cpu: torch sees no CUDA device",
        "precision": "int8: person_ssdlite's int8 accuracy was measured and this CPU has "
        "8-bit dot products (VNNI)",
        "runtime": "onnxruntime: int8 runs on onnxruntime",
        "micro_batch": "the whole batch: onnxruntime runs it at once",
        "batch_size": "{}: {}".format(*AUTO_BATCH_SIZE[("cpu", "onnxruntime")]),
    }


def test_auto_on_a_cpu_says_why_a_model_stays_float32(
    no_cuda: None, vnni: None, onnxruntime_here: None
) -> None:
    resolved = DetectorOptions.resolve(DetectorRequest(model="ssd300_vgg16"))
    assert (resolved.runtime, resolved.precision) == ("onnxruntime", "fp32")
    assert resolved.reasons["precision"] == (
        "fp32: int8 accuracy was measured for person_ssdlite and for the checkpoints "
        "`python -m pipeline train` measured only"
    )
    assert resolved.reasons["runtime"].startswith("onnxruntime: about twice torch's speed")
    random = DetectorOptions.resolve(DetectorRequest(model="person_ssdlite", weights="none"))
    assert random.reasons["precision"] == (
        "fp32: person_ssdlite's int8 accuracy was measured with its default weights only"
    )


def test_auto_on_a_cpu_without_vnni_stays_float32(
    no_cuda: None, onnxruntime_here: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(host, "has_int8_dot_products", lambda cpuinfo=None: False)
    resolved = DetectorOptions.resolve(DetectorRequest(model="person_ssdlite"))
    assert resolved.precision == "fp32"
    assert "no 8-bit dot products" in resolved.reasons["precision"]


def test_auto_without_onnxruntime_runs_torch_in_micro_batches(
    no_cuda: None, vnni: None, no_onnxruntime: None
) -> None:
    resolved = DetectorOptions.resolve(DetectorRequest(model="person_ssdlite"))
    assert (resolved.runtime, resolved.precision) == ("torch", "fp32")
    assert resolved.micro_batch == CPU_MICRO_BATCH
    assert resolved.reasons["runtime"] == (
        "torch: onnxruntime is not installed (pip install onnxruntime onnx onnxscript)"
    )
    assert resolved.reasons["precision"] == (
        "fp32: int8 runs on onnxruntime, which is not installed "
        "(pip install onnxruntime onnx onnxscript)"
    )
    assert resolved.reasons["micro_batch"].startswith(f"{CPU_MICRO_BATCH}: larger CPU batches")
    with pytest.raises(ModelConfigError, match=r"workers 2 needs runtime onnxruntime on the CPU "
                       r"\(got torch on cpu\)"):  # fmt: skip
        DetectorOptions.resolve(DetectorRequest(workers=2))


def test_auto_on_cuda_is_fp16_autocast_with_torch_in_one_pass(cuda_present: None) -> None:
    resolved = DetectorOptions.resolve(DetectorRequest(model="person_ssdlite"))
    assert resolved.device == torch.device("cuda")
    assert (resolved.runtime, resolved.precision, resolved.micro_batch) == ("torch", "fp16", None)
    assert resolved.autocast_dtype == torch.float16
    assert dict(resolved.reasons) == {
        "device": "cuda: torch sees a CUDA device",
        "precision": "fp16: autocast on CUDA",
        "runtime": "torch: onnxruntime runs on the CPU only",
        "micro_batch": "the whole batch: one pass on CUDA",
        "batch_size": "{}: {}".format(*AUTO_BATCH_SIZE[("cuda", "torch")]),
    }


def test_what_is_asked_for_is_kept_without_a_reason(onnxruntime_here: None) -> None:
    request = DetectorRequest(
        device="cpu", runtime="torch", precision="fp32", micro_batch=4, batch_size=16
    )
    resolved = DetectorOptions.resolve(request)
    assert (resolved.runtime, resolved.precision, resolved.micro_batch) == ("torch", "fp32", 4)
    assert resolved.batch_size == 16
    assert resolved.request is request and dict(resolved.reasons) == {}


def test_rules_hold_of_what_auto_picked(cuda_present: None) -> None:
    assert DetectorOptions.resolve(DetectorRequest(precision="fp16")).precision == "fp16"
    with pytest.raises(ModelConfigError, match=r"precision int8 runs on the CPU only \(got "
                       "device cuda\\)"):  # fmt: skip
        DetectorOptions.resolve(DetectorRequest(precision="int8"))


def test_fp16_with_device_auto_on_a_cpu_is_refused(no_cuda: None) -> None:
    with pytest.raises(ModelConfigError, match=r"precision fp16 needs a CUDA device \(got cpu\)"):
        DetectorOptions.resolve(DetectorRequest(precision="fp16"))


def test_fallbacks_say_what_runs_instead_and_why(
    no_cuda: None, vnni: None, onnxruntime_here: None
) -> None:
    int8 = DetectorOptions.resolve(DetectorRequest(model="person_ssdlite", workers=2))
    fp32 = int8.without_auto_int8("no kernel for QLinearConv")
    assert fp32 is not None and (fp32.precision, fp32.runtime, fp32.workers) == (
        "fp32",
        "onnxruntime",
        2,
    )
    assert (
        fp32.reasons["precision"] == "fp32: int8 could not be made here (no kernel for QLinearConv)"
    )
    assert fp32.reasons["runtime"].startswith("onnxruntime: about twice")
    assert fp32.without_auto_int8("again") is None  # float32 has nothing to fall back from
    torch_run = fp32.without_auto_onnxruntime("cannot export")
    assert torch_run is not None
    assert (torch_run.runtime, torch_run.workers, torch_run.micro_batch) == ("torch", 1, 2)
    assert torch_run.reasons["runtime"] == "torch: onnxruntime failed here (cannot export)"
    assert torch_run.reasons["workers"].startswith("1: onnxruntime failed")
    assert int8.without_auto_onnxruntime("cannot export") is None  # int8 runs on nothing else


def test_choices_asked_for_never_fall_back(onnxruntime_here: None, vnni: None) -> None:
    asked = DetectorRequest(model="person_ssdlite", device="cpu", precision="int8")
    assert DetectorOptions.resolve(asked).without_auto_int8("broken") is None
    onnx = DetectorRequest(device="cpu", runtime="onnxruntime")
    assert DetectorOptions.resolve(onnx).without_auto_onnxruntime("broken") is None


@pytest.mark.parametrize(
    ("asked", "message"),
    [
        ({"workers": 3}, r"workers must be in \[1, 2\], got 3"),
        ({"max_detections": 0}, r"max_detections must be in \[1, 10000\], got 0"),
        ({"nms_threshold": 0.0}, r"nms_threshold must be in \(0, 1\], got 0.0"),
        ({"pre_nms_top_k": 0}, "pre_nms_top_k must be >= 1, got 0"),
        ({"calibration": "clip.mp4"}, "calibration is only used with precision: int8"),
        ({"device": "cuda", "workers": 2}, "workers 2 needs runtime onnxruntime"),
        ({"device": "cuda", "runtime": "onnxruntime"}, "runtime onnxruntime runs on the CPU"),
    ],
)
def test_requests_that_cannot_run_anywhere_are_refused_naming_the_field(
    asked: dict[str, object], message: str
) -> None:
    with pytest.raises(ModelConfigError, match=message):
        DetectorRequest(**asked)  # type: ignore[arg-type]


def test_device_auto_without_a_gpu_device_file_is_the_cpu_without_asking_torch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(host, "gpu_device_nodes", lambda: False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # never asked
    resolved = DetectorOptions.resolve(DetectorRequest(device="auto"))
    assert resolved.device_name == "cpu" and resolved.device == torch.device("cpu")
    assert resolved.reasons["device"] == "cpu: torch sees no CUDA device"


def test_device_auto_with_a_gpu_device_file_asks_torch(cuda_present: None) -> None:
    assert DetectorOptions.resolve(DetectorRequest(device="auto")).device_name == "cuda"


def test_the_start_line_says_the_share_of_the_cores_a_shard_s_threads_take(
    monkeypatch: pytest.MonkeyPatch, no_cuda: None, onnxruntime_here: None
) -> None:
    pin_cores(monkeypatch, 8)
    request = DetectorRequest(model="person_ssdlite")
    shared = DetectorOptions.resolve(request, sharing=2).describe()
    assert ", CPU threads on 4 of 8 cores (shared by 2 shards on this machine)" in shared
    assert "shared by" not in DetectorOptions.resolve(request).describe()  # a run alone
