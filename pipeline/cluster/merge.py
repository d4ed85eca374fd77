"""One run summary from the shards' summaries."""

from __future__ import annotations

from collections.abc import Sequence

from pipeline.cluster.shard import ShardInfo
from pipeline.summary import CameraStats, RunSummary


def merge_summaries(
    camera_order: Sequence[str],
    shards: Sequence[tuple[ShardInfo, RunSummary]],
    *,
    elapsed_s: float,
    setup_s: float,
    unreported: dict[str, CameraStats],
    outputs: Sequence[str] = (),
    errors: Sequence[str] = (),
    interrupted: bool = False,
) -> RunSummary:
    """The cluster run's summary: every camera once (`unreported`: those no shard's summary has:
    lost with their shard, or ended on a shard that died since),
    each shard's outputs named after it (its files are on its node), the driver's own
    `outputs` (the event forwarder) and `errors`."""
    cameras: dict[str, CameraStats] = dict(unreported)
    shard_outputs: list[str] = []
    sink_errors = list(errors)
    detectors: dict[str, list[str]] = {}
    detector_errors = []
    for info, summary in shards:
        cameras.update(summary.cameras)
        shard_outputs += [f"{info.name} on {info.node_ip}: {o}" for o in summary.outputs]
        sink_errors += [f"{info.name}: {e}" for e in summary.sink_errors]
        if summary.detector:
            detectors.setdefault(summary.detector, []).append(info.name)
        if summary.detector_error:
            detector_errors.append(f"{info.name}: {summary.detector_error}")
    if len(detectors) == 1:
        detector = next(iter(detectors))
    else:
        detector = "; ".join(f"{', '.join(names)}: {d}" for d, names in detectors.items())
    return RunSummary(
        cameras={c: cameras[c] for c in camera_order if c in cameras},
        elapsed_s=elapsed_s,
        setup_s=setup_s + max((s.setup_s for _, s in shards), default=0.0),
        sink_errors=sink_errors,
        outputs=[*outputs, *shard_outputs],
        interrupted=interrupted or any(s.interrupted for _, s in shards),
        detector=detector,
        detector_error="; ".join(detector_errors) or None,
    )
