"""A camera taken over from a dead shard: its sinks get only the frames they lack."""

from __future__ import annotations

import numpy as np

from pipeline.cluster.merge import merge_summaries
from pipeline.cluster.resume import ResumeSink
from pipeline.cluster.shard import ShardInfo
from pipeline.summary import CameraStats, RunSummary
from pipeline.types import Detections, Frame, FrameResult, StreamEnd
from sinks.base import Sink


class Recorder(Sink):
    name = "recorder"

    def __init__(self) -> None:
        self.frames: list[tuple[str, int]] = []
        self.ended: list[str] = []

    def write(self, result: FrameResult) -> None:
        self.frames.append((result.frame.camera_id, result.frame.index))

    def end(self, stream_end: StreamEnd) -> None:
        self.ended.append(stream_end.camera_id)

    def close(self) -> None:
        pass


def frame_result(camera: str, index: int) -> FrameResult:
    frame = Frame(camera, index, index / 10, 0.0, np.zeros((2, 2, 3), np.uint8))
    return FrameResult(frame, Detections.empty())


def test_frames_a_sink_has_are_not_given_again_and_others_pass() -> None:
    inner = Recorder()
    sink = ResumeSink(inner, {"a": 2})
    for i in range(4):
        sink.write(frame_result("a", i))
        sink.write(frame_result("b", i))
    sink.end(StreamEnd("a", 4))
    assert inner.frames == [("b", 0), ("b", 1), ("b", 2), ("a", 3), ("b", 3)]
    assert inner.ended == ["a"]


def test_the_merged_summary_has_every_camera_and_names_each_shards_outputs() -> None:
    def shard(name: str, camera: str) -> tuple[ShardInfo, RunSummary]:
        stats = CameraStats(camera, f"{camera}.mp4", frames=5)
        summary = RunSummary({camera: stats}, 1.0, outputs=["video out/"], detector="cpu")
        return ShardInfo(name, "10.0.0.1", "ab" * 20, 1, ()), summary

    lost = {"c": CameraStats("c", "c.mp4", error="camera c: shard-2 died")}
    merged = merge_summaries(
        ["a", "b", "c"],
        [shard("shard-0", "a"), shard("shard-1", "b")],
        elapsed_s=2.0,
        setup_s=0.5,
        lost=lost,
    )
    assert list(merged.cameras) == ["a", "b", "c"]
    assert merged.outputs == ["shard-0 on 10.0.0.1: video out/", "shard-1 on 10.0.0.1: video out/"]
    assert merged.detector == "cpu"
    assert not merged.ok and merged.frames == 10
