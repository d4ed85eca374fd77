"""A run's Prometheus metrics (docs/metrics.md).

Counts the run keeps anyway (its cameras' `CameraStats`, readers and sink workers) are read
when scraped by `_RunCollector`, so they always agree with the run's summary; only what
nothing else records is observed as it happens: detector batches and their latency, frames
detected, tracks open and each sink's capture-to-write latency. A sink's counts of its own
(the SQL spool, the MQTT buffer: `Sink.metrics`) are read at scrape time too.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.summary import CameraStats
from pipeline.types import FrameResult, SinkMetric, TrackEvent

PREFIX = "ssd"
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class ReaderCounts(Protocol):
    """What the collector reads of a camera's reader (`pipeline.readers.CameraReader`)."""

    camera_id: str
    reconnects: int
    lost: str | None

    @property
    def skipped(self) -> int: ...

    @property
    def motion_skipped(self) -> int: ...

    @property
    def frames_decoded(self) -> int: ...

    @property
    def dropped(self) -> int: ...

    @property
    def queue_depth(self) -> int: ...

    @property
    def decode_errors(self) -> int: ...


class SinkCounts(Protocol):
    """What the collector reads of a sink's worker (`pipeline.workers.SinkWorker`)."""

    written: int
    unwritten: int
    error: str | None

    @property
    def failed(self) -> bool: ...

    @property
    def buffered(self) -> int: ...

    def metrics(self) -> Sequence[SinkMetric]:
        """The sink's counts of its own (`Sink.metrics`)."""
        ...


@dataclass
class Watched:
    """A run's counts: its cameras' stats, their readers, its sink workers by label."""

    stats: Mapping[str, CameraStats] = field(default_factory=dict)
    readers: Sequence[ReaderCounts] = ()
    sinks: Mapping[str, SinkCounts] = field(default_factory=dict)


class RunMetrics:
    """The metrics of one run, in a registry of their own (`registry`, served at /metrics)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._watched = Watched()
        self._lock = threading.Lock()
        self.batch_size = Histogram(
            f"{PREFIX}_detector_batch_size",
            "Frames per detector batch.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.detector_latency = Histogram(
            f"{PREFIX}_detector_latency_seconds",
            "Seconds from submitting a batch to the detector to having its detections.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.end_to_end = Histogram(
            f"{PREFIX}_end_to_end_latency_seconds",
            "Seconds from a frame's capture (decoding) to a sink having written its result.",
            ["camera", "sink"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.detected = Counter(
            f"{PREFIX}_frames_detected",
            "Frames the detector ran on.",
            ["camera"],
            registry=self.registry,
        )
        self.tracks_open = Gauge(
            f"{PREFIX}_tracks_open",
            "Confirmed tracks open now.",
            ["camera"],
            registry=self.registry,
        )
        self.registry.register(_RunCollector(self))
        # Each frame's series, looked up once: `labels()` costs twice what it then records,
        # on every frame (sink threads may add a series at once: `labels()` gives them one).
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._detected: dict[str, Counter] = {}

    def watch(
        self,
        stats: Mapping[str, CameraStats],
        readers: Sequence[ReaderCounts],
        sinks: Mapping[str, SinkCounts],
    ) -> None:
        """The run's counts to read at each scrape: its cameras, readers and sink workers
        (by the name the `sink` label gives them)."""
        with self._lock:
            self._watched = Watched(stats, readers, sinks)
        for camera_id in stats:  # every camera in the series from the start, at 0
            self.detected.labels(camera_id)
            self.tracks_open.labels(camera_id)

    def watched(self) -> Watched:
        with self._lock:
            return self._watched

    def batch(self, camera_ids: Sequence[str], latency_s: float) -> None:
        """A detector batch of frames from these cameras, detected in `latency_s`."""
        self.batch_size.observe(len(camera_ids))
        self.detector_latency.observe(latency_s)
        for camera_id in camera_ids:
            counter = self._detected.get(camera_id)
            if counter is None:
                counter = self._detected[camera_id] = self.detected.labels(camera_id)
            counter.inc()

    def track_events(self, camera_id: str, events: Iterable[TrackEvent]) -> None:
        """A camera's tracks started and ended."""
        change = sum(+1 if e.kind == "started" else -1 if e.kind == "ended" else 0 for e in events)
        if change:
            self.tracks_open.labels(camera_id).inc(change)

    def written(self, sink: str, result: FrameResult) -> None:
        """`sink` has written a frame's result."""
        frame = result.frame
        histogram = self._latency.get((frame.camera_id, sink))
        if histogram is None:
            histogram = self._latency[frame.camera_id, sink] = self.end_to_end.labels(
                frame.camera_id, sink
            )
        histogram.observe(max(0.0, time.time() - frame.wall_time))


def sink_labels(names: Sequence[str]) -> list[str]:
    """The `sink` label of each sink: its name, numbered from the second of a name on."""
    seen: dict[str, int] = {}
    labels = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        labels.append(name if seen[name] == 1 else f"{name}{seen[name]}")
    return labels


_CAMERA_COUNTERS = (
    ("frames_decoded", "Frames decoded from the camera's source.", "decoded"),
    ("frames_processed", "Frames that reached the detection loop (the summary's frames).",
     "frames"),
    ("frames_dropped", "Frames dropped because the camera's queue was full.", "dropped"),
    ("frames_skipped", "Frames not detected by the sampling settings (every, max_fps).",
     "skipped"),
    ("frames_motion_skipped", "Frames not detected because nothing moved (motion gating).",
     "motion_skipped"),
    ("decode_errors", "Packets or frames the decoder could not decode.", "decode_errors"),
    ("reconnects", "Times a live camera was reopened.", "reconnects"),
    ("detections", "Tracked boxes written to the sinks.", "detections"),
    ("tracks_started", "Tracks confirmed.", "tracks"),
)  # fmt: skip


class _RunCollector(Collector):
    """Reads the run's own counts at scrape time."""

    def __init__(self, metrics: RunMetrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []  # dynamic: registered without its names being checked for clashes

    def collect(self) -> Iterator[Metric]:
        watched = self.metrics.watched()
        readers = {r.camera_id: r for r in watched.readers}
        yield from self._cameras(watched.stats, readers)
        yield from self._sinks(watched.sinks)

    def _cameras(
        self, stats: Mapping[str, CameraStats], readers: Mapping[str, ReaderCounts]
    ) -> Iterator[Metric]:
        counters = {
            key: CounterMetricFamily(f"{PREFIX}_{name}", text, labels=["camera"])
            for name, text, key in _CAMERA_COUNTERS
        }
        depth = GaugeMetricFamily(
            f"{PREFIX}_queue_depth", "Frames waiting in the camera's queue.", labels=["camera"]
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_camera_ok",
            "1 while the camera has not failed (0: failed; see /healthz).",
            labels=["camera"],
        )
        for camera_id, cam in stats.items():
            reader = readers.get(camera_id)
            values = {
                "frames": cam.frames,
                "detections": cam.detections,
                "tracks": cam.tracks,
                # live from the reader while it runs; the summary's copy once it ended
                "decoded": reader.frames_decoded if reader else cam.frames,
                "dropped": reader.dropped if reader else cam.dropped,
                "skipped": reader.skipped if reader else cam.skipped,
                "motion_skipped": reader.motion_skipped if reader else cam.motion_skipped,
                "decode_errors": reader.decode_errors if reader else cam.decode_errors,
                "reconnects": reader.reconnects if reader else cam.reconnects,
            }
            for key, family in counters.items():
                family.add_metric([camera_id], values[key])
            depth.add_metric([camera_id], reader.queue_depth if reader else 0)
            up.add_metric([camera_id], 0 if cam.error is not None else 1)
        yield from counters.values()
        yield depth
        yield up

    def _sinks(self, sinks: Mapping[str, SinkCounts]) -> Iterator[Metric]:
        written = CounterMetricFamily(
            f"{PREFIX}_sink_written", "Frame results the sink has written.", labels=["sink"]
        )
        failed = CounterMetricFamily(
            f"{PREFIX}_sink_failed",
            "Frame results the sink never wrote because it had failed.",
            labels=["sink"],
        )
        buffered = GaugeMetricFamily(
            f"{PREFIX}_sink_buffered", "Messages waiting in the sink's queue.", labels=["sink"]
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_sink_ok", "1 while the sink has not failed.", labels=["sink"]
        )
        own: dict[str, CounterMetricFamily | GaugeMetricFamily] = {}
        for name, sink in sinks.items():
            written.add_metric([name], sink.written)
            failed.add_metric([name], sink.unwritten)
            buffered.add_metric([name], sink.buffered)
            up.add_metric([name], 0 if sink.failed else 1)
            for metric in sink.metrics():
                family = own.get(metric.name)
                if family is None:
                    family = own[metric.name] = _family(metric)
                family.add_metric([name], metric.value)
        yield from (written, failed, buffered, up)
        yield from own.values()


def _family(metric: SinkMetric) -> CounterMetricFamily | GaugeMetricFamily:
    """The family of a sink's own metric: `ssd_sink_<name>`, labelled by sink."""
    kind = CounterMetricFamily if metric.kind == "counter" else GaugeMetricFamily
    return kind(f"{PREFIX}_sink_{metric.name}", metric.help, labels=["sink"])
