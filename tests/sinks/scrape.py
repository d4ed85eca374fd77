"""A sink's own metrics as the run's /metrics shows them: its `Sink.metrics` read through
`pipeline.metrics`' collector."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.metrics import RunMetrics
from pipeline.types import SinkMetric
from sinks.base import Sink


@dataclass
class _Worker:
    """What the collector reads of a sink's worker, around a sink used directly."""

    sink: Sink
    written: int = 0
    unwritten: int = 0
    error: str | None = None
    failed: bool = False
    buffered: int = 0

    def metrics(self) -> tuple[SinkMetric, ...]:
        return self.sink.metrics()


def scrape_sink(sink: Sink) -> dict[str, float]:
    """The `ssd_sink_*` samples of `sink` (labelled with its name), by sample name."""
    metrics = RunMetrics()
    metrics.watch({}, [], {sink.name: _Worker(sink)})
    text = generate_latest(metrics.registry).decode()
    return {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels == {"sink": sink.name}
    }
