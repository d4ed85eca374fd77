"""The whole pipeline through its CLI: two synthetic cameras, real ZeroMQ, SQLite and MP4s."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import av
import pytest
import zmq

from pipeline.cli import main
from tests.conftest import VideoFactory, free_port
from tests.pipeline.cli_runs import ROOT, run_cli, write_config

COMMON_FIELDS = {"schema_version", "type", "camera", "seq", "time", "frame"}
OBJECT_FIELDS = {"label", "label_id", "score", "box", "track_id"}


class Collector(threading.Thread):
    """A real SUB socket collecting every event until each camera's stream.ended."""

    def __init__(self, port: int, cameras: int) -> None:
        super().__init__(daemon=True)
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.SUB)
        self.sock.setsockopt(zmq.SUBSCRIBE, b"")
        self.sock.connect(f"tcp://127.0.0.1:{port}")
        self.cameras = cameras
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.started = threading.Event()

    def run(self) -> None:
        ended = 0
        deadline = time.monotonic() + 120
        while ended < self.cameras and time.monotonic() < deadline:
            if self.sock.poll(200):
                topic, body = self.sock.recv_multipart()
                event = json.loads(body)
                self.events.append((topic.decode(), event))
                self.started.set()
                ended += event["type"] == "stream.ended"
        self.sock.close(0)
        self.ctx.term()


def _mp4_frames(directory: Path, camera: str) -> tuple[int, float]:
    (path,) = directory.glob(f"{camera}_*.mp4")
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        return sum(1 for _ in c.decode(stream)), float(stream.average_rate)


def _rows(db: Path) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT camera, frame, label, round(score, 4), round(x1, 1), round(y1, 1), "
            "round(x2, 1), round(y2, 1), track_id FROM detections"
        ).fetchall()


def _event_rows(events: list[tuple[str, dict[str, Any]]]) -> list[tuple[Any, ...]]:
    return [
        (e["camera"], e["frame"], o["label"], round(o["score"], 4), *o["box"], o["track_id"])
        for _, e in events
        if e["type"] == "detections"
        for o in e["objects"]
    ]


def test_two_cameras_end_to_end(
    tmp_path: Path, synthetic_video: VideoFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = {"north": 24, "south": 15}
    videos = {
        "north": synthetic_video("north.mp4", frames=24, size=(160, 120), fps=10),
        "south": synthetic_video("south.mp4", frames=15, size=(128, 96), fps=25),
    }
    port = free_port()
    collector = Collector(port, cameras=2)
    collector.start()
    subscriber = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "subscribe",
            "--endpoint",
            f"tcp://127.0.0.1:{port}",
            "--camera",
            "south",
            "--type",
            "detections",
            "--count",
            "5",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # two subscriptions: the collector's and the `subscribe` command's
    proc = run_cli(write_config(tmp_path, videos, port, subscribers=2))
    out, err = proc.communicate(timeout=180)
    collector.join(30)
    sub_out, sub_err = subscriber.communicate(timeout=30)
    assert proc.returncode == 0, err

    # `subscribe` printed one JSON event per line, only those asked for
    printed = [json.loads(line) for line in sub_out.splitlines()]
    assert subscriber.returncode == 0, sub_err
    assert [(e["camera"], e["type"], e["frame"]) for e in printed] == [
        ("south", "detections", i) for i in range(5)
    ]

    # the closing summary names each camera with its frame count
    for camera, count in frames.items():
        assert any(line.split()[:2] == [camera, str(count)] for line in out.splitlines()), out

    # one playable MP4 per camera, with the input's frame count and rate
    assert _mp4_frames(tmp_path / "video", "north") == (24, 10.0)
    assert _mp4_frames(tmp_path / "video", "south") == (15, 25.0)

    # every event has the contract's fields; seq is gap-free per camera across event types
    by_camera: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for topic, event in collector.events:
        assert event.keys() >= COMMON_FIELDS
        assert event["schema_version"] == 1
        assert topic == f"{event['type']}.{event['camera']}"
        by_camera[event["camera"]].append(event)
    for camera, count in frames.items():
        events = by_camera[camera]
        assert [e["seq"] for e in events] == list(range(len(events)))
        detections = [e for e in events if e["type"] == "detections"]
        assert [e["frame"] for e in detections] == list(range(count))
        assert all(o.keys() >= OBJECT_FIELDS for e in detections for o in e["objects"])
        started = {e["track_id"] for e in events if e["type"] == "track.started"}
        ended = {e["track_id"] for e in events if e["type"] == "track.ended"}
        assert started and started == ended  # every track confirmed is closed by the end
        assert events[-1]["type"] == "stream.ended" and events[-1]["error"] is None

    # the database holds exactly the detections that were published
    event_rows = _event_rows(collector.events)
    assert len(event_rows) == (24 + 15) * 3
    assert sorted(_rows(tmp_path / "det.db"), key=repr) == sorted(event_rows, key=repr)

    # and `query --all --format json` returns them
    db = f"sqlite:///{tmp_path / 'det.db'}"
    assert main(["query", "--db", db, "--all", "--format", "json"]) == 0
    queried = json.loads(capsys.readouterr().out)
    assert len(queried) == len(event_rows)
    assert (
        main(
            [
                "query",
                "--db",
                f"sqlite:///{tmp_path / 'det.db'}",
                "--camera",
                "south",
                "--format",
                "json",
            ]
        )
        == 0
    )
    assert {r["camera"] for r in json.loads(capsys.readouterr().out)} == {"south"}


def test_a_broken_camera_fails_alone_and_the_others_finish(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_text("not a video\n" * 100)
    videos = {
        "good": synthetic_video("good.mp4", frames=12),
        "bad": broken,
        "gone": tmp_path / "gone.mp4",  # a missing file fails its camera alone, like a bad one
        "nothing": tmp_path / "frames" / "*.jpg",
    }
    port = free_port()
    collector = Collector(port, cameras=1)
    collector.start()
    proc = run_cli(write_config(tmp_path, videos, port))
    out, err = proc.communicate(timeout=180)
    collector.join(30)
    assert proc.returncode == 1, err
    assert "camera bad: not a video (cannot open it: " in err and "broken.mp4" in err
    assert "camera gone: file not found: " in err and "gone.mp4" in err
    assert "camera nothing: no images" in err
    for camera in ("bad", "gone", "nothing"):
        assert any(
            line.split()[:2] == [camera, "0"] and "FAILED" in line for line in out.splitlines()
        ), out
    assert _mp4_frames(tmp_path / "video", "good") == (12, 10.0)
    assert len(_rows(tmp_path / "det.db")) == 12 * 3


@pytest.mark.parametrize(
    ("stop_signal", "realtime"),
    [(signal.SIGINT, False), (signal.SIGTERM, True)],
    ids=["SIGINT-once", "SIGTERM-to-process-and-group-realtime"],
)
def test_stop_signal_keeps_everything_already_processed(
    tmp_path: Path, synthetic_video: VideoFactory, stop_signal: signal.Signals, realtime: bool
) -> None:
    video = synthetic_video("long.mp4", frames=1500, size=(160, 120), fps=25)
    port = free_port()
    collector = Collector(port, cameras=1)
    collector.start()
    config = write_config(tmp_path, {"long": video}, port)
    if realtime:
        text = config.read_text().replace(
            f"source: {video}\n", f"source: {{type: file, path: '{video}', realtime: true}}\n"
        )
        config.write_text(text)
    proc = run_cli(config, start_new_session=True)
    assert collector.started.wait(120), "no event arrived"
    deadline = time.monotonic() + 60
    while not any(e["type"] == "track.started" for _, e in list(collector.events)):
        assert time.monotonic() < deadline, "no track started"
        time.sleep(0.05)
    if realtime:  # as `timeout` does: the process, then its group, at once
        proc.send_signal(stop_signal)
        os.killpg(proc.pid, stop_signal)
    else:
        proc.send_signal(stop_signal)
    out, err = proc.communicate(timeout=120)
    collector.join(30)
    assert proc.returncode == 128 + stop_signal, err  # 130 for SIGINT, 143 for SIGTERM
    assert "forced exit" not in err

    detections = [e for _, e in collector.events if e["type"] == "detections"]
    processed = len(detections)
    assert 0 < processed < 1500
    assert any(line.split()[:2] == ["long", str(processed)] for line in out.splitlines()), out
    assert _mp4_frames(tmp_path / "video", "long")[0] == processed
    assert sorted(_rows(tmp_path / "det.db"), key=repr) == sorted(
        _event_rows(collector.events), key=repr
    )
    # every track confirmed is closed, published and stored; the run is recorded as stopped
    started = {e["track_id"] for _, e in collector.events if e["type"] == "track.started"}
    ended = {e["track_id"] for _, e in collector.events if e["type"] == "track.ended"}
    assert started and started == ended
    assert collector.events[-1][1]["type"] == "stream.ended", collector.events[-3:]
    with sqlite3.connect(tmp_path / "det.db") as conn:
        stored = {row[0] for row in conn.execute("SELECT track_id FROM tracks")}
        (status,) = conn.execute("SELECT status FROM runs").fetchone()
    assert stored == ended
    assert status == "interrupted"


def test_unreachable_camera_with_a_password_never_shows_it(
    tmp_path: Path, synthetic_video: VideoFactory
) -> None:
    port = free_port()
    config = tmp_path / "cams.yaml"
    config.write_text(
        "cameras:\n"
        f"  - id: good\n    source: {synthetic_video('good.mp4', frames=8)}\n"
        "  - id: gate\n    source: rtsp://admin:${GATE_PASSWORD}@127.0.0.1:9/stream\n"
        "    reconnect: {initial_delay_s: 0.05, max_delay_s: 0.1, max_attempts: 2}\n"
        "detector:\n  model: person_ssdlite\n  device: cpu\n"
        f"sinks:\n  - type: zmq\n    endpoint: tcp://127.0.0.1:{port}\n    wait_for_subscribers: 1\n"
        f"  - type: sql\n    url: sqlite:///{tmp_path / 'det.db'}\n"
    )
    collector = Collector(port, cameras=2)
    collector.start()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "pipeline",
            "--log-level",
            "info",
            "run",
            str(config),
            "--no-progress",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "GATE_PASSWORD": "hunter2"},
    )
    out, err = proc.communicate(timeout=180)
    collector.join(30)
    assert proc.returncode == 1, err
    assert "camera gate: cannot open rtsp://admin:***@127.0.0.1:9/stream" in err
    assert "gave up after 2 attempts" in err
    states = [
        e["state"]
        for _, e in collector.events
        if e["type"] == "camera.status" and e["camera"] == "gate"
    ]
    assert states == ["connecting", "reconnecting", "failed"]
    everything = out + err + json.dumps([e for _, e in collector.events])
    with sqlite3.connect(tmp_path / "det.db") as conn:
        everything += repr(conn.execute("SELECT * FROM runs").fetchall())
    assert "hunter2" not in everything
