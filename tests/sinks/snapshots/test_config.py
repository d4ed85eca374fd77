"""The `snapshots` sink's config section: its keys reach the sink and the snapshot stage,
and a config has at most one such sink."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.build import build_snapshot_keepers, build_snapshot_writer
from pipeline.config import ConfigError, SnapshotSinkConfig, parse_config
from pipeline.sink_factory import SinkContext, build_sink, build_sinks
from pipeline.types import LabelMap
from sinks.live_view.sink import LiveViewSink
from sinks.snapshots.sink import SnapshotSink


def config(tmp_path: Path, sinks: str) -> str:
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"not read by the config")
    return (
        f"cameras:\n  - id: a\n    source: {video}\n  - id: b\n    source: {video}\n"
        f"tracker:\n  t_min: 3\nsinks:\n{sinks}"
    )


def test_the_section_reaches_the_sink_and_every_camera_stage(tmp_path: Path) -> None:
    cfg = parse_config(
        config(
            tmp_path,
            f"  - type: snapshots\n    dir: {tmp_path / 'snaps'}\n    full_frame: true\n"
            "    margin: 0.25\n    quality: 70\n    keep_hours: 2\n    keep_files: 10\n"
            "    keep_mb: 1.5\n    write_timeout_s: 0.5\n",
        )
    )
    assert isinstance(cfg.snapshots, SnapshotSinkConfig)
    sink = build_sink(cfg.snapshots, SinkContext(LabelMap(())))
    assert isinstance(sink, SnapshotSink)
    assert sink.directory == tmp_path / "snaps"
    assert sink.retention.max_age_s == 7200 and sink.retention.max_files == 10
    assert sink.retention.max_bytes == 1_500_000
    writer = build_snapshot_writer(cfg)
    assert writer is not None
    try:
        keepers = build_snapshot_keepers(cfg, writer)
        assert sorted(keepers) == ["a", "b"]
        assert keepers["a"].full_frame and keepers["a"].margin == 0.25
        assert keepers["a"].directory == str(tmp_path / "snaps")
        assert keepers["a"].writer is writer is keepers["b"].writer  # one disk, one watch
        assert writer.writer.quality == keepers["a"].quality == 70
        assert writer.timeout_s == 0.5
    finally:
        writer.close()


def test_the_live_view_serves_the_snapshots_sinks_folder(tmp_path: Path) -> None:
    cfg = parse_config(
        config(tmp_path, f"  - type: live\n    port: 0\n  - type: snapshots\n    dir: {tmp_path}\n")
    )
    sinks = [sink for sink, _ in build_sinks(cfg.sinks, LabelMap(()), "test")]
    try:
        live, snapshots = sinks
        assert isinstance(live, LiveViewSink) and isinstance(snapshots, SnapshotSink)
        assert live.snapshot_dir == snapshots.directory == tmp_path
    finally:
        for sink in sinks:
            sink.close()


def test_no_snapshots_sink_means_no_snapshot_stage(tmp_path: Path) -> None:
    cfg = parse_config(config(tmp_path, "  - type: live\n    port: 0\n"))
    assert cfg.snapshots is None and build_snapshot_writer(cfg) is None
    assert build_snapshot_keepers(cfg, None) == {}


def test_two_snapshots_sinks_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at most one sink of type snapshots"):
        parse_config(config(tmp_path, "  - type: snapshots\n  - type: snapshots\n"))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("quality", "0"),
        ("margin", "-0.1"),
        ("keep_files", "0"),
        ("size", "1"),
        ("write_timeout_s", "0"),
        ("write_timeout_s", "61"),
    ],
)
def test_bad_keys_are_refused_at_their_path(tmp_path: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(config(tmp_path, f"  - type: snapshots\n    {key}: {value}\n"))
    assert any("sinks[0]" in p and key in p for p in err.value.problems)


def test_a_keep_mb_below_one_byte_is_refused_at_its_path_not_left_to_crash_the_run(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            config(tmp_path, f"  - type: snapshots\n    dir: {tmp_path}\n    keep_mb: 1e-9\n")
        )
    (problem,) = info.value.problems
    assert problem.startswith("sinks[0].keep_mb (line 11): Input should be greater than or equal")
    cfg = parse_config(
        config(tmp_path, f"  - type: snapshots\n    dir: {tmp_path}\n    keep_mb: 1e-6\n")
    )
    assert cfg.snapshots is not None
    sink = build_sink(cfg.snapshots, SinkContext(LabelMap(())))
    assert isinstance(sink, SnapshotSink) and sink.retention.max_bytes == 1
    sink.close()
