"""The run's Prometheus metrics: scraped from /metrics during a run, and agreeing with its
summary at the end."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.config import parse_config
from pipeline.metrics import sink_labels
from pipeline.runner import Pipeline
from pipeline.types import FrameResult
from sinks.base import Sink
from sinks.sql.database import DatabaseUrl
from sinks.sql.sink import SqlSink
from sinks.sql.spool import UNREADABLE_FOLDER, RowBatch, spool_prefix
from tests.conftest import VideoFactory
from tests.pipeline.test_motion import static_folder
from tests.pipeline.test_pipelining import LABELS, EagerDetector
from tests.sinks.mqtt.brokers import listening, machine_broker
from tests.sinks.sql.builders import spooled_detection, stored

pytest.importorskip("fastapi")

DOCS = Path(__file__).resolve().parents[2] / "docs"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


class Scraper(Sink):
    """Scrapes the run's /metrics when it is given frame `at`."""

    name = "scraper"

    def __init__(self, at: int) -> None:
        self.at = at
        self.url = lambda: ""  # where the run serves, once it does
        self.scraped = ""

    def write(self, result: FrameResult) -> None:
        if result.frame.index == self.at:
            with urllib.request.urlopen(self.url() + "metrics", timeout=5) as r:
                self.scraped = r.read().decode()

    def close(self) -> None:
        pass


def test_metrics_scraped_during_a_run_count_what_its_summary_counts_at_the_end(
    synthetic_video: VideoFactory, tmp_path: Path
) -> None:
    clip = synthetic_video("clip.mp4", frames=30, size=(96, 64))
    with (
        machine_broker(tmp_path / "mosquitto") as broker,
        listening(broker, lambda prefix: [f"{prefix}/#"]) as (prefix, _),
    ):
        config = parse_config(
            f"cameras:\n  - id: lobby\n    source: {clip}\n    detect_every: 2\n"
            f"sinks:\n  - type: sql\n    url: sqlite:///{tmp_path / 'd.db'}\n"
            f"  - type: mqtt\n    url: mqtt://{broker[0]}:{broker[1]}\n    prefix: {prefix}\n"
            "http:\n  port: 0\n"
        )
        scraper = Scraper(at=10)
        pipeline = Pipeline(config, detector=EagerDetector(), extra_sinks=[scraper])
        scraper.url = lambda: pipeline.http_url or ""
        summary = pipeline.run()
    assert summary.ok

    during = samples(scraper.scraped)
    cam = (("camera", "lobby"),)
    assert 0 < during[("ssd_frames_processed_total", cam)] < 30
    assert during[("ssd_camera_ok", cam)] == 1

    after = samples(generate_latest(pipeline.metrics.registry).decode())
    stats = summary.cameras["lobby"]
    assert during[("ssd_frames_processed_total", cam)] <= after[("ssd_frames_processed_total", cam)]
    assert after[("ssd_frames_processed_total", cam)] == stats.frames == 15
    assert after[("ssd_frames_skipped_total", cam)] == stats.skipped == 15
    assert after[("ssd_frames_decoded_total", cam)] == 30
    assert after[("ssd_frames_detected_total", cam)] == stats.frames
    assert after[("ssd_frames_dropped_total", cam)] == stats.dropped
    assert after[("ssd_detections_total", cam)] == stats.detections > 0
    assert after[("ssd_tracks_started_total", cam)] == stats.tracks > 0
    assert after[("ssd_tracks_open", cam)] == 0  # every track ended with the stream
    assert after[("ssd_detector_batch_size_sum", ())] == stats.frames
    assert (
        after[("ssd_detector_latency_seconds_count", ())]
        == after[("ssd_detector_batch_size_count", ())]
    )
    assert after[("ssd_sink_written_total", (("sink", "sql"),))] == stats.frames
    assert after[("ssd_sink_failed_total", (("sink", "sql"),))] == 0
    assert after[("ssd_sink_ok", (("sink", "sql"),))] == 1
    # the sinks' own counts, as their summary lines give them
    sql, mqtt = (("sink", "sql"),), (("sink", "mqtt"),)
    sql_line, mqtt_line = (o for o in summary.outputs if o.startswith(("sql", "mqtt")))
    detections, tracks = map(int, re.findall(r"(\d+) (?:detections|tracks)", sql_line))
    assert after[("ssd_sink_sql_rows_written_total", sql)] == detections + tracks > 0
    assert after[("ssd_sink_sql_rows_lost_total", sql)] == 0
    assert after[("ssd_sink_sql_rows_spooled", sql)] == after[("ssd_sink_sql_rows_kept", sql)] == 0
    events = int(re.findall(r"(\d+) events", mqtt_line)[0])
    assert after[("ssd_sink_mqtt_events_sent_total", mqtt)] == events > 0
    assert after[("ssd_sink_mqtt_dropped_total", mqtt)] == 0  # "0 dropped"
    assert after[("ssd_sink_mqtt_buffered", mqtt)] == 0
    e2e = (("camera", "lobby"), ("sink", "sql"))
    assert after[("ssd_end_to_end_latency_seconds_count", e2e)] == stats.frames
    assert pipeline.http_url is None  # the server closed with the run

    # what the docs and the Grafana dashboard name is what a run exposes
    scraped = generate_latest(pipeline.metrics.registry).decode()
    families = {f.name for f in text_string_to_metric_families(scraped)}
    exposed = families | {name for name, _ in after}
    for doc in ("metrics.md", "grafana-dashboard.json"):
        named = set(re.findall(r"\bssd_[a-z_]+[a-z]", (DOCS / doc).read_text()))
        assert named and named <= exposed, (doc, named - exposed)


def test_a_run_with_a_port_taken_stops_before_reading_naming_the_port(
    synthetic_video: VideoFactory,
) -> None:
    import socket

    from pipeline.web.server import ServerError

    clip = synthetic_video("clip.mp4", frames=3, size=(64, 48))
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        config = parse_config(f"cameras:\n  - id: cam\n    source: {clip}\nhttp:\n  port: {port}\n")
        with pytest.raises(ServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            Pipeline(config, detector=EagerDetector()).run()


def test_sinks_of_one_kind_get_numbered_labels() -> None:
    assert sink_labels(["sql", "video", "sql", "sql"]) == ["sql", "video", "sql2", "sql3"]


def test_frames_not_detected_for_lack_of_motion_are_counted_apart(tmp_path: Path) -> None:
    folder = static_folder(tmp_path / "frames", 12)
    config = parse_config(
        "cameras:\n"
        f"  - id: cam\n    source: {{type: images, path: {folder}, fps: 10}}\n"
        "    motion: {enabled: true, max_skip_s: 0.5}\n"
        "http:\n  port: 0\n"
    )
    pipeline = Pipeline(config, detector=EagerDetector())
    summary = pipeline.run()
    stats = summary.cameras["cam"]
    after = samples(generate_latest(pipeline.metrics.registry).decode())
    cam = (("camera", "cam"),)
    assert after[("ssd_frames_motion_skipped_total", cam)] == stats.motion_skipped > 0
    assert after[("ssd_frames_skipped_total", cam)] == stats.skipped == 0
    assert after[("ssd_frames_detected_total", cam)] == 12 - stats.motion_skipped


def test_unreadable_lines_an_earlier_run_left_are_counted_in_the_summary_and_metrics_once(
    tmp_path: Path,
) -> None:
    url, spool_dir = f"sqlite:///{tmp_path / 'd.db'}", tmp_path / "spool"
    SqlSink(url, LABELS, spool_dir=spool_dir).close()  # the earlier run, 1
    lines = [RowBatch("detections", [spooled_detection(1, f)]).to_line() for f in range(4)]
    damaged, cut = lines[1].replace(",", ";", 1), lines[3][:30]  # cut: the run died there
    spool = spool_dir / f"{spool_prefix(DatabaseUrl(url))}run1-1.jsonl"
    spool_dir.mkdir(exist_ok=True)
    spool.write_text(lines[0] + damaged + lines[2] + cut)
    aside = spool_dir / UNREADABLE_FOLDER / spool.name
    folder = static_folder(tmp_path / "frames", 3)
    config = parse_config(
        f"cameras:\n  - id: cam\n    source: {{type: images, path: {folder}, fps: 10}}\n"
        f"sinks:\n  - type: sql\n    url: {url}\n    spool_dir: {spool_dir}\n"
    )

    def run() -> tuple[str, float]:
        """The run's summary line of the sql sink, and its count of lines set aside."""
        pipeline = Pipeline(config, detector=EagerDetector())
        summary = pipeline.run()
        assert summary.ok  # lines an earlier run left fail no later run
        after = samples(generate_latest(pipeline.metrics.registry).decode())
        (sql_line,) = (o for o in summary.outputs if o.startswith("sql"))
        return sql_line, after[("ssd_sink_sql_lines_replayed_unreadable_total", (("sink", "sql"),))]

    sql_line, unreadable = run()
    assert sql_line.endswith(
        f"(left by an earlier run: 2 written, 2 lines unreadable, set aside in {aside})"
    )
    assert unreadable == 2
    assert aside.read_text() == damaged + cut + "\n" and not spool.exists()
    assert sorted({row[2] for row in stored(url) if row[0] == 1}) == [0, 2]

    sql_line, unreadable = run()  # set aside once, and counted by the run that did
    assert "earlier run" not in sql_line and unreadable == 0
