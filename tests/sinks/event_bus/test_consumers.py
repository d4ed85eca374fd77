"""What consumers see, end to end: the `subscribe` command and examples/consume_events.py."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
import zmq.auth

from pipeline.types import Detections, Snapshot, StreamEnd, TrackEvent
from sinks.event_bus.keys import read_secret_key
from sinks.event_bus.publisher import EventPublisher
from tests.sinks.event_bus.conftest import LABELS, result, track


def _publish_in_background(endpoint: str, **sink_args: object) -> threading.Thread:
    """A sink that waits for one subscriber, then sends frames with a person and a car."""

    def publish() -> None:
        sink = EventPublisher(
            endpoint,
            LABELS,
            wait_for_subscribers=1,
            wait_timeout_s=20,
            **sink_args,  # type: ignore[arg-type]
        )
        person_and_car = Detections(
            xyxy=np.array([[1, 2, 30, 40], [50, 2, 90, 40]], np.float32),
            score=np.array([0.9, 0.75], np.float32),
            label=np.array([1, 2], np.int64),
            track_id=np.array([4, -1], np.int64),
        )
        for i in range(5):
            sink.write(result("cam1", i, person_and_car if i % 2 else None))
        sink.end(StreamEnd("cam1", frames=5))
        sink.close()

    thread = threading.Thread(target=publish)
    thread.start()
    return thread


def test_subscribe_command_pretty_prints_only_the_asked_label(
    endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    publisher = _publish_in_background(endpoint)
    code = main(
        [
            "subscribe",
            "--endpoint",
            endpoint,
            "--label",
            "car",
            "--format",
            "pretty",
            "--count",
            "3",
            "--timeout",
            "20",
        ]
    )
    publisher.join(30)
    lines = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split(" ", 1)[1] for line in lines] == [
        "cam1 #1 frame 1: 1 object: car 0.75 [50,2,90,40]",
        "cam1 #3 frame 3: 1 object: car 0.75 [50,2,90,40]",
        "cam1 #5 frame 4: stream ended after 5 frames",
    ]


def test_subscribe_command_prints_json_lines_through_curve_with_key_files(
    endpoint: str, curve_keys: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    publisher = _publish_in_background(
        endpoint,
        curve_secret_key=read_secret_key(curve_keys["server"]),
        curve_authorized_clients=curve_keys["authorized"],
    )
    code = main(
        [
            "subscribe",
            "--endpoint",
            endpoint,
            "--format",
            "json",
            "--count",
            "6",
            "--timeout",
            "20",
            "--server-key",
            str(curve_keys["server_public"]),
            "--client-key",
            str(curve_keys["alice"]),
        ]
    )
    publisher.join(30)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert code == 0
    assert [(e["type"], e["seq"]) for e in events] == [("detections", i) for i in range(5)] + [
        ("stream.ended", 5)
    ]


def test_keygen_command_writes_a_key_pair_the_sink_and_subscriber_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipeline.cli import main

    code = main(["keygen", str(tmp_path / "keys")])
    out = capsys.readouterr().out
    assert code == 0
    public, secret = zmq.auth.load_certificate(tmp_path / "keys" / "server.key_secret")
    assert secret is not None and public.decode() in out
    code = main(["keygen", str(tmp_path / "keys")])
    err = capsys.readouterr().err
    assert code == 2 and "exists" in err


def test_consumer_example_counts_people_and_reports_lost_events(endpoint: str) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[3]
    consumer = subprocess.Popen(
        [
            sys.executable,
            str(root / "examples" / "consume_events.py"),
            "--endpoint",
            endpoint,
            "--camera",
            "cam1",
            "--idle-timeout",
            "30",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        sink = EventPublisher(endpoint, LABELS, wait_for_subscribers=1, wait_timeout_s=30)
        sink.write(result("cam1", 0, events=(TrackEvent("started", track("cam1", 1, 0, 0)),)))
        sink.write(result("cam1", 1, events=(TrackEvent("started", track("cam1", 2, 1, 1)),)))
        sink._events._cameras["cam1"].next_seq += 3  # as if three events had been dropped
        crop = np.zeros((4, 4, 3), np.uint8)
        snap = Snapshot(0, (0.0, 0.0, 1.0, 1.0), crop, "out/snaps", "cam1/x_1.jpg")
        sink.end(StreamEnd("cam1", 2, (TrackEvent("ended", track("cam1", 1, 0, 1), snap),)))
        sink.close()
        out, err = consumer.communicate(timeout=60)
    finally:
        consumer.kill()
    lines = out.splitlines()
    assert consumer.returncode == 0, err
    assert [line.split(" ", 1)[1] for line in lines[:2]] == [
        "cam1: person #1 appeared",
        "cam1: person #2 appeared",
    ]
    assert "warning: cam1: 3 events lost" in lines
    assert lines[-2].endswith(
        "cam1: person #1 gone after 2 frames (best score 0.9123), picture out/snaps/cam1/x_1.jpg"
    )
    assert lines[-1] == "cam1: 2 person(s)"
