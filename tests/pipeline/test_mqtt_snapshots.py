"""A run with a snapshots sink and an mqtt sink: each camera's latest snapshot on the
broker, the very picture the snapshots sink wrote, through the run's own wiring."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.config import parse_config
from pipeline.runner import Pipeline
from tests.conftest import write_video
from tests.pipeline.test_pipelining import EagerDetector
from tests.sinks.mqtt.brokers import listening, machine_broker

pytest.importorskip("paho.mqtt")

Broker = tuple[str, int]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with machine_broker(tmp_path_factory.mktemp("mosquitto")) as address:
        yield address


def run(tmp_path: Path, broker: Broker, prefix: str, snapshots: str) -> Path:
    """Runs a 12-frame clip into the broker (and `snapshots`' sink entry); its folder."""
    clip = write_video(tmp_path / "clip.mp4", frames=12, size=(96, 64))
    folder = tmp_path / "snapshots"
    config = parse_config(
        f"cameras:\n  - id: door\n    source: {clip}\n"
        f"sinks:\n  - type: mqtt\n    url: mqtt://{broker[0]}:{broker[1]}\n"
        f"    prefix: {prefix}\n    events: [stream.ended]\n" + snapshots.format(folder=folder)
    )
    assert Pipeline(config, detector=EagerDetector()).run().ok
    return folder


def test_the_latest_snapshot_of_a_run_is_the_jpeg_the_snapshots_sink_wrote(
    tmp_path: Path, broker: Broker
) -> None:
    with listening(broker, lambda p: [f"{p}/#"]) as (prefix, listener):
        folder = run(tmp_path, broker, prefix, "  - type: snapshots\n    dir: {folder}\n")
        topic = f"{prefix}/door/snapshot"
        listener.wait_for(lambda m: any(x.topic == topic for x in m))
        sent = [m.payload for m in listener.messages if m.topic == topic]
        written = sorted(folder.rglob("*.jpg"), key=lambda p: p.stat().st_mtime_ns)
        assert sent and written, (len(sent), written, [m.topic for m in listener.messages])
        picture = cv2.imdecode(np.frombuffer(sent[-1], np.uint8), cv2.IMREAD_COLOR)
        on_disk = cv2.imread(str(written[-1]))
        assert picture is not None and on_disk is not None and picture.shape == on_disk.shape
        assert np.abs(picture.astype(int) - on_disk).mean() < 6  # both JPEGs of one crop


def test_without_a_snapshots_sink_no_snapshot_is_sent(tmp_path: Path, broker: Broker) -> None:
    with listening(broker, lambda p: [f"{p}/#"]) as (prefix, listener):
        run(tmp_path, broker, prefix, "")
        listener.wait_for(lambda m: any(x.topic.endswith("/stream.ended") for x in m))
        assert not [m for m in listener.messages if m.topic.endswith("/snapshot")]
