"""Cameras sharded over a Ray cluster (docs/cluster.md).

A run whose config has a `cluster:` section is run by `ClusterRun` (`pipeline.cluster.run`),
which starts the shard actors, each running today's `Pipeline` for its cameras; the
coordinator in the driver (`pipeline.cluster.coordinator`) assigns the cameras to them,
watches them and moves the cameras of one that dies, and a ZeroMQ forwarder puts every
shard's events on the configured endpoint. Importing this package does not import Ray;
running it does.
"""
