"""runtime compile: `torch.compile` gives the eager network's detections; on CUDA its graph
replays hand out fresh outputs, so a batch in flight is never overwritten."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from detector.errors import ModelConfigError
from detector.networks import CompiledNetwork, MicroBatches
from detector.request import DetectorRequest
from pipeline.bench.model_only import model_variants
from pipeline.types import Frame, LabelMap
from tests.detector.building import cpu_options, make_detector
from tests.detector.test_onnx_runtime import tiny_ssd

LABELS = LabelMap(("background", "thing"))


def test_compiled_network_gives_the_eager_detections() -> None:
    rng = np.random.default_rng(0)
    frames = [
        Frame("cam", i, 0.0, 0.0, rng.integers(0, 256, (32, 40, 3), dtype=np.uint8))
        for i in range(5)  # micro-batches of 2, 2 and 1: two compiled shapes
    ]
    eager = make_detector(tiny_ssd(0), LABELS, runtime="torch", score_threshold=0.0)
    compiled = make_detector(tiny_ssd(0), LABELS, runtime="compile", score_threshold=0.0)
    assert compiled.runtime == "compile" and isinstance(compiled.network, MicroBatches)
    assert isinstance(compiled.network.network, CompiledNetwork)
    for a, b in zip(compiled.detect(frames), eager.detect(frames), strict=True):
        assert len(a) == len(b) > 0
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_allclose(a.score, b.score, atol=1e-5)
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=1e-3)


class _GraphReplay:
    """Stands in for a compiled network replaying a CUDA graph: every call writes its
    outputs into the same two tensors."""

    def __init__(self) -> None:
        self.outputs = (torch.zeros(1, 16, 4), torch.zeros(1, 16, 2))
        self.calls = 0

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        for out in self.outputs:
            out.fill_(self.calls)
        return self.outputs


def test_cuda_graph_replays_return_outputs_the_next_replay_cannot_overwrite(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replay = _GraphReplay()
    modes: list[object] = []
    steps: list[int] = []

    def fake_compile(model: object, mode: object = None, dynamic: object = None) -> Callable:
        modes.append((mode, dynamic))
        return replay

    monkeypatch.setattr(torch, "compile", fake_compile)
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: steps.append(1))
    network = CompiledNetwork(tiny_ssd(0), torch.device("cuda"))
    assert modes == [("reduce-overhead", False)]
    images = torch.zeros(1, 3, 16, 16)
    first = network(images)
    second = network(images)
    assert len(steps) == 2  # a new step before each replay
    assert float(first[0].max()) == 1.0 and float(first[1].max()) == 1.0  # not overwritten
    assert float(second[0].max()) == 2.0


def test_cpu_compile_uses_inductor_without_cuda_graphs(monkeypatch: pytest.MonkeyPatch) -> None:
    modes: list[object] = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None, dynamic=None: modes.append(mode))
    CompiledNetwork(tiny_ssd(0), torch.device("cpu"))
    assert modes == [None]


def test_compile_is_a_torch_runtime_and_not_for_int8() -> None:
    cpu = torch.device("cpu")
    assert cpu_options(runtime="compile").runtime == "compile"
    with pytest.raises(ModelConfigError, match="int8 runs on onnxruntime"):
        DetectorRequest(device="cpu", runtime="compile", precision="int8")
    assert model_variants(cpu, ["compile", "onnxruntime"], ["fp32", "int8"]) == [
        ("compile", "fp32"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
    ]
