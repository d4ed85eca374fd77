"""ONNX Runtime runs the same network as torch, exported once and cached; when it cannot,
the choice of runtime says so or falls back."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import cast

import numpy as np
import pytest
import torch
from torch import nn

from detector import host, onnx_runtime
from detector.box_coder import BoxCoder
from detector.errors import ModelConfigError
from detector.onnx_runtime import OnnxRuntimeForward, model_key
from detector.options import DetectorOptions
from detector.request import DetectorRequest, Runtime
from detector.ssd import SSD
from pipeline.types import Frame, LabelMap
from tests.cores import pin_cores
from tests.detector.building import cpu_options, make_detector
from tests.detector.test_engine_paths import photo_frames

pytestmark = pytest.mark.skipif(
    not host.onnxruntime_available(), reason="onnxruntime, onnx or onnxscript missing"
)

CPU, CUDA = torch.device("cpu"), torch.device("cuda")
PERSON = LabelMap(("background", "person"))


class _TinyHead(nn.Module):
    """[B, 3, 16, 16] -> 16 boxes and 2 classes per image, from a 4x4 grid of cells."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cells = nn.functional.avg_pool2d(torch.relu(self.conv(x)), 4)  # [B, 6, 4, 4]
        out = cells.flatten(2).transpose(1, 2)  # [B, 16, 6]
        return out[..., :4], out[..., 4:]


def tiny_ssd(seed: int) -> SSD:
    torch.manual_seed(seed)
    centres = (torch.arange(4) + 0.5) / 4
    cy, cx = torch.meshgrid(centres, centres, indexing="ij")
    anchors = torch.stack([cx - 0.2, cy - 0.2, cx + 0.2, cy + 0.2], -1).reshape(-1, 4)
    return SSD(
        nn.Identity(), _TinyHead(), anchors, BoxCoder(), (16, 16), (127.0,) * 3, (64.0,) * 3
    ).eval()


def test_bundled_model_gives_the_same_detections_with_either_runtime(person: SSD) -> None:
    frames = photo_frames(4)
    with_torch = make_detector(person, PERSON, score_threshold=0.2, runtime="torch")
    with_onnx = make_detector(person, PERSON, score_threshold=0.2, runtime="onnxruntime")
    assert (with_torch.runtime, with_onnx.runtime) == ("torch", "onnxruntime")
    images = with_torch._model_input(frames)
    with torch.inference_mode():
        raw_torch = with_torch.forward(images)
        raw_onnx = with_onnx.forward(images)
    for a, b in zip(raw_onnx, raw_torch, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    found = 0
    for ours, theirs in zip(with_onnx.detect(frames), with_torch.detect(frames), strict=True):
        assert len(ours) == len(theirs)
        np.testing.assert_allclose(ours.score, theirs.score, atol=1e-4)
        np.testing.assert_allclose(ours.xyxy, theirs.xyxy, atol=0.05)
        found += len(ours)
    assert found > 5  # people in the photo


def test_any_batch_size_runs_through_one_exported_network() -> None:
    model = tiny_ssd(0)
    forward = OnnxRuntimeForward(model, "tiny")
    for batch in (1, 3, 9):
        images = torch.randint(0, 256, (batch, 3, 16, 16), dtype=torch.uint8)
        with torch.inference_mode():
            expected = model(images)
        for a, b in zip(forward(images), expected, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_float_images_are_refused_rather_than_rounded() -> None:
    forward = OnnxRuntimeForward(tiny_ssd(0), "tiny")
    with pytest.raises(ValueError, match="uint8"):
        forward(torch.zeros((1, 3, 16, 16)))


def test_network_is_exported_once_per_set_of_weights(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path))
    exports: list[Path] = []
    real_export = onnx_runtime.export_onnx

    def counting_export(model: SSD, path: Path) -> None:
        exports.append(path)
        real_export(model, path)

    monkeypatch.setattr(onnx_runtime, "export_onnx", counting_export)
    first = OnnxRuntimeForward(tiny_ssd(0), "tiny")
    again = OnnxRuntimeForward(tiny_ssd(0), "tiny")
    other = OnnxRuntimeForward(tiny_ssd(1), "tiny")
    assert len(exports) == 2
    assert first.path == again.path != other.path
    assert first.path.parent == tmp_path / "onnx"
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == sorted(
        {first.path.name, other.path.name}
    )


def test_a_first_export_is_announced_before_it_starts_and_never_as_a_warning(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path))
    said: list[str] = []
    real_export = onnx_runtime.export_onnx

    def export(model: SSD, path: Path) -> None:
        said.append("(exporting)")
        real_export(model, path)

    monkeypatch.setattr(onnx_runtime, "export_onnx", export)
    with caplog.at_level(logging.DEBUG, logger="detector"):
        OnnxRuntimeForward(tiny_ssd(0), "tiny", announce=said.append)
        OnnxRuntimeForward(tiny_ssd(0), "tiny", announce=said.append)  # cached: nothing to say
    (announced, exporting) = said
    assert announced.startswith("preparing the detector: exporting tiny to ONNX")
    assert str(tmp_path) in announced and exporting == "(exporting)"
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [r for r in caplog.records if "exporting tiny" in r.getMessage()] == []  # said once

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="detector"):
        OnnxRuntimeForward(tiny_ssd(1), "tiny")  # nobody to tell at once: the log is told
    (record,) = [r for r in caplog.records if "exporting tiny" in r.getMessage()]
    assert record.levelno == logging.INFO


def test_key_changes_with_any_weight_and_not_with_memory_format() -> None:
    model = tiny_ssd(0)
    key = model_key(model)
    assert model_key(model.to(memory_format=torch.channels_last)) == key
    head = model.head
    assert isinstance(head, _TinyHead)
    with torch.no_grad():
        head.conv.weight[0, 0, 0, 0] += 1e-6
    assert model_key(model) != key


def test_damaged_cache_file_is_exported_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path))
    model = tiny_ssd(2)
    path = tmp_path / "onnx" / f"{model_key(model)}.onnx"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"half a file")
    forward = OnnxRuntimeForward(model, "tiny")
    assert forward.path == path and path.stat().st_size > 1000
    images = torch.zeros((1, 3, 16, 16), dtype=torch.uint8)
    with torch.inference_mode():
        torch.testing.assert_close(forward(images)[1], model(images)[1], rtol=1e-5, atol=1e-5)


def test_unwritable_cache_folder_still_runs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(blocker))
    with caplog.at_level(logging.WARNING):
        forward = OnnxRuntimeForward(tiny_ssd(3), "tiny")
    assert forward.path.is_file() and blocker not in forward.path.parents
    # the sinks' words for a folder that cannot be made, naming the cache
    assert (
        f"ONNX cache: cannot make the folder {blocker / 'onnx'}: {blocker} is not a folder; "
        f"exporting to {forward.path.parent} for this run only"
    ) in caplog.text


def _failing_export(model: SSD, path: Path) -> None:
    raise RuntimeError("unsupported operator aten::frobnicate\nmore detail")


@pytest.mark.parametrize("workers", [1, 2])
def test_export_failure_falls_back_to_torch_under_auto_one_batch_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    workers: int,
) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(onnx_runtime, "export_onnx", _failing_export)
    with caplog.at_level(logging.INFO):
        detector = make_detector(
            tiny_ssd(4), LabelMap(("bg", "thing")), runtime="auto", workers=workers
        )
    assert (detector.runtime, detector.workers, detector.pipelined) == ("torch", 1, False)
    assert "aten::frobnicate" in detector.options.reasons["runtime"]
    assert "aten::frobnicate" in caplog.text and "with torch instead" in caplog.text
    assert {r.levelname for r in caplog.records if "instead" in r.getMessage()} == {"INFO"}
    # Only a detector asked for two workers is told it now has one.
    assert ("one batch at a time" in caplog.text) == (workers == 2)
    frame = Frame("cam", 0, 0.0, 0.0, np.zeros((20, 20, 3), np.uint8))
    assert len(detector.detect([frame])) == 1
    assert not list((tmp_path / "onnx").glob("*.partial"))


def test_export_failure_with_onnxruntime_asked_for_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(onnx_runtime, "export_onnx", _failing_export)
    with pytest.raises(
        ModelConfigError, match=r"cannot export .*frobnicate; set `detector.runtime: torch`"
    ):
        make_detector(tiny_ssd(4), LabelMap(("bg", "thing")), runtime="onnxruntime")


def test_ctrl_c_during_an_export_leaves_no_partial_file_in_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def interrupted(model: SSD, path: Path) -> None:
        path.write_bytes(b"half a network")
        raise KeyboardInterrupt

    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(onnx_runtime, "export_onnx", interrupted)
    with pytest.raises(KeyboardInterrupt):
        make_detector(tiny_ssd(4), LabelMap(("bg", "thing")), runtime="onnxruntime")
    assert list((tmp_path / "onnx").iterdir()) == []  # it was kept, and never pruned


def test_runtime_auto_is_onnxruntime_on_the_cpu_and_torch_on_cuda(cuda_present: None) -> None:
    assert cpu_options(runtime="auto").runtime == "onnxruntime"
    assert DetectorOptions.resolve(DetectorRequest(device="cuda")).runtime == "torch"
    assert cpu_options(runtime="auto", exact_resize=True).runtime == "torch"
    assert cpu_options(runtime="Torch").runtime == "torch"


def test_runtime_auto_without_the_packages_is_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(host, "onnxruntime_available", lambda: False)
    assert cpu_options(runtime="auto").runtime == "torch"
    with pytest.raises(ModelConfigError, match="pip install onnxruntime onnx onnxscript"):
        OnnxRuntimeForward(tiny_ssd(0), "tiny")


@pytest.mark.parametrize(
    ("runtime", "device", "exact", "message"),
    [
        ("onnxruntime", CUDA, False, "runs on the CPU only"),
        ("onnxruntime", CPU, True, "exact_resize .* needs runtime torch"),
        ("tensorrt", CPU, False, "invalid runtime 'tensorrt'.*auto, torch, compile, onnxruntime"),
    ],
)
def test_impossible_runtime_choices_are_config_errors(
    runtime: str, device: torch.device, exact: bool, message: str
) -> None:
    asked = cast(Runtime, runtime)  # "tensorrt" too: the request checks what it is given
    with pytest.raises(ModelConfigError, match=message):
        DetectorOptions.resolve(
            DetectorRequest(device=str(device), runtime=asked, exact_resize=exact)
        )


@pytest.mark.parametrize(("runtime", "expected"), [("torch", "torch"), ("auto", "onnxruntime")])
def test_config_runtime_reaches_the_detector(runtime: Runtime, expected: str) -> None:
    from pipeline.build import build_detector
    from pipeline.config import DetectorConfig

    config = DetectorConfig(model="person_ssdlite", device="cpu", runtime=runtime)
    assert build_detector(config).runtime == expected


def test_cache_keeps_only_the_most_recently_used_networks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(onnx_runtime, "KEEP_FILES", 3)
    folder = tmp_path / "onnx"
    folder.mkdir()
    used = OnnxRuntimeForward(tiny_ssd(5), "tiny").path  # exported first, used again below
    for age, name in enumerate(["a", "b", "c", "d"], start=1):
        stale = folder / f"{name}.onnx"
        stale.write_bytes(b"old")
        os.utime(stale, (1e9 - age, 1e9 - age))
    os.utime(used, (1e9 - 10, 1e9 - 10))  # the oldest by mtime ...
    assert OnnxRuntimeForward(tiny_ssd(5), "tiny").path == used  # ... until used again
    fresh = OnnxRuntimeForward(tiny_ssd(6), "tiny").path
    assert sorted(p.name for p in folder.glob("*.onnx")) == sorted(
        [used.name, fresh.name, "a.onnx"]
    )


def _temp_files_of_importing(tmp_path: Path, code: str, **env: str) -> list[str]:
    """The names `python -c code` leaves in a temp folder of its own (TMPDIR), with `env`
    added to this environment less any ORT_DISABLE_TELEMETRY of its own."""
    temp = tmp_path / f"temp{len(list(tmp_path.iterdir()))}"
    temp.mkdir()
    base = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "TMPDIR": str(temp), **env},
        cwd=Path(__file__).resolve().parents[2],
        check=True,
        timeout=120,
    )
    return sorted(p.name for p in temp.iterdir())


def test_importing_onnxruntime_through_the_detector_leaves_no_telemetry_file(
    tmp_path: Path,
) -> None:
    on = _temp_files_of_importing(
        tmp_path, "import detector, onnxruntime", ORT_DISABLE_TELEMETRY="0"
    )
    if ".ses" not in on:
        pytest.skip("this onnxruntime build writes no telemetry session file")
    assert _temp_files_of_importing(tmp_path, "import detector, onnxruntime") == []


def test_onnxruntime_runs_on_the_cores_this_process_may_use_not_the_machine_s(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path))
    pin_cores(monkeypatch, 2)  # of a 64-core machine, as in a container
    forward = OnnxRuntimeForward(tiny_ssd(0), "tiny")
    assert forward.threads == 2
    assert forward.session.get_session_options().intra_op_num_threads == 2


@pytest.mark.parametrize("saturate", [True, False])
def test_sessions_take_the_exact_int8_kernel_where_the_cpu_s_own_would_saturate_whatever_auto_thinks(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, vnni: None, saturate: bool
) -> None:
    # `vnni` makes precision auto choose int8; the kernel must still be the one that sums
    # exactly on the CPU running it, or a measurement and a later run on one machine differ.
    monkeypatch.setenv(onnx_runtime.CACHE_ENV, str(tmp_path))
    monkeypatch.setattr(host, "int8_sums_saturate", lambda: saturate)
    options = OnnxRuntimeForward(tiny_ssd(0), "tiny").session.get_session_options()
    try:
        exact = options.get_session_config_entry("session.x64quantprecision") == "1"
    except RuntimeError:  # onnxruntime's answer for an entry never set
        exact = False
    assert exact is saturate


@pytest.mark.parametrize(
    ("workers", "sharing", "threads"), [(1, 1, 8), (1, 2, 4), (2, 2, 2), (1, 3, 2), (2, 16, 1)]
)
def test_each_worker_of_each_process_sharing_the_cores_gets_its_share_of_threads(
    monkeypatch: pytest.MonkeyPatch, workers: int, sharing: int, threads: int
) -> None:
    pin_cores(monkeypatch, 8)  # `sharing` shards of a cluster on one machine, given 8 cores
    assert onnx_runtime.threads_per_worker(workers, sharing) == threads
