"""Model-only measurements: which (runtime, precision) pairs are timed, and the ones refused
before anything is measured."""

from __future__ import annotations

import json

import pytest
import torch

from pipeline import cli
from pipeline.bench.model_only import model_variants


def test_onnxruntime_on_cuda_is_refused_before_measuring(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(["bench", "--skip-end-to-end", "--runtimes", "onnxruntime", "--device", "cuda"])
    assert code == cli.EXIT_USAGE
    assert "CUDA" in capsys.readouterr().err


def test_half_precision_on_the_cpu_is_refused_before_measuring(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = cli.main(["bench", "--skip-end-to-end", "--precisions", "fp16", "--device", "cpu"])
    assert code == cli.EXIT_USAGE
    assert "precision fp16 needs a CUDA device" in capsys.readouterr().err


def test_int8_is_measured_on_onnxruntime_only(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(
        ["bench", "--json", "--skip-end-to-end", "--models", "person_ssdlite", "--precisions",
         "fp32", "int8", "--batch-sizes", "2", "--repeat", "1", "--min-time", "0.01",
         "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    rows = json.loads(capsys.readouterr().out)["model_only"]
    assert [(r["runtime"], r["precision"]) for r in rows] == [
        ("torch", "fp32"),
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
    ]
    assert all(r["images_per_s"] > 0 for r in rows)


def test_model_only_measures_int8_by_default_where_precision_auto_runs_it(vnni: None) -> None:
    cpu = torch.device("cpu")
    bundled = model_variants(cpu, ["torch", "onnxruntime"], None, "person_ssdlite", "default")
    assert bundled == [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    random = model_variants(cpu, ["torch", "onnxruntime"], None, "person_ssdlite", "none")
    assert random == [("torch", "fp32"), ("onnxruntime", "fp32")]
    coco = model_variants(cpu, ["onnxruntime"], None, "ssd300_vgg16", "none")
    assert coco == [("onnxruntime", "fp32")]
    asked = model_variants(cpu, ["onnxruntime"], ["fp32"], "person_ssdlite", "default")
    assert asked == [("onnxruntime", "fp32")]  # what is asked for, only
