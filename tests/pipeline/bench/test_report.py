"""The report: one text line per measurement, and JSON-ready data."""

from __future__ import annotations

import json

from pipeline.bench.report import (
    BenchReport,
    EndToEndResult,
    ModelResult,
    NaiveResult,
    format_report,
    report_dict,
)

REPORT = BenchReport(
    date="2026-01-02T03:04:05+00:00",
    command="python -m pipeline bench",
    device="Some CPU, 2 logical cores (CPU)",
    torch="2.0",
    threads=1,
    model_only=[ModelResult("person_ssdlite", "default", "torch", "fp32", 2, 10.0, [9.0, 11.5])],
    end_to_end=EndToEndResult(
        clip="clip.mp4",
        frame_size="96x64",
        copies=2,
        model="person_ssdlite",
        runtime="torch",
        precision="fp32",
        batch_size=4,
        frames=24,
        seconds=2.0,
        frames_per_s=12.0,
        runs=[12.0],
        stages_ms_per_frame={"detect_forward": 1.5},
        video="libx264 ultrafast crf 23",
        video_kb_per_frame=0.5,
    ),
    naive=NaiveResult(threads=2, frames=12, seconds=4.0, frames_per_s=3.0, runs=[3.0]),
    speedup_vs_naive=4.0,
    speedup_runs=[4.0],
)


def test_text_report_has_the_command_and_a_line_per_measurement() -> None:
    assert format_report(REPORT).splitlines() == [
        "2026-01-02T03:04:05+00:00  Some CPU, 2 logical cores (CPU)  torch 2.0, 1 threads",
        "python -m pipeline bench",
        "model only (images/s, median of runs):",
        "  person_ssdlite                 torch       fp32  batch   2       10.0  (9.0..11.5)",
        "end to end: 2 x clip.mp4 (96x64), person_ssdlite (torch fp32), batch 4, 1 worker(s): "
        "12.0 frames/s (24 frames; runs 12.0)",
        "  detect_forward                  1.50 ms/frame busy",
        "  video: libx264 ultrafast crf 23, 0.5 kB/frame",
        "naive baseline: 3.0 frames/s (2 torch threads; video: OpenCV mp4v, 0.0 kB/frame)",
        "speed-up over naive: 4.00x (run by run: 4.00)",
    ]


def test_json_report_holds_every_field() -> None:
    data = json.loads(json.dumps(report_dict(REPORT)))
    assert data["end_to_end"]["stages_ms_per_frame"] == {"detect_forward": 1.5}
    assert data["model_only"][0]["runs"] == [9.0, 11.5]
    assert data["naive"]["video_kb_per_frame"] == 0.0 and data["speedup_runs"] == [4.0]
