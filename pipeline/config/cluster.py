"""The optional `cluster:` section: cameras sharded over a Ray cluster (docs/cluster.md).

Only the section's shape is checked here; nothing imports Ray until a run uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator

from pipeline.config.base import ONE_BYTE_MB, Strict
from pipeline.config.sinks import (
    LiveSinkConfig,
    MqttSinkConfig,
    SinkConfig,
    SqlSinkConfig,
    ZmqSinkConfig,
)

MAX_SHARDS = 1024
"""The most shard actors a config may ask for."""
RESOURCE_UNIT = 0.0001
"""The smallest fraction of a resource Ray reserves (it refuses a smaller one but 0)."""


def _in_units(value: float) -> float:
    if 0 < value < RESOURCE_UNIT:
        raise ValueError(
            f"must be 0 or at least {RESOURCE_UNIT:g} (the smallest fraction of a resource "
            "Ray reserves)"
        )
    return value


Quantity = AfterValidator(_in_units)


class ShardResourcesConfig(Strict):
    """What each shard actor reserves on its node; passed to Ray as the actor's options,
    so shards land where the GPUs (or custom resources) are."""

    num_cpus: Annotated[float, Quantity] = Field(
        default=1.0, ge=0, le=1024, description="CPU cores reserved per shard (may be a fraction)."
    )
    num_gpus: Annotated[float, Quantity] = Field(
        default=0.0, ge=0, le=64, description="GPUs reserved per shard (may be a fraction)."
    )
    memory_mb: float | None = Field(
        default=None,
        ge=ONE_BYTE_MB,
        le=16_777_216,
        description="Memory reserved per shard, in MB (millions of bytes).",
    )
    resources: dict[
        Annotated[str, Field(min_length=1, max_length=200)],
        Annotated[float, Field(ge=0, le=1_000_000), Quantity],
    ] = Field(
        default_factory=dict,
        description="Custom Ray resources per shard, e.g. {camera_node: 1}.",
    )

    @field_validator("resources")
    @classmethod
    def _custom_only(cls, value: dict[str, float]) -> dict[str, float]:
        if reserved := sorted({"CPU", "GPU"} & set(value)):
            raise ValueError(
                f"{' and '.join(reserved)}: reserved with num_cpus and num_gpus, not here"
            )
        return value


class ClusterConfig(Strict):
    """Run the cameras on shard actors of a Ray cluster instead of in this process."""

    engine: Literal["ray"] = Field(description="The distributed engine; only Ray for now.")
    address: str = Field(
        default="local",
        min_length=1,
        max_length=2048,
        description="'local' starts a Ray instance in this process; 'auto' joins the cluster "
        "this machine is part of; 'ray://HOST:PORT' (or HOST:PORT) connects to a head node.",
    )
    shards: Literal["auto"] | Annotated[int, Field(ge=1, le=MAX_SHARDS)] = Field(
        default="auto",
        description="Shard actors: 'auto' is one per GPU (one per node on a cluster without "
        "GPUs), never more than the cameras; or a number.",
    )
    resources_per_shard: ShardResourcesConfig = Field(
        default_factory=ShardResourcesConfig,
        description="What each shard reserves on its node (num_cpus, num_gpus, memory_mb, "
        "resources).",
    )
    max_restarts: int = Field(
        default=3,
        ge=0,
        le=1000,
        description="How many times the cameras of a dead shard are handed to a new one "
        "before they are reported failed.",
    )

    @field_validator("address")
    @classmethod
    def _address_known(cls, value: str) -> str:
        if (problem := address_problem(value)) is not None:
            raise ValueError(problem)
        return value


def address_problem(address: str) -> str | None:
    """Why `address` names no Ray cluster (None when it does): 'local', 'auto',
    'ray://HOST[:PORT]' or 'HOST:PORT'. (Ray itself logs a traceback for an empty host.)"""
    if address in ("local", "auto"):
        return None
    rest = address.removeprefix("ray://")
    host, colon, port = rest.rpartition(":")
    if not colon and rest != address:
        host, port = rest, "10001"  # ray://HOST: Ray Client's own port
    if host.strip("[]") and port.isdigit() and 1 <= int(port) <= 65535:
        return None
    return "expected 'local', 'auto', 'ray://HOST:PORT' or 'HOST:PORT' (a host and a port number)"


def cluster_sink_problems(sinks: Sequence[SinkConfig]) -> list[str]:
    """Why each of `sinks` cannot run sharded over a cluster (none: all can)."""
    problems = []
    if sum(isinstance(s, ZmqSinkConfig) for s in sinks) > 1:
        problems.append("a cluster run forwards the events of one zmq sink; give only one")
    for i, sink in enumerate(sinks):
        where = f"sinks[{i}] ({sink.type})"
        if isinstance(sink, SqlSinkConfig) and not sink.url.startswith("postgresql"):
            problems.append(
                f"{where}: a cluster run needs PostgreSQL (every shard writes to one "
                "database; SQLite cannot be shared between nodes)"
            )
        elif isinstance(sink, LiveSinkConfig):
            problems.append(f"{where}: the live view does not run on a cluster yet")
        elif isinstance(sink, ZmqSinkConfig) and sink.curve is not None:
            problems.append(f"{where}: CURVE is not supported on a cluster yet")
        elif isinstance(sink, MqttSinkConfig) and not any(
            isinstance(s, ZmqSinkConfig) for s in sinks
        ):
            problems.append(
                f"{where}: on a cluster the mqtt sink needs a zmq sink too (e.g. type: zmq, "
                "endpoint: 'tcp://127.0.0.1:5556'): a camera moved off a shard that died "
                "goes on, on MQTT, after the events the bus's subscribers got"
            )
    return problems
