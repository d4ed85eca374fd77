"""`python -m pipeline bench` on tiny settings: report shape and plausible figures, the order
of the runs, the options' checks.

No timing is asserted: the machine running the tests decides the numbers.
"""

from __future__ import annotations

import json

import pytest
import torch

from pipeline import cli
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


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (["--workers", "2", "--runtime", "torch"], "workers 2"),
        (["--precision", "int8", "--runtime", "torch"], "int8 runs on onnxruntime"),
        (["--model", "nope"], "unknown detector model 'nope'"),
    ],
)
def test_bench_options_that_make_no_valid_pipeline_are_refused_in_one_line(
    synthetic_video: VideoFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    options: list[str],
    named: str,
) -> None:
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    monkeypatch.setattr("pipeline.bench.cli._model_only", _measured)
    code = cli.main(["bench", "--clip", str(clip), "--device", "cpu", *options])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE  # before the model-only runs, which take minutes
    assert err.startswith("error: ") and named in err and err.count("\n") == 1


def _measured(*args: object) -> None:
    raise AssertionError("the model-only runs were measured")


def test_a_video_crf_out_of_the_sinks_bounds_is_refused_naming_the_option(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["bench", "--video-crf", "99"])
    err = capsys.readouterr().err
    assert exit_.value.code == cli.EXIT_USAGE
    assert (
        err
        == "error: --video-crf: must be from 0 to 51, got '99' (see `python -m pipeline bench --help`)\n"
    )


@pytest.mark.parametrize("capacity", [[], ["--capacity"]], ids=["bench", "capacity"])
@pytest.mark.parametrize("content", [b"", b"not a video"], ids=["no-stream", "garbage"])
def test_a_clip_that_is_no_video_is_refused_in_one_line_before_any_measurement(
    tmp_path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    synthetic_video: VideoFactory,
    capacity: list[str],
    content: bytes,
) -> None:
    clip = tmp_path / "clip.mp4"
    if content:
        clip.write_bytes(content)
    else:  # a container with no video stream: the start of a real file
        clip.write_bytes(synthetic_video("whole.mp4", frames=2, size=(64, 48)).read_bytes()[:40])
    monkeypatch.setattr("pipeline.bench.cli._model_only", _measured)
    code = cli.main(["bench", "--clip", str(clip), "--device", "cpu", *capacity])
    err = capsys.readouterr().err
    assert code == cli.EXIT_USAGE
    assert err.startswith(f"error: clip {clip} is not a video (") and err.count("\n") == 1


def test_bench_with_a_sink_that_cannot_open_says_so_in_one_line(
    synthetic_video: VideoFactory,
    tmp_path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline.bench import end_to_end
    from pipeline.config import VideoSinkConfig

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setattr(
        end_to_end.VideoOutput,
        "config",
        lambda self, folder: VideoSinkConfig(type="video", dir=blocker / "video"),
    )
    clip = synthetic_video("clip.mp4", frames=2, size=(64, 48))
    argv = ["bench", "--skip-model-only", "--skip-naive", "--clip", str(clip), "--repeat", "1",
            "--device", "cpu", "--runtime", "torch"]  # fmt: skip
    code = cli.main(argv)
    err = capsys.readouterr().err
    assert code == cli.EXIT_FAILED
    assert err.startswith("error: video sink: ") and str(blocker) in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_naive_runs_alternate_with_the_end_to_end_runs(
    synthetic_video: VideoFactory,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pipeline import runner
    from pipeline.bench import naive

    order: list[str] = []
    real_run, real_naive = runner.Pipeline.run, naive.run_naive

    def pipeline_run(self, *args, **kwargs):
        order.append("end to end")
        return real_run(self, *args, **kwargs)

    def naive_run(*args, **kwargs):
        order.append("naive")
        return real_naive(*args, **kwargs)

    monkeypatch.setattr(runner.Pipeline, "run", pipeline_run)
    monkeypatch.setattr(naive, "run_naive", naive_run)
    clip = synthetic_video("clip.mp4", frames=4, size=(96, 64))
    code = cli.main(
        ["bench", "--json", "--clip", str(clip), "--skip-model-only", "--repeat", "3",
         "--batch-size", "2", "--device", "cpu", "--runtime", "torch"]
    )  # fmt: skip
    assert code == 0
    assert order == ["end to end", "naive"] * 3
    report = json.loads(capsys.readouterr().out)
    assert len(report["naive"]["runs"]) == len(report["speedup_runs"]) == 3


@pytest.mark.parametrize("bad", ["1920", "95x64", "wide"])
def test_scale_must_be_even_width_by_height(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["bench", "--scale", bad])
    assert "--scale" in capsys.readouterr().err
