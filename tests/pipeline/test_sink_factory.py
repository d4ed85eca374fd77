"""`build_sink` and the cluster's shard options: config values turned into what sinks and
Ray take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import sinks.sql.sink as sql_sink_module
from pipeline.cluster.engine import shard_options
from pipeline.config import SnapshotSinkConfig, SqlSinkConfig, VideoSinkConfig
from pipeline.config.cluster import ShardResourcesConfig
from pipeline.sink_factory import SinkContext, build_sink, queue_bound
from pipeline.types import LabelMap
from sinks.snapshots.sink import SnapshotSink

CONTEXT = SinkContext(LabelMap(("background", "person")))


def test_every_size_in_mb_is_a_million_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    class RecordedSqlSink:
        def __init__(self, *args: object, spool_max_bytes: int, **kwargs: object) -> None:
            seen["spool"] = spool_max_bytes

    monkeypatch.setattr(sql_sink_module, "SqlSink", RecordedSqlSink)
    build_sink(SqlSinkConfig(type="sql", url="sqlite:///x.db", spool_max_mb=2.5), CONTEXT)
    snapshots = build_sink(SnapshotSinkConfig(type="snapshots", dir=tmp_path, keep_mb=2.5), CONTEXT)
    assert isinstance(snapshots, SnapshotSink)
    memory = shard_options(ShardResourcesConfig(memory_mb=2.5))["memory"]
    queue = queue_bound(VideoSinkConfig(type="video", queue_mb=2.5)).max_bytes
    assert seen["spool"] == snapshots.retention.max_bytes == memory == queue == 2_500_000
