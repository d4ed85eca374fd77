"""`python -m pipeline bench` on tiny settings: report shape and plausible figures only.

No timing is asserted: the machine running the tests decides the numbers.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import torch
from torch import nn

from detector.box_coder import BoxCoder
from detector.postprocess import postprocess
from detector.ssd import SSD
from pipeline import cli
from pipeline.bench import naive_postprocess
from tests.conftest import VideoFactory


def test_bench_json_reports_every_measurement_with_positive_figures(
    vnni: None, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=12, size=(160, 120))
    default_threads = torch.get_num_threads()
    code = cli.main(
        ["bench", "--json", "--clip", str(clip), "--copies", "2", "--models", "person_ssdlite",
         "--batch-sizes", "1", "2", "--repeat", "1", "--min-time", "0.01", "--batch-size", "4",
         "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    assert "CPU" in report["device"] and report["threads"] >= 1
    assert "--clip" in report["command"] and report["date"]

    model_only = report["model_only"]
    assert [(r["model"], r["runtime"], r["precision"], r["batch_size"]) for r in model_only] == [
        ("person_ssdlite", "torch", "fp32", 1),
        ("person_ssdlite", "torch", "fp32", 2),
        ("person_ssdlite", "onnxruntime", "fp32", 1),
        ("person_ssdlite", "onnxruntime", "fp32", 2),
        ("person_ssdlite", "onnxruntime", "int8", 1),  # what precision auto runs it in
        ("person_ssdlite", "onnxruntime", "int8", 2),
    ]
    assert all(r["images_per_s"] > 0 and len(r["runs"]) == 1 for r in model_only)

    e2e = report["end_to_end"]
    assert e2e["copies"] == 2 and e2e["frames"] == 24  # every frame of both copies
    assert e2e["frame_size"] == "160x120"
    assert e2e["runtime"] == "onnxruntime"  # runtime auto on the CPU
    assert e2e["precision"] == "int8"  # precision auto, for the bundled model on the CPU
    assert e2e["frames_per_s"] > 0 and e2e["seconds"] > 0
    stages = e2e["stages_ms_per_frame"]
    for stage in ("detect_prepare", "detect_forward", "detect_postprocess", "sink_video",
                  "sink_zmq", "sink_sql", "decode (separate pass)"):  # fmt: skip
        assert stages[stage] > 0, stage
    assert e2e["video"] == "libx264 ultrafast crf 23"  # the video sink's defaults
    assert e2e["workers"] == 1  # the detector's default
    assert e2e["video_kb_per_frame"] > 0

    naive = report["naive"]
    assert naive["frames"] == 12 and naive["frames_per_s"] > 0
    assert naive["video_kb_per_frame"] > 0
    assert naive["threads"] == default_threads  # torch's own choice, untuned
    assert report["speedup_vs_naive"] == pytest.approx(e2e["frames_per_s"] / naive["frames_per_s"])
    assert report["speedup_runs"] == [pytest.approx(e2e["runs"][0] / naive["runs"][0])]


def test_bench_without_a_clip_says_which_file_is_missing(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.mp4"
    code = cli.main(["bench", "--skip-model-only", "--clip", str(missing), "--device", "cpu"])
    assert code == cli.EXIT_USAGE
    assert f"clip not found: {missing}" in capsys.readouterr().err


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


def test_scale_reencodes_the_clip_for_the_end_to_end_and_naive_runs(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=6, size=(160, 120))
    code = cli.main(
        ["bench", "--json", "--clip", str(clip), "--scale", "96x64", "--skip-model-only",
         "--repeat", "1", "--batch-size", "2", "--device", "cpu", "--runtime", "torch"]
    )  # fmt: skip
    assert code == 0
    report = json.loads(capsys.readouterr().out)
    e2e = report["end_to_end"]
    assert e2e["frame_size"] == "96x64" and e2e["frames"] == 6
    assert report["naive"]["frames"] == 6
    assert "--scale 96x64" in report["command"]


def test_naive_runs_alternate_with_the_end_to_end_runs(
    synthetic_video: VideoFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline import bench, runner

    order: list[str] = []
    real_run, real_naive = runner.Pipeline.run, bench.run_naive

    def pipeline_run(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        order.append("end to end")
        return real_run(self, *args, **kwargs)

    def naive_run(*args, **kwargs):  # type: ignore[no-untyped-def]
        order.append("naive")
        return real_naive(*args, **kwargs)

    monkeypatch.setattr(runner.Pipeline, "run", pipeline_run)
    monkeypatch.setattr(bench, "run_naive", naive_run)
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    code = cli.main(
        ["bench", "--json", "--clip", str(clip), "--skip-model-only", "--repeat", "3",
         "--batch-size", "2", "--device", "cpu", "--runtime", "torch"]
    )  # fmt: skip
    assert code == 0
    assert order == ["end to end", "naive"] * 3
    report = json.loads(capsys.readouterr().out)
    assert len(report["naive"]["runs"]) == len(report["speedup_runs"]) == 3


def test_naive_runs_with_the_libraries_default_threads_whatever_the_pipeline_set(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    import cv2

    from pipeline import bench

    seen: list[tuple[int, int]] = []

    def naive_run(*args, **kwargs):  # type: ignore[no-untyped-def]
        seen.append((torch.get_num_threads(), cv2.getNumThreads()))
        return 4, 1.0

    monkeypatch.setattr(bench, "run_naive", naive_run)
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    baseline = bench.NaiveBaseline(str(clip), "person_ssdlite", "none", torch.device("cpu"), 2)
    before = torch.get_num_threads(), cv2.getNumThreads()
    cv2.setNumThreads(-1)
    opencv_default = cv2.getNumThreads()
    torch.set_num_threads(1)
    cv2.setNumThreads(1)  # what a pipeline run sets on 2 cores
    try:
        assert baseline.run_once() == 4.0
        assert seen == [(2, opencv_default)]
        assert (torch.get_num_threads(), cv2.getNumThreads()) == (1, 1)  # restored
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def end_to_end_report(
    capsys: pytest.CaptureFixture[str], clip: Path, *options: str
) -> dict[str, Any]:
    """The JSON report of one end-to-end run of `clip` on the CPU (no model-only measurement,
    no naive baseline) with `options` added."""
    code = cli.main(
        ["bench", "--json", "--clip", str(clip), "--skip-model-only", "--skip-naive",
         "--repeat", "1", "--device", "cpu", *options]
    )  # fmt: skip
    assert code == 0
    report: dict[str, Any] = json.loads(capsys.readouterr().out)
    return report


def test_video_preset_and_crf_reach_the_video_sink(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=8, size=(160, 120))
    options = ("--batch-size", "4", "--runtime", "torch", "--video-preset", "ultrafast")
    reports = [end_to_end_report(capsys, clip, *options, "--video-crf", crf) for crf in ("10", "45")]
    fine, coarse = (r["end_to_end"] for r in reports)
    assert fine["video"] == "libx264 ultrafast crf 10"
    assert coarse["video"] == "libx264 ultrafast crf 45"
    assert coarse["video_kb_per_frame"] < fine["video_kb_per_frame"]
    assert "--video-preset ultrafast --video-crf 45" in reports[1]["command"]


def test_no_video_runs_end_to_end_without_the_video_sink(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=6, size=(96, 64))
    report = end_to_end_report(
        capsys, clip, "--batch-size", "2", "--runtime", "torch", "--no-video"
    )
    e2e = report["end_to_end"]
    assert e2e["frames"] == 6 and e2e["video"] == "none" and e2e["video_kb_per_frame"] == 0
    assert "sink_video" not in e2e["stages_ms_per_frame"]
    assert e2e["stages_ms_per_frame"]["sink_sql"] > 0
    assert "--no-video" in report["command"]


def test_workers_reach_the_detector(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    report = end_to_end_report(capsys, clip, "--batch-size", "2", "--workers", "2")
    assert report["end_to_end"]["workers"] == 2 and "--workers 2" in report["command"]


@pytest.mark.parametrize("bad", ["1920", "95x64", "wide"])
def test_scale_must_be_even_width_by_height(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["bench", "--scale", bad])
    assert "--scale" in capsys.readouterr().err


def test_on_cuda_stages_are_timed_in_a_run_of_their_own(
    synthetic_video: VideoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pipeline import build
    from pipeline.bench import DetectorSetup, bench_end_to_end

    built: list[object] = []
    real_build = build.build_detector

    def cpu_detector(config):  # type: ignore[no-untyped-def]
        detector = real_build(config.model_copy(update={"device": "cpu"}))
        built.append(detector)
        return detector

    monkeypatch.setattr(build, "build_detector", cpu_detector)
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    setup = DetectorSetup("person_ssdlite", "default", "cuda", runtime="torch", batch_size=2)
    result = bench_end_to_end(str(clip), 1, setup, repeat=2)
    assert len(result.runs) == 2 and len(built) == 3  # two counted runs, one timed
    assert [d.stage_times is not None for d in built] == [False, False, True]  # type: ignore[attr-defined]
    assert result.stages_ms_per_frame["detect_forward"] > 0


@pytest.mark.skipif(
    "h264_nvenc" not in av.codecs_available or shutil.which("nvidia-smi") is not None,
    reason="needs FFmpeg with NVENC on a machine without an NVIDIA GPU",
)
def test_a_sink_failing_in_the_end_to_end_run_is_reported_not_raised(
    synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    code = cli.main(
        ["bench", "--clip", str(clip), "--skip-model-only", "--skip-naive", "--repeat", "1",
         "--device", "cpu", "--runtime", "torch", "--video-codec", "h264_nvenc"]
    )  # fmt: skip
    assert code == cli.EXIT_FAILED
    err = capsys.readouterr().err
    assert "error: bench run failed: video sink failed" in err
    assert "NVENC needs an NVIDIA GPU" in err and "Traceback" not in err


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


@pytest.mark.parametrize("score_fn", ["softmax", "sigmoid"])
def test_naive_postprocess_finds_what_the_batched_postprocess_finds(score_fn: str) -> None:
    g = torch.Generator().manual_seed(0)
    corners = torch.rand(300, 2, generator=g) * 0.8
    anchors = torch.cat((corners, corners + 0.05 + torch.rand(300, 2, generator=g) * 0.15), 1)
    model = SSD(nn.Identity(), nn.Identity(), anchors, BoxCoder(), (100, 100), (0.0,) * 3,
                (1.0,) * 3, score_fn=score_fn)  # fmt: skip
    regression = torch.randn(2, 300, 4, generator=g) * 0.3
    logits = torch.randn(2, 300, 4, generator=g) * 3
    batched = postprocess(
        regression, logits, anchors=anchors, box_coder=model.box_coder, score_fn=score_fn,
        background_class=0, score_threshold=0.4, nms_threshold=0.5, max_detections=30,
        pre_nms_top_k=10**6,
    ).to_detections()  # fmt: skip
    for image, expected in enumerate(batched):
        boxes, scores, labels = naive_postprocess(
            regression[image], logits[image], model, 0.4, 0.5, 30, topk_candidates=10**6
        )
        assert 0 < len(scores) == len(expected)
        np.testing.assert_array_equal(labels.numpy(), expected.label)
        np.testing.assert_allclose(scores.numpy(), expected.score, rtol=1e-6)
        np.testing.assert_allclose(boxes.numpy(), expected.xyxy, atol=1e-6)


def test_model_only_measures_int8_by_default_where_precision_auto_runs_it(vnni: None) -> None:
    from pipeline.bench import model_variants

    cpu = torch.device("cpu")
    bundled = model_variants(cpu, ["torch", "onnxruntime"], None, "person_ssdlite", "default")
    assert bundled == [("torch", "fp32"), ("onnxruntime", "fp32"), ("onnxruntime", "int8")]
    random = model_variants(cpu, ["torch", "onnxruntime"], None, "person_ssdlite", "none")
    assert random == [("torch", "fp32"), ("onnxruntime", "fp32")]
    coco = model_variants(cpu, ["onnxruntime"], None, "ssd300_vgg16", "none")
    assert coco == [("onnxruntime", "fp32")]
    asked = model_variants(cpu, ["onnxruntime"], ["fp32"], "person_ssdlite", "default")
    assert asked == [("onnxruntime", "fp32")]  # what is asked for, only
